"""Pinecone serverless as a source and a target, through the official ``pinecone`` SDK (10.x).

Spec::

    provider: pinecone
    connection: {api_key: "${env:PINECONE_API_KEY}", host: "http://127.0.0.1:5080"}  # host optional
    collection: docs            # the index name
    namespace: prod             # omitted or "__default__": the default namespace ""; "*": all (source)
    fields: {text: body}        # the metadata key holding the record text (default "text")
    create: {dimension: 1536, metric: cosine}

Reading. Pinecone has no "scan": ``list`` pages ids (100 per page, ordered by id within a
namespace, opaque pagination tokens) and ``fetch`` returns records by id. A scan lists pages
and fetches each page's ids concurrently as soon as the page arrives. The cursor after a
batch is ``{"token": <token of the page holding the batch's last id>, "offset": <its index
+ 1>, "after": <that id>}``: resuming re-lists that one page and continues at ``offset``
when the id there is still ``after`` (exact even if the server did not order ids), else at
the first id > ``after`` (ids are ordered); a token the server no longer accepts restarts
the listing from the first page, skipping ids <= ``after``. So a resumed scan neither skips
nor repeats. Tokens being opaque, a namespace cannot be cut into id ranges: shards are
namespaces (one shard for a configured namespace, one per namespace for ``"*"``).

Writing. Upserts are packed by measured JSON size (``packing``) under both limits (1000
records, 2 MB), sent ``concurrency`` at a time from a thread pool, and ``upsert`` returns
only when every request of the batch was acknowledged. Every record first passes the rules
of ``lint`` (a rule-breaking record raises :class:`TerminalError` naming its id; nulls are
dropped, which Pinecone does anyway). Ids go out as strings; ``fetch`` maps them back to the
type the caller asked with, so checksums computed on both sides compare equal.

Errors. The SDK retries 408/429/5xx and dropped connections 3 times itself (within a
process-wide per-host retry budget); every request is also wrapped in vecmig's bounded
``with_retries``, which honours ``Retry-After``. 401/403/404/400 become one-line
:class:`TerminalError` s saying what to fix. Secrets: the API key never reaches a message,
a log line or a repr, and SDK exceptions are not chained (their requests carry the key).

Counts come from ``describe_index_stats``: exact on the local test server, eventually
consistent on the real service (a count right after a write can lag by seconds).

Measured against the local server in a child process with 50 ms added per request, on 2
cores (bench/pinecone_throughput.py): upserts of 768-dim records at ~1.7k / 2.2k / 2.6k
records/s at concurrency 1 / 4 / 16 (the SDK's own ``batch_size=100`` recipe: ~1.15k), CPU
bound on JSON at both ends; request counts within 1-2% of the minimum for one batch of
10,000, within 5% for engine batches of 1000 except small records (see the report). The
throughput model below estimates the managed service, not the local server.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, ClassVar, TypeVar

import numpy as np
from pinecone import Pinecone
from pinecone.errors import ApiError, ConflictError, NotFoundError, PineconeError
from pinecone.models.indexes.schema import DenseVectorField, SparseVectorField

from vecmig.errors import TerminalError, TransientError
from vecmig.ids import IdReport
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider, Throughput, per_record_rate
from vecmig.providers.pinecone import lint, packing, pricing
from vecmig.providers.pinecone.errors import classify, is_oversize, status_of
from vecmig.records import Batch, RecordId
from vecmig.retry import with_retries
from vecmig.spec import StoreSpec
from vecmig.state.redact import Redactor, secret_parts

T = TypeVar("T")

ALL_NAMESPACES = "*"
DEFAULT_NAMESPACE = ""
DEFAULT_NAMESPACE_ALIAS = "__default__"
DEFAULT_CONCURRENCY = 4
LIST_LIMIT = 100  # ids per list page: the API's maximum
SAMPLE_SIZE = 100  # records fetched by inventory() to type the metadata
DENSE_FIELD = "_values"  # the schema field names the vectors API addresses
SPARSE_FIELD = "_sparse_values"
METRICS = ("cosine", "euclidean", "dotproduct")
MAX_INDEX_NAME = 45

# Per-request latency of managed Pinecone seen from a client in the same region.
LATENCY_S = (0.05, 0.15)
# Documented serverless rate limits that cap one namespace / one index, whatever the client does.
UPSERT_MB_PER_S_PER_NAMESPACE = 50.0
UPSERT_REQUESTS_PER_S_PER_NAMESPACE = 100.0
FETCH_REQUESTS_PER_S_PER_INDEX = 100.0
LIST_REQUESTS_PER_S_PER_INDEX = 200.0


def wire_bytes_per_record(dimension: int, metadata_bytes: int, id_bytes: int = 16) -> int:
    """JSON bytes of one record in an upsert body: ~10.9 bytes per compact float32."""
    return int(id_bytes + 30 + metadata_bytes + 10.9 * dimension)


def model_throughput(dimension: int = 1536, metadata_bytes: int = 1024, *, concurrency: int = DEFAULT_CONCURRENCY,
                     latency_s: tuple[float, float] = LATENCY_S, id_bytes: int = 16) -> Throughput:
    """Records/s one worker moves, from request size, requests in flight and latency.

    Writes: ``records per request = min(1000, 2 MB / wire bytes)``; a worker keeps
    ``concurrency`` requests in flight, so ``concurrency / latency`` requests per second,
    capped by the namespace limits (100 upserts/s, 50 MB/s). Reads: list pages (100 ids) are
    a sequential chain (``100 / latency`` ids/s per namespace), each page fetched in parallel
    with the next listing. The rate uses the low latency; ``spread`` covers the high one.
    """
    low, high = latency_s
    wire = wire_bytes_per_record(dimension, metadata_bytes, id_bytes)
    stored = id_bytes + metadata_bytes + 4 * dimension
    per_request = max(1, min(packing.MAX_UPSERT_RECORDS, (packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN) // wire))
    requests_per_s = min(concurrency / low, UPSERT_REQUESTS_PER_S_PER_NAMESPACE)
    write = min(requests_per_s * per_request, UPSERT_MB_PER_S_PER_NAMESPACE * 1e6 / wire)
    read = min(LIST_LIMIT / low, LIST_REQUESTS_PER_S_PER_INDEX * LIST_LIMIT,
               FETCH_REQUESTS_PER_S_PER_INDEX * LIST_LIMIT)
    return Throughput(
        read_records_per_s=round(read, 1),
        write_records_per_s=round(write, 1),
        read_mb_per_s=round(read * stored / 1e6, 3),
        write_mb_per_s=round(write * stored / 1e6, 3),
        # Workers share one namespace's limits: past ~4 writers the namespace caps bind.
        max_parallel=4,
        spread=round(high / low, 2),
    )


# A Pinecone-protocol server on this machine (Pinecone Local, tests/pinecone_local) is bound
# by this machine's CPU, JSON at both ends, not by a region's latency: µs per record = fixed +
# per dimension, measured with bench/estimate_models.py (20k records, 64 and 384 dims, the
# loaded 2-core machine, concurrency 2, the whole copy wave: one namespace is one shard).
LOCAL_WRITE_US = (90.0, 0.57)  # upserts, the copy wave at concurrency 2
LOCAL_READ_US = (165.0, 1.0)  # list pages and fetches, one chain per namespace
LOCAL_FETCH_US = (92.0, 1.6)  # fetched by id and hashed (validation's target side)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


def is_local(host: object) -> bool:
    """Whether ``host`` (the spec's connection host, a URL) is served by this machine."""
    if not isinstance(host, str) or "://" not in host:
        return False
    netloc = host.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    name = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    return name in LOOPBACK


def local_throughput(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*LOCAL_READ_US, dimension),
        write_records_per_s=per_record_rate(*LOCAL_WRITE_US, dimension),
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=1,  # the figures are already the wave's at the measured concurrency
        spread=1.0,
        startup_s=0.05,
        fetch_records_per_s=per_record_rate(*LOCAL_FETCH_US, dimension),
    )


