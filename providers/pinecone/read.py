"""Reading: inventory, namespace shards, the listed-and-fetched scan that resumes exactly, fetch by id."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from itertools import pairwise
from typing import Any

import numpy as np
from pinecone.errors import ApiError

from vecmig.errors import TerminalError
from vecmig.ids import IdReport
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import lint, packing
from vecmig.providers.pinecone.common import (
    ALL_NAMESPACES,
    LIST_LIMIT,
    SAMPLE_SIZE,
    _metadata_types,
    _StaleToken,
    canonical_namespace,
)
from vecmig.providers.pinecone.errors import status_of
from vecmig.providers.pinecone.session import PineconeSession
from vecmig.records import Batch, RecordId


class PineconeReader(PineconeSession):
    # ---- reading --------------------------------------------------------------------------

    def collection_exists(self) -> bool:
        return self._describe() is not None

    def inventory(self) -> Inventory:
        model = self._describe()
        name = self.store.collection
        if model is None:
            return Inventory(provider=self.name, collection=name, exists=False)
        dimension, metric, sparse = self._shape(model)
        deployment = model.deployment
        extra: dict[str, Any] = {
            "cloud": getattr(deployment, "cloud", None),
            "region": getattr(deployment, "region", None),
            "deletion_protection": model.deletion_protection,
            "ready": bool(model.status.ready),
        }
        where = {"address": model.host, "namespace": self._namespace, "sparse": sparse}
        if not model.status.ready:
            return Inventory(provider=self.name, collection=name, exists=True, dimension=dimension, metric=metric,
                             id_type="text", extra=extra, **where)
        self._model = model
        namespaces = self._namespace_counts()
        count = sum(namespaces.values()) if self._namespace == ALL_NAMESPACES else namespaces.get(self._namespace, 0)
        sample_ns = self._namespace if self._namespace != ALL_NAMESPACES else (min(namespaces) if namespaces else "")
        sample = self._sample(sample_ns) if count else None
        fields: dict[str, str] = {}
        bytes_per_record = 4 * (dimension or 0) + 16
        has_text = False
        if sample is not None and len(sample):
            fields = _metadata_types(sample.metadata)
            meta_bytes = sum(lint.metadata_size(m) for m in sample.metadata) / len(sample)
            id_bytes = sum(len(str(i)) for i in sample.ids) / len(sample)
            text_bytes = sum(len(t.encode()) for t in (sample.texts or []) if t) / len(sample)
            bytes_per_record = int(4 * (dimension or 0) + meta_bytes + id_bytes + text_bytes)
            has_text = bool(sample.texts) and any(t is not None for t in sample.texts or [])
        extra["namespaces"] = namespaces
        return Inventory(
            provider=self.name,
            collection=name,
            exists=True,
            dimension=dimension,
            metric=metric,
            count=count,
            count_exact=True,
            id_type="text",
            fields=fields,
            index={"type": "managed"},  # Pinecone tunes it: no parameters to carry (vecmig.indexes)
            bytes_per_record=bytes_per_record,
            has_text=has_text,
            extra=extra,
            **where,
        )

    def _namespace_counts(self) -> dict[str, int]:
        stats = self._call("reading index stats", lambda: self._data().describe_index_stats())
        return {canonical_namespace(k): int(v.vector_count) for k, v in sorted(stats.namespaces.items())
                if v.vector_count}

    def _sample(self, namespace: str) -> Batch:
        """The first list page's records: deterministic while the data does not change."""
        ids, _ = self._list_page(namespace, None)
        return self._fetch_ordered(namespace, ids[:SAMPLE_SIZE])

    @classmethod
    def describe_shard(cls, shard: dict[str, Any]) -> str:
        if "namespace" in shard:
            return f"namespace {shard['namespace'] or '(default)'}"
        return super().describe_shard(shard)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """One shard per namespace: list tokens are opaque, so no id-range cuts exist."""
        if not inventory.exists:
            return []
        if self._namespace == ALL_NAMESPACES:
            counts: dict[str, int] = inventory.extra.get("namespaces") or {}
            return [{"namespace": ns, "records": int(n)} for ns, n in sorted(counts.items())]
        return [{"namespace": self._namespace, "records": int(inventory.count or 0)}]

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        if shard is not None and "namespace" in shard:
            yield from self._scan_namespace(canonical_namespace(shard["namespace"]), cursor, batch_size)
            return
        if self._namespace != ALL_NAMESPACES:
            yield from self._scan_namespace(self._namespace, cursor, batch_size)
            return
        # Every namespace in order; the cursor says which one it is in.
        names = sorted(self._namespace_counts())
        start = names.index(cursor["ns"]) if cursor and cursor.get("ns") in names else 0
        for pos, ns in enumerate(names[start:]):
            inner = cursor if (pos == 0 and cursor and cursor.get("ns") == ns) else None
            for batch in self._scan_namespace(ns, inner, batch_size):
                batch.cursor = {**batch.cursor, "ns": ns}
                yield batch

    def _scan_namespace(self, namespace: str, cursor: Any, batch_size: int) -> Iterator[Batch]:
        size = max(1, int(batch_size))
        # Pages whose records are being fetched: (page token, ids, first index, future).
        window: list[tuple[str | None, list[str], int, Future[dict[str, Any]]]] = []
        listed = 0
        pool = self._executor()
        try:
            for token, ids, start in self._pages(namespace, cursor):
                if start >= len(ids):
                    continue
                wanted = ids[start:]
                window.append((token, ids, start, pool.submit(self._fetch_group_many, namespace, wanted)))
                listed += len(wanted)
                while listed >= size:
                    batch, window, listed = self._take(namespace, window, size)
                    yield batch
            while window:
                batch, window, listed = self._take(namespace, window, size)
                yield batch
        finally:
            # A failed or abandoned scan (the consumer stopped early) leaves no queued fetches.
            for *_, future in window:
                future.cancel()

    def _take(self, namespace: str, window: list[tuple[str | None, list[str], int, Future[dict[str, Any]]]],
              size: int) -> tuple[Batch, list[tuple[str | None, list[str], int, Future[dict[str, Any]]]], int]:
        """The next ``size`` listed ids as a batch; a page cut in two stays in the window."""
        order: list[str] = []
        got: dict[str, Any] = {}
        last: tuple[str | None, int, str] | None = None
        rest = list(window)
        while rest and len(order) < size:
            token, ids, start, future = rest[0]
            records = future.result()
            room = size - len(order)
            take = ids[start : start + room]
            order.extend(take)
            got.update({k: records[k] for k in take if k in records})
            end = start + len(take)
            last = (token, end, ids[end - 1])
            if end < len(ids):
                rest[0] = (token, ids, end, future)
            else:
                rest.pop(0)
        batch = self._to_batch([i for i in order if i in got], got, namespace)
        assert last is not None
        batch.cursor = {"token": last[0], "offset": last[1], "after": last[2]}
        remaining = sum(len(ids) - start for _, ids, start, _ in rest)
        return batch, rest, remaining

    def _pages(self, namespace: str, cursor: Any) -> Iterator[tuple[str | None, list[str], int]]:
        """(token that lists the page, its ids, index of the first id not yet consumed)."""
        token: str | None = cursor.get("token") if cursor else None
        after: str | None = cursor.get("after") if cursor else None
        offset = int(cursor.get("offset") or 0) if cursor else 0
        try:
            ids, nxt = self._list_page(namespace, token, resuming=token is not None)
        except _StaleToken:
            token, offset = None, 0  # restart the listing; `after` skips what was consumed
            ids, nxt = self._list_page(namespace, None)
        skipping = after is not None
        first = True
        while True:
            start = 0
            if skipping:
                assert after is not None
                if first and 0 < offset <= len(ids) and ids[offset - 1] == after:
                    start, skipping = offset, False  # the page is as we left it
                else:
                    if all(a < b for a, b in pairwise(ids)):
                        start = bisect.bisect_right(ids, after)
                    else:
                        start = next((i for i, x in enumerate(ids) if x > after), len(ids))
                    # Until a page yields ids past `after`, the next one may hold consumed ids.
                    skipping = start >= len(ids)
            first = False
            yield token, ids, start
            if not nxt:
                return
            token = nxt
            ids, nxt = self._list_page(namespace, token)

    def _list_page(self, namespace: str, token: str | None, resuming: bool = False) -> tuple[list[str], str | None]:
        index = self._data()

        def page() -> Any:
            try:
                return index.list_paginated(namespace=namespace, limit=LIST_LIMIT, pagination_token=token)
            except ApiError as exc:
                if resuming and status_of(exc) == 400:
                    raise _StaleToken() from None
                raise

        result = self._call(f"listing ids in namespace {namespace!r}", page)
        ids = [v.id for v in result.vectors if v.id is not None]
        nxt = result.pagination.next if result.pagination is not None else None
        return ids, nxt

    def _fetch_group_many(self, namespace: str, ids: Sequence[str]) -> dict[str, Any]:
        """Fetch ``ids`` in URL-sized requests (sequentially: callers parallelise pages)."""
        out: dict[str, Any] = {}
        index = self._data()
        for group in packing.fetch_groups(ids, namespace=namespace):
            doing = f"fetching {len(group)} records from namespace {namespace!r}"
            result = self._call(doing, functools.partial(index.fetch, ids=group, namespace=namespace))
            out.update(result.vectors)
        return out

    def _fetch_parallel(self, namespace: str, ids: Sequence[str]) -> dict[str, Any]:
        groups = packing.fetch_groups(ids, namespace=namespace)
        if len(groups) <= 1:
            return self._fetch_group_many(namespace, ids)
        futures = [self._executor().submit(self._fetch_group_many, namespace, g) for g in groups]
        out: dict[str, Any] = {}
        for f in futures:
            out.update(f.result())
        return out

    def _fetch_ordered(self, namespace: str, ids: Sequence[str]) -> Batch:
        got = self._fetch_parallel(namespace, ids)
        return self._to_batch([i for i in ids if i in got], got, namespace)

    def _to_batch(self, ids: list[str], got: dict[str, Any], namespace: str) -> Batch:
        dim = self._dimension or 0
        records = [got[i] for i in ids]
        if records and dim:
            vectors = np.asarray([r.values for r in records], dtype=np.float32)
            if vectors.shape != (len(records), dim):
                raise TerminalError(f"index '{self.store.collection}' returned vectors of shape {vectors.shape}, "
                                    f"expected (n, {dim})")
        else:
            vectors = np.zeros((len(records), dim), dtype=np.float32)
        metadata: list[dict[str, Any]] = []
        texts: list[str | None] = []
        sparse: list[dict[str, list[Any]] | None] = []
        for r in records:
            meta = dict(r.metadata or {})
            text = meta.get(self._text_key)
            if isinstance(text, str):
                del meta[self._text_key]
            else:
                text = None
            if self._select is not None:
                meta = {k: meta[k] for k in self._select if k in meta}
            metadata.append(meta)
            texts.append(text)
            sv = r.sparse_values
            sparse.append(None if sv is None else {"indices": list(sv.indices), "values": list(sv.values)})
        batch = Batch(ids=list(ids), vectors=vectors, metadata=metadata,
                      texts=texts if any(t is not None for t in texts) else None)
        batch.extra["namespace"] = namespace
        if any(s is not None for s in sparse):
            batch.extra["sparse"] = sparse
        return batch

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        """A namespace is keyed by its string ids: each once, one type. ``namespace: "*"`` reads
        several namespaces, whose ids are unique only within each: the same id in two of them
        would land once in a target without namespaces (see :meth:`id_positions`)."""
        if self._namespace != ALL_NAMESPACES:
            return True
        return len(inventory.extra.get("namespaces") or {}) <= 1

    def check_ids(self, limit: int | None = None) -> IdReport:
        if self._namespace != ALL_NAMESPACES:
            return IdReport(id_type="text")
        report = super().check_ids(limit)
        if report.repeated_total:
            report.note = ("ids are unique only within a namespace, and namespace '*' copies every namespace "
                           "into one collection")
        return report

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        """Every id, namespace by namespace (list pages only, no fetch); positions count across
        namespaces in that order, and :meth:`describe_positions` names the namespace."""
        names = [self._namespace] if self._namespace != ALL_NAMESPACES else sorted(self._namespace_counts())
        starts: list[tuple[int, str]] = []
        self._position_namespaces = starts
        pos = 0
        for ns in names:
            starts.append((pos, ns))
            for _token, ids, _start in self._pages(ns, None):
                for rid in ids:
                    yield rid, pos
                    pos += 1

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        starts: list[tuple[int, str]] = getattr(self, "_position_namespaces", [])
        out: dict[int, str] = {}
        for p in positions:
            k = bisect.bisect_right([s for s, _ in starts], p) - 1
            out[p] = f"namespace {starts[k][1]!r}" if k >= 0 else f"record #{p + 1}"
        return out

    def fetch_matching(self, batch: Batch) -> Batch:
        """With ``namespace: "*"`` the same id may live in several namespaces: a source batch
        is answered from the namespace it was read from (its ``extra["namespace"]``)."""
        ns = batch.extra.get("namespace")
        return self.fetch(batch.ids, namespace=ns if isinstance(ns, str) else None)

    def fetch(self, ids: Sequence[RecordId], namespace: str | None = None) -> Batch:
        """Records among ``ids``, with ids of the requested type/value (int 5 asks for '5');
        ``namespace`` narrows ``namespace: "*"`` to one namespace."""
        wanted: dict[str, list[RecordId]] = {}
        for rid in ids:
            try:
                key = lint.wire_id(rid)
            except lint.RecordRejected:
                continue
            if lint.first_error(lint.id_findings(key)) is not None:
                continue  # Pinecone cannot hold such an id, so it is simply absent
            originals = wanted.setdefault(key, [])
            if not any(type(o) is type(rid) and o == rid for o in originals):
                originals.append(rid)
        keys = list(wanted)
        if not keys:
            return self._to_batch([], {}, self._namespace)
        if self._namespace == ALL_NAMESPACES and namespace is not None:
            batch = self._fetch_ordered(canonical_namespace(namespace), keys)
        elif self._namespace == ALL_NAMESPACES:
            got: dict[str, Any] = {}
            for ns in sorted(self._namespace_counts()):
                missing = [k for k in keys if k not in got]
                if not missing:
                    break
                got.update(self._fetch_parallel(ns, missing))
            batch = self._to_batch([k for k in keys if k in got], got, self._namespace)
        else:
            batch = self._fetch_ordered(self._namespace, keys)
        # Map back: one row per requested original id (5 and "5" both asked: both answered).
        positions = [(pos, orig) for pos, key in enumerate(batch.ids) for orig in wanted[str(key)]]
        out = batch.take([p for p, _ in positions])
        out.ids = [orig for _, orig in positions]
        if "sparse" in batch.extra:
            out.extra["sparse"] = [batch.extra["sparse"][p] for p, _ in positions]
        out.extra["namespace"] = batch.extra.get("namespace")
        return out

    def fetch_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> Batch:
        ns = shard.get("namespace") if shard else None
        return self.fetch(ids, namespace=ns if isinstance(ns, str) and self._namespace == ALL_NAMESPACES else None)

    def count(self) -> int:
        counts = self._namespace_counts()
        if self._namespace == ALL_NAMESPACES:
            return sum(counts.values())
        return counts.get(self._namespace, 0)

    def estimate_schema(self) -> CollectionSchema | None:
        inv = self.inventory()
        if not inv.exists:
            return None
        return CollectionSchema(dimension=int(inv.dimension or 0), metric=inv.metric or "cosine", id_type="text",
                                metadata=dict(inv.fields), text=inv.has_text)
