"""Writing: create and drop the index, upserts packed by size and sent concurrently, deletes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pinecone.errors import ConflictError, NotFoundError, PineconeError

from vecmig.errors import TerminalError, TransientError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import lint, packing
from vecmig.providers.pinecone.common import (
    ALL_NAMESPACES,
    DENSE_FIELD,
    METRICS,
    SPARSE_FIELD,
    _last_wins,
    _Oversize,
    _raise_first,
    _rejected,
    canonical_namespace,
)
from vecmig.providers.pinecone.errors import is_oversize
from vecmig.providers.pinecone.read import PineconeReader
from vecmig.records import Batch, RecordId


class PineconeWriter(PineconeReader):
    # ---- writing --------------------------------------------------------------------------

    def create_collection(self, schema: CollectionSchema) -> None:
        name = self._index_name()
        problem = lint.first_error(lint.dimension_findings(int(schema.dimension)))
        if problem is not None:
            raise TerminalError(f"cannot create '{name}': {problem.message}", hint=problem.hint)
        metric = schema.metric or "cosine"
        if metric not in METRICS:
            raise TerminalError(f"Pinecone has no metric '{metric}'", hint="use cosine, euclidean or dotproduct")
        create = self.store.create
        cloud = (create.cloud if create else None) or "aws"
        region = (create.region if create else None) or "us-east-1"
        protection = (create.deletion_protection if create else None) or "disabled"
        tags = {"created-by": "vecmig", **dict(create.tags if create else ())}
        # Room for sparse values when the spec asks, or when the planner saw them in the source.
        sparse = bool((create.sparse if create else False) or schema.sparse)
        if sparse and metric != "dotproduct":
            raise TerminalError(f"cannot create '{name}' with sparse values and metric {metric}",
                                hint=lint.RULES["PC009"][1])
        fields: dict[str, Any] = {DENSE_FIELD: {"type": "dense_vector", "dimension": int(schema.dimension),
                                                "metric": metric}}
        if sparse:
            fields[SPARSE_FIELD] = {"type": "sparse_vector"}
        existing = self._describe()
        if existing is None:
            pc = self._client()

            def create_index() -> Any:
                try:
                    return pc.indexes.create(
                        name=name, schema={"fields": fields},
                        deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
                        deletion_protection=protection, tags=tags, timeout=-1,
                    )
                except ConflictError:
                    return None  # created meanwhile (or our own lost response): checked below

            self._call(f"creating index '{name}'", create_index)
            existing = self._describe()
            if existing is None:
                raise TransientError(f"Pinecone index '{name}' was created but is not visible yet")
        self._check_shape(existing, int(schema.dimension), metric)
        self._model = self._wait_ready(name) if not existing.status.ready else existing
        stale, self._index = self._index, None  # the host may have changed with a re-created index
        if stale is not None:
            stale.close()

    def _check_shape(self, model: Any, dimension: int, metric: str) -> None:
        have_dim, have_metric, _ = self._shape(model)
        problems = []
        if have_dim != dimension:
            problems.append(f"dimension {have_dim} != {dimension}")
        if have_metric != metric:
            problems.append(f"metric {have_metric} != {metric}")
        if problems:
            raise TerminalError(
                f"Pinecone index '{model.name}' already exists with a different shape: {'; '.join(problems)}",
                hint=f"choose another {self._role}.collection or delete the existing index",
            )

    def drop_collection(self) -> None:
        name = self._index_name()
        model = self._describe()
        if model is None:
            return
        if model.deletion_protection == "enabled":
            raise TerminalError(f"Pinecone index '{name}' has deletion protection enabled",
                                hint="disable it in the Pinecone console (configure_index) first")
        pc = self._client()
        index, self._index, self._model = self._index, None, None
        if index is not None:
            index.close()

        def delete() -> None:
            with contextlib.suppress(NotFoundError):
                pc.indexes.delete(name, timeout=-1)

        self._call(f"deleting index '{name}'", delete)
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.05
        while self._describe() is not None:  # deletion is asynchronous: wait so a re-create works
            if time.monotonic() + delay > deadline:
                raise TransientError(f"Pinecone index '{name}' is still terminating after {self._ready_timeout:.0f}s")
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        namespace = self._write_namespace(batch)
        self._data()
        items, sizes = self._prepare(batch)
        items, sizes = _last_wins(items, sizes)
        overhead = packing.upsert_overhead(namespace)
        try:
            chunks = packing.pack(sizes, overhead=overhead, max_bytes=self._max_request_bytes)
        except packing.OversizeRecord as exc:
            rid = items[exc.position]["id"]
            raise TerminalError(f"record {rid!r} is {exc.size:,} bytes as JSON; a Pinecone request holds "
                                f"at most {exc.limit:,}", hint="shrink its metadata or text") from None
        work = [(items[c.start : c.stop], c.nbytes) for c in chunks]
        if len(work) == 1:
            self._send(namespace, *work[0])
            return
        futures = [self._executor().submit(self._send, namespace, part, nbytes) for part, nbytes in work]
        # Every request must finish (acknowledged or failed) before upsert returns or raises:
        # the caller checkpoints only after a clean return.
        errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            terminal = next((e for e in failed if not isinstance(e, TransientError)), None)
            raise terminal or failed[0]

    def _write_namespace(self, batch: Batch) -> str:
        if self._namespace != ALL_NAMESPACES:
            return self._namespace
        ns = batch.extra.get("namespace")
        if not isinstance(ns, str):
            raise TerminalError(
                "target namespace '*' needs batches that carry their source namespace",
                hint=f"set {self._role}.namespace to one namespace",
            )
        return canonical_namespace(ns)

    def _prepare(self, batch: Batch) -> tuple[list[dict[str, Any]], list[int]]:
        """SDK items (the wire shape) and their exact JSON sizes; enforces the lint rules."""
        model = self._ready_model()
        dim, metric, has_sparse = self._shape(model)
        vectors = np.asarray(batch.vectors)
        n = len(batch)
        if dim is not None and (vectors.ndim != 2 or vectors.shape != (n, dim)):
            raise TerminalError(
                f"vectors have shape {vectors.shape} but index '{model.name}' has dimension {dim}",
                hint="the target's dimension must match the source (or re-embed)",
            )
        nonfinite, zero = lint.vector_problems(vectors) if dim else (np.zeros(n, bool), np.zeros(n, bool))
        rows = packing.compact_float32(vectors).tolist() if dim else [[] for _ in range(n)]
        sparse_in: Sequence[Any] = batch.extra.get("sparse") or [None] * n
        texts = batch.texts if batch.texts is not None else [None] * n
        items: list[dict[str, Any]] = []
        sizes: list[int] = []
        for pos in range(n):
            rid = batch.ids[pos]
            try:
                key = lint.wire_id(rid)
            except lint.RecordRejected as exc:
                raise _rejected(rid, exc.finding) from None
            _raise_first(rid, lint.id_findings(rid))
            if nonfinite[pos]:
                _raise_first(rid, [lint.Finding("PC011", "dense vector holds NaN or Infinity", rid)])
            sparse, found = lint.sparse_findings(rid, sparse_in[pos], metric)
            _raise_first(rid, found)
            if sparse is not None and not has_sparse:
                raise TerminalError(
                    f"record {rid!r} has sparse values but index '{model.name}' has no sparse field",
                    hint="create the target with sparse values (metric dotproduct), or drop them",
                )
            if zero[pos] and sparse is None:
                _raise_first(rid, [lint.Finding("PC010", "dense vector is all zeros", rid)])
            meta, found = lint.clean_metadata(rid, batch.metadata[pos], nested=self._nested)
            _raise_first(rid, found)
            text = texts[pos]
            if text is not None:
                if self._text_key in meta and meta[self._text_key] != text:
                    _raise_first(rid, [lint.Finding(
                        "PC012", f"record text and metadata field '{self._text_key}' differ", rid)])
                meta[self._text_key] = text
            size = lint.metadata_size(meta) if meta else 0
            if size > lint.MAX_METADATA_BYTES:
                _raise_first(rid, [lint.Finding(
                    "PC001", f"metadata is {size:,} bytes (limit {lint.MAX_METADATA_BYTES:,})", rid)])
            # Exactly the dict the SDK serialises (pinecone._internal.data_plane_helpers._vector_to_dict).
            wire: dict[str, Any] = {"id": key, "values": rows[pos]}
            item: dict[str, Any] = {"id": key, "values": rows[pos]}
            if sparse is not None:
                sv = {"indices": sparse["indices"],
                      "values": packing.compact_float32(np.asarray(sparse["values"], np.float32)).tolist()}
                wire["sparseValues"] = sv
                item["sparse_values"] = sv
            if meta:
                wire["metadata"] = meta
                item["metadata"] = meta
            items.append(item)
            sizes.append(packing.wire_size(wire))
        return items, sizes

    def _send(self, namespace: str, items: list[dict[str, Any]], nbytes: int) -> None:
        """One upsert request, retried; split in two if the server finds it too large."""
        index = self._data()
        doing = f"upserting {len(items)} records into namespace {namespace!r}"

        def once() -> None:
            try:
                result = index.upsert(vectors=items, namespace=namespace)
            except PineconeError as exc:
                if is_oversize(exc) and len(items) > 1:
                    raise _Oversize() from None
                raise
            if result.upserted_count != len(items):
                raise TransientError(f"Pinecone acknowledged {result.upserted_count} of {len(items)} records")

        try:
            self._call(doing, once)
        except _Oversize:
            # Our measure and the server's disagree: remember a lower cap, send halves. Past
            # the documented limit, the documented limit is the cap; under it, the server
            # counts more than we do, so go 10% under what it refused.
            documented = packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN
            with self._lock:
                cap = documented if nbytes > packing.MAX_REQUEST_BYTES else int(nbytes * 0.9)
                self._max_request_bytes = min(self._max_request_bytes, cap)
                self.upsert_stats.splits += 1
            half = len(items) // 2
            ratio = half / len(items)
            self._send(namespace, items[:half], int(nbytes * ratio))
            self._send(namespace, items[half:], int(nbytes * (1 - ratio)))
            return
        with self._lock:
            s = self.upsert_stats
            s.requests += 1
            s.records += len(items)
            s.max_request_bytes = max(s.max_request_bytes, nbytes)
            s.max_request_records = max(s.max_request_records, len(items))

    def delete(self, ids: Sequence[RecordId]) -> None:
        keys: list[str] = []
        seen: set[str] = set()
        for rid in ids:
            try:
                key = lint.wire_id(rid)
            except lint.RecordRejected:
                continue
            if key not in seen and lint.first_error(lint.id_findings(key)) is None:
                seen.add(key)
                keys.append(key)
        if not keys:
            return
        names = sorted(self._namespace_counts()) if self._namespace == ALL_NAMESPACES else [self._namespace]
        step = packing.MAX_DELETE_IDS
        work = [(ns, keys[i : i + step]) for ns in names for i in range(0, len(keys), step)]
        futures = [self._executor().submit(self._delete_chunk, ns, chunk) for ns, chunk in work]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise errors[0]

    def delete_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> None:
        ns = shard.get("namespace") if shard else None
        if not (isinstance(ns, str) and self._namespace == ALL_NAMESPACES):
            self.delete(ids)
            return
        keys = list(dict.fromkeys(lint.wire_id(rid) for rid in ids))
        step = packing.MAX_DELETE_IDS
        for i in range(0, len(keys), step):
            self._delete_chunk(canonical_namespace(ns), keys[i:i + step])

    def _delete_chunk(self, namespace: str, chunk: list[str]) -> None:
        index = self._data()

        def delete() -> None:
            try:
                index.delete(ids=chunk, namespace=namespace)
            except NotFoundError:
                # Serverless answers 404 for a namespace holding nothing: the ids are gone
                # already. A missing index is reported by the describe below.
                if self._describe() is None:
                    raise
        self._call(f"deleting {len(chunk)} records from namespace {namespace!r}", delete)