@dataclass
class UpsertStats:
    """What upsert sent (for benchmarks and tests): requests acknowledged and their sizes."""

    requests: int = 0
    records: int = 0
    max_request_bytes: int = 0
    max_request_records: int = 0
    splits: int = 0


class _Oversize(Exception):
    """The server refused a request for its size: split it (not a retry of the same bytes)."""


class PineconeProvider(Provider):
    name: ClassVar[str] = "pinecone"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=True,
        indexes=(),
        sparse=True,
        server_side_count=True,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        max_dimension=lint.MAX_DIMENSION,
        # Measured (bench/pinecone_throughput.py, 384 dims): engine batches of 1000 sent 36%
        # more requests than the limits need, batches of 10,000 under 5%: a request holds at
        # most 1000 records / 2 MB, so only large calls let the packer fill them.
        preferred_batch_records=10_000,
    )
    # Modelled for a typical record (1536 dims, 1 KB metadata) at the default concurrency;
    # model_throughput() gives the figures for another shape.
    throughput: ClassVar[Throughput] = model_throughput()

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        conn = store.connection or {}
        self._api_key: str | None = _opt_str(conn.get("api_key"))
        self._host: str | None = _opt_str(conn.get("host"))
        # Provider options from the spec's connection (schema: x-providers pinecone).
        self._concurrency = max(1, int(conn.get("concurrency", DEFAULT_CONCURRENCY)))
        self._nested: lint.NestedPolicy = "json" if conn.get("nested_metadata") == "json" else "error"
        self._timeout = float(conn.get("timeout", 30.0))
        self._ready_timeout = float(conn.get("ready_timeout", 300.0))
        self._namespace = canonical_namespace(store.namespace)
        self._text_key = store.fields.text or "text"
        self._select = tuple(store.fields.metadata) if isinstance(store.fields.metadata, tuple | list) else None
        # The key and, should the host be a URL with userinfo, that too.
        self._secrets = tuple(s for s in (self._api_key, *secret_parts(str(conn.get("host") or ""), whole=False))
                              if s)
        self._pc: Pinecone | None = None
        self._index: Any = None
        self._model: Any = None  # IndexModel of a ready index, cached per instance
        self._pool: ThreadPoolExecutor | None = None
        self._max_request_bytes = packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN
        self._lock = threading.Lock()  # upsert_stats and the adaptive request cap
        self._open_lock = threading.RLock()  # lazy client/index creation, reached from pool threads
        self.upsert_stats = UpsertStats()

    def __repr__(self) -> str:
        # Never the client: the SDK's repr shows the key's last characters.
        return f"PineconeProvider(index={self.store.collection!r}, namespace={self._namespace!r})"

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    def connect(self) -> None:
        self._client()

    def _client(self) -> Pinecone:
        with self._open_lock:
            return self._pc if self._pc is not None else self._new_client()

    def _new_client(self) -> Pinecone:
        try:
            # Pool large enough that `concurrency` connections stay alive between requests
            # (httpx keeps half the pool alive).
            self._pc = Pinecone(api_key=self._api_key, host=self._host, timeout=self._timeout,
                                connection_pool_maxsize=max(20, 2 * self._concurrency + 4))
        except PineconeError as exc:
            raise TerminalError(
                f"cannot configure the Pinecone client: {_scrubbed(exc, self._secrets)}",
                hint=f"set {self._role}.connection.api_key (e.g. \"${{env:PINECONE_API_KEY}}\") to a valid key",
            ) from None
        return self._pc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        index, self._index = self._index, None
        if index is not None:
            index.close()
        pc, self._pc = self._pc, None
        if pc is not None:
            pc.close()
        self._model = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="vecmig-pinecone")
        return self._pool

    # ---- calling the SDK ------------------------------------------------------------------

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        """One SDK request with vecmig's bounded retries around the SDK's own."""

        def attempt() -> T:
            try:
                return fn()
            except PineconeError as exc:
                raise classify(exc, doing=doing, index=self.store.collection, role=self._role,
                               secrets=self._secrets) from None

        return with_retries(attempt, attempts=6, base=0.25, cap=10.0, budget=180.0)

    def _index_name(self) -> str:
        name = self.store.collection
        if not name:
            raise TerminalError(f"{self._role}.collection is required", hint="name the Pinecone index")
        if len(name) > MAX_INDEX_NAME or not _valid_index_name(name):
            raise TerminalError(
                f"'{name}' is not a valid Pinecone index name",
                hint="use lowercase letters, digits and '-', at most 45 characters, starting and ending alphanumeric",
            )
        return name

    def _describe(self) -> Any:
        """The index's IndexModel, or None when it does not exist."""
        name = self._index_name()
        pc = self._client()

        def describe() -> Any:
            try:
                return pc.indexes.describe(name)
            except NotFoundError:
                return None

        return self._call(f"describing index '{name}'", describe)

    def _ready_model(self) -> Any:
        """IndexModel of an existing index, waiting (bounded) while it initializes."""
        if self._model is not None:
            return self._model
        model = self._describe()
        if model is None:
            raise TerminalError(
                f"Pinecone index '{self.store.collection}' does not exist",
                hint=f"check {self._role}.collection, or let vecmig create it (target.create)",
            )
        if not model.status.ready:
            model = self._wait_ready(model.name)
        self._model = model
        return model

    def _data(self) -> Any:
        """The data-plane client for the index's own host (from describe); one per instance,
        shared by the pool's threads (httpx clients are thread-safe)."""
        with self._open_lock:
            if self._index is None:
                model = self._ready_model()
                try:
                    self._index = self._client().Index(host=model.host)
                except PineconeError as exc:
                    raise TerminalError(
                        f"cannot open index '{model.name}': {_scrubbed(exc, self._secrets)}"
                    ) from None
            return self._index

    def _wait_ready(self, name: str) -> Any:
        # Our own short polling: the SDK's create() would poll every 5 s.
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.05
        while True:
            model = self._describe()
            if model is None:
                raise TerminalError(f"Pinecone index '{name}' disappeared while vecmig waited for it")
            state = str(model.status.state)
            if model.status.ready:
                return model
            if state in ("InitializationFailed", "Terminating", "Disabled"):
                raise TerminalError(
                    f"Pinecone index '{name}' is {state}",
                    hint="delete it in the Pinecone console (or vecmig rollback) and apply again",
                )
            if time.monotonic() + delay > deadline:
                raise TransientError(
                    f"Pinecone index '{name}' is still {state} after {self._ready_timeout:.0f}s",
                    hint="apply again later: the index keeps initializing",
                )
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)

    # ---- shape ----------------------------------------------------------------------------

    def _shape(self, model: Any) -> tuple[int | None, str, bool]:
        """(dimension, metric, has sparse field) from the 2026-07 schema."""
        fields = dict(model.schema.fields)
        dense = [f for f in fields.values() if isinstance(f, DenseVectorField)]
        sparse = any(isinstance(f, SparseVectorField) for f in fields.values())
        if len(dense) > 1 or (not dense and not sparse):
            raise TerminalError(
                f"Pinecone index '{model.name}' is a document index ({', '.join(sorted(fields))}); "
                "vecmig moves vector indexes",
                hint=f"point {self._role}.collection at an index created with a dimension",
            )
        if dense:
            return int(dense[0].dimension), str(dense[0].metric or "cosine"), sparse
        return None, "dotproduct", sparse

    @property
    def _dimension(self) -> int | None:
        return self._shape(self._ready_model())[0]

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
            index=None,
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

    def delete_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> None:
        ns = shard.get("namespace") if shard else None
        if not (isinstance(ns, str) and self._namespace == ALL_NAMESPACES):
            self.delete(ids)
            return
        keys = list(dict.fromkeys(lint.wire_id(rid) for rid in ids))
        step = packing.MAX_DELETE_IDS
        for i in range(0, len(keys), step):
            self._delete_chunk(canonical_namespace(ns), keys[i:i + step])

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

    # ---- planning hooks (no requests) -------------------------------------------------------

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        """The model for records shaped like ``inventory``'s, at the spec's requests in flight.

        ``max_parallel`` is how many workers fit under the namespace's limits before they only
        share them (a worker already at the cap: 1), so more shards do not shorten the estimate.
        """
        dimension = int(inventory.dimension or 1536)
        if store is not None and is_local(store.connection.get("host")):
            return local_throughput(dimension)
        per_record = int(inventory.bytes_per_record or 0)
        metadata_bytes = max(0, per_record - 4 * dimension - 16) if per_record else 1024
        in_flight = DEFAULT_CONCURRENCY
        if store is not None:
            in_flight = max(1, int(store.connection.get("concurrency", DEFAULT_CONCURRENCY)))
        tp = model_throughput(dimension, metadata_bytes, concurrency=in_flight)
        wire = wire_bytes_per_record(dimension, metadata_bytes)
        per_request = max(1, min(packing.MAX_UPSERT_RECORDS,
                                 (packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN) // wire))
        cap = min(UPSERT_REQUESTS_PER_S_PER_NAMESPACE * per_request, UPSERT_MB_PER_S_PER_NAMESPACE * 1e6 / wire)
        workers = max(1, int(cap // tp.write_records_per_s)) if tp.write_records_per_s else 1
        return replace(tp, max_parallel=max(1, min(workers, max(1, concurrency))))

    def cost(self, operation: str, records: int, nbytes: int, prices: Mapping[str, Any]) -> dict[str, float]:
        """Write units, read units and storage in USD from ``pricing`` (list prices unless
        the spec's ``cost: {pinecone: ...}`` overrides them)."""
        if records <= 0:
            return {}
        try:
            table = pricing.table(dict(prices))
        except ValueError as exc:
            raise TerminalError(str(exc), hint="fix cost.pinecone in the spec") from None
        per_record = max(1, nbytes // records)
        if operation == "write":
            usage = pricing.write_usage(records, per_record)
        elif operation == "scan":
            usage = pricing.read_usage(records)
        elif operation == "fetch":
            usage = pricing.fetch_usage(records)
        elif operation == "storage":
            usage = pricing.storage_usage(records, per_record, months=1.0)
        else:
            return {}
        return usage.cost(table)

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """Every rule ``upsert`` enforces, over the sample, one finding per code with examples."""
        found = lint.lint_sample(sample, dimension=int(schema.dimension) if schema.dimension else None,
                                 metric=schema.metric, text_key=self._text_key, nested=self._nested)
        return [LintFinding(code=f.code, severity=f.severity, message=f.message, hint=f.hint)
                for f in lint.summarize(found)]

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


class _StaleToken(Exception):
    """A pagination token from a saved cursor was refused (expired or foreign)."""


# ---- helpers ----------------------------------------------------------------------------------


def canonical_namespace(name: Any) -> str:
    """The default namespace is "" (the API spells it "" or "__default__"); None means it too."""
    if name is None or name == DEFAULT_NAMESPACE_ALIAS:
        return DEFAULT_NAMESPACE
    return str(name)


def _valid_index_name(name: str) -> bool:
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return bool(name) and set(name) <= ok and name[0] != "-" and name[-1] != "-"


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _scrubbed(exc: BaseException, secrets: tuple[str, ...]) -> str:
    return Redactor(secrets)(" ".join(str(getattr(exc, "message", exc)).split()))


def _rejected(rid: RecordId, finding: lint.Finding) -> TerminalError:
    return TerminalError(f"record {rid!r} cannot be written to Pinecone: {finding.message} [{finding.code}]",
                         hint=finding.hint)


def _raise_first(rid: RecordId, findings: list[lint.Finding]) -> None:
    problem = lint.first_error(findings)
    if problem is not None:
        raise _rejected(rid, problem)


def _last_wins(items: list[dict[str, Any]], sizes: list[int]) -> tuple[list[dict[str, Any]], list[int]]:
    """One record per id, the last one: concurrent requests must not race on a duplicate id."""
    last = {item["id"]: pos for pos, item in enumerate(items)}
    if len(last) == len(items):
        return items, sizes
    keep = sorted(last.values())
    return [items[p] for p in keep], [sizes[p] for p in keep]


def _metadata_types(metadata: list[dict[str, Any]]) -> dict[str, str]:
    """Logical types of sampled metadata. Numbers are "float": Pinecone keeps only doubles."""
    kinds: dict[str, set[str]] = {}
    for meta in metadata:
        for key, value in meta.items():
            kind = ("bool" if isinstance(value, bool) else "float" if isinstance(value, int | float)
                    else "text" if isinstance(value, str) else "text[]" if isinstance(value, list) else "json")
            kinds.setdefault(key, set()).add(kind)
    return {k: (next(iter(v)) if len(v) == 1 else "json") for k, v in sorted(kinds.items())}
