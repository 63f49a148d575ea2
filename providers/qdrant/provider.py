"""Qdrant as a source and a target, through the official ``qdrant-client`` over REST.

Spec (README "Qdrant"): ``connection: {url, api_key?, timeout?}``, ``fields.text`` (the
text's payload key, default "text"), ``fields.vector`` (the named vector, where several).

Records. A point's payload is the record's metadata, as Qdrant keeps JSON (int stays int,
float stays float, bool, null, strings, lists, objects), plus the text under the text key.
Ids follow :mod:`~vecmig.providers.qdrant.ids`: unsigned 64-bit ints are point ids, anything
else a derived UUID with the original in payload key ``_vecmig_id``. Vectors are float32 on
both sides of the wire; JSON carries each as a decimal that reads back to the same float32.
A cosine collection stores its vectors normalised, so vecmig refuses one as a target (QD003).

Reading. ``scroll`` pages points in Qdrant's id order (integers, then UUIDs); its offset is
inclusive, so a scan resumes at the cursor (the last point id of a batch) and skips that one
point. Shards are ranges of point ids ``[lo, hi)`` cut from one ids-only scroll.

Aliases. ``target.alias`` is a Qdrant collection alias: blue-green cutover repoints it with
``delete_alias`` + ``create_alias`` in one request, which Qdrant applies atomically.

Writing. Upserts go with ``wait=true`` (returned = applied), packed under the server's 32 MB
request limit by estimated size and split further if a request is still refused as too large.
Every record first passes the rules of :mod:`~vecmig.providers.qdrant.lint`; a record that
breaks one stops the batch with a one-line error naming it. Upserts and deletes are by point
id, so replaying a batch is harmless.

Errors. Each request runs under vecmig's bounded retries: 429/5xx and transport failures are
transient, other 4xx terminal (:mod:`~vecmig.providers.qdrant.errors`). The API key and the
URL (which may carry credentials) never reach a message.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider, Throughput
from vecmig.providers.fidelity import refuse_sparse
from vecmig.providers.qdrant import ids, indexinfo, lint, records, search, speed
from vecmig.providers.qdrant.errors import classify, is_oversize
from vecmig.records import Batch, RecordId, metadata_types
from vecmig.retry import with_retries
from vecmig.search import Hit
from vecmig.spec import Fields, StoreSpec
from vecmig.state.redact import secret_parts

T = TypeVar("T")

DISTANCE = {"cosine": models.Distance.COSINE, "euclidean": models.Distance.EUCLID,
            "dotproduct": models.Distance.DOT}
METRIC = {models.Distance.COSINE: "cosine", models.Distance.EUCLID: "euclidean", models.Distance.DOT: "dotproduct",
          models.Distance.MANHATTAN: "manhattan"}
SAMPLE_SIZE = 100
IDS_PAGE = 10_000  # ids per ids-only scroll page when cutting shards
# Requests stay well under Qdrant's default 32 MB body limit: the estimate below is rough.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_REQUEST_POINTS = 1000
FIRST_UUID = "00000000-0000-0000-0000-000000000000"  # scroll offset of the first UUID-keyed point


class _Oversize(Exception):
    """The server refused a request for its size: send it in halves (not the same bytes again)."""


class QdrantProvider(Provider):
    name: ClassVar[str] = "qdrant"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=True,
        namespaces=False,
        indexes=(),
        sparse=False,
        server_side_count=True,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        max_dimension=65_536,
        exact_numbers=True,  # payload numbers keep their JSON type (1 and 1.0 differ)
        search="index",
        search_filters=True,
    )
    throughput: ClassVar[Throughput] = speed.model(768)
    # Every collection has an HNSW index with Qdrant's defaults (vecmig creates it without hnsw_config).
    own_index: ClassVar[dict[str, Any] | None] = {"type": "hnsw", "m": 16, "ef_construction": 100}

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        conn = store.connection or {}
        self._url = str(conn.get("url") or "")
        self._api_key = str(conn["api_key"]) if conn.get("api_key") else None
        self._timeout = float(conn.get("timeout", 60.0))
        self._text_key = store.fields.text or "text"
        self._secrets = tuple(s for s in (self._api_key, self._url, *secret_parts(self._url, whole=False)) if s)
        self._client: QdrantClient | None = None
        self._vector_name: str | None = None  # None: the collection's unnamed vector
        self._shape: tuple[int, str] | None = None  # (dimension, metric) once read

    def __repr__(self) -> str:
        return f"QdrantProvider(collection={self.store.collection!r})"

    # ---- plumbing -------------------------------------------------------------------------

    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    @property
    def _collection(self) -> str:
        if not self.store.collection:
            raise TerminalError(f"{self._role}.collection is required", hint="name the Qdrant collection")
        return self.store.collection

    def connect(self) -> None:
        self._qdrant()

    def _qdrant(self) -> QdrantClient:
        if self._client is None:
            if not self._url:
                raise TerminalError(f"{self._role}.connection.url is required",
                                    hint='set url, e.g. "http://localhost:6333"')
            try:
                with warnings.catch_warnings():  # "api key over http": the spec chose the url on purpose
                    warnings.simplefilter("ignore")
                    self._client = QdrantClient(url=self._url, api_key=self._api_key, prefer_grpc=False,
                                                timeout=max(1, int(self._timeout)), check_compatibility=False)
            except Exception:  # the url's text may be a secret: not shown
                raise TerminalError(f"{self._role}.connection.url is not a Qdrant REST URL qdrant-client can use",
                                    hint='write it as http(s)://host:port, e.g. "http://localhost:6333"') from None
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, doing: str, fn: Callable[[QdrantClient], T], *, splittable: bool = False) -> T:
        """One request under bounded retries; client exceptions never chain (no secrets).
        ``splittable``: a request refused for its size raises :class:`_Oversize` instead."""
        client = self._qdrant()

        def attempt() -> T:
            try:
                return fn(client)
            except Exception as exc:  # every client failure is classified
                if splittable and is_oversize(exc):
                    raise _Oversize from None
                raise classify(exc, doing=doing, collection=self.store.collection, role=self._role,
                               secrets=self._secrets) from None

        return with_retries(attempt, attempts=6, base=0.25, cap=10.0, budget=180.0)

    # ---- shape ----------------------------------------------------------------------------

    def _info(self) -> models.CollectionInfo | None:
        name = self._collection
        if not self._call(f"checking collection '{name}'", lambda c: c.collection_exists(name)):
            return None
        return self._call(f"reading collection '{name}'", lambda c: c.get_collection(name))

    def _read_shape(self, info: models.CollectionInfo) -> tuple[int, str]:
        sparse = info.config.params.sparse_vectors
        if sparse:  # never left behind silently: vecmig would move the dense vectors only
            raise TerminalError(
                f"Qdrant collection '{self._collection}' holds sparse vectors ({', '.join(sorted(sparse))}), "
                "which vecmig does not move", hint="migrate a collection without sparse vectors")
        vectors = info.config.params.vectors
        wanted = self._named_vector
        if isinstance(vectors, models.VectorParams):
            if wanted:  # never ignored: the vector named would not be the one moved
                raise TerminalError(
                    f"Qdrant collection '{self._collection}' has one unnamed vector, not the named vector "
                    f"'{wanted}' ({self._role}.fields.vector)",
                    hint=f"remove {self._role}.fields.vector, or name a collection with that named vector")
            self._vector_name, params = None, vectors
        elif isinstance(vectors, dict) and vectors:
            if wanted and wanted not in vectors:
                raise TerminalError(
                    f"Qdrant collection '{self._collection}' has no named vector '{wanted}' "
                    f"({self._role}.fields.vector); it has {', '.join(sorted(vectors))}",
                    hint=f"set {self._role}.fields.vector to one of them")
            default = Fields.vector  # not named in the spec: used when the collection has it
            name = wanted or (default if default in vectors else next(iter(vectors)) if len(vectors) == 1 else None)
            if name is None:
                raise TerminalError(
                    f"Qdrant collection '{self._collection}' has several named vectors ({', '.join(sorted(vectors))})",
                    hint=f"set {self._role}.fields.vector to the one vecmig should move")
            self._vector_name, params = name, vectors[name]
        else:
            raise TerminalError(f"Qdrant collection '{self._collection}' has no dense vector",
                                hint="vecmig moves dense vectors; sparse-only collections are not supported")
        if params.multivector_config is not None:
            raise TerminalError(f"Qdrant collection '{self._collection}' holds multivectors",
                                hint="vecmig moves one dense vector per record")
        self._shape = (int(params.size), METRIC.get(params.distance, str(params.distance).lower()))
        return self._shape

    @property
    def _named_vector(self) -> str | None:
        """The named vector ``fields.vector`` asks for; None when it is the spec's default (the
        spec cannot tell a default from ``vector: embedding`` written out)."""
        wanted = self.store.fields.vector
        return wanted if wanted and wanted != Fields.vector else None

    def _ensure_shape(self) -> tuple[int, str]:
        if self._shape is None:
            info = self._info()
            if info is None:
                raise TerminalError(f"Qdrant collection '{self._collection}' does not exist",
                                    hint=f"check {self._role}.collection, or let vecmig create it (target.create)")
            self._read_shape(info)
        assert self._shape is not None
        return self._shape

    # ---- reading --------------------------------------------------------------------------

    def _scroll(self, offset: ids.PointId | None, limit: int, *, payload: bool = True,
                vectors: bool = True) -> tuple[list[models.Record], ids.PointId | None]:
        name = self._collection
        with_vectors: bool | list[str] = ([self._vector_name] if self._vector_name else True) if vectors else False
        page, nxt = self._call(f"scrolling collection '{name}'", lambda c: c.scroll(
            name, offset=offset, limit=limit, with_payload=payload, with_vectors=with_vectors))
        return page, nxt  # type: ignore[return-value]

    def _to_batch(self, points: Sequence[models.Record]) -> Batch:
        return records.to_batch(points, self._ensure_shape()[0], self._vector_name, self._text_key,
                                self._collection)

    def inventory(self) -> Inventory:
        info = self._info()
        name = self.store.collection
        if info is None:
            return Inventory(provider=self.name, collection=name, exists=False)
        dimension, metric = self._read_shape(info)
        count = self.count()
        first, _ = self._scroll(None, SAMPLE_SIZE)
        # Integer ids come first in Qdrant's order: sample the first UUID-keyed points too,
        # where string ids live, so the id type and fields see both kinds.
        uuids, _ = self._scroll(FIRST_UUID, SAMPLE_SIZE)
        sample = self._to_batch([*first, *(r for r in uuids if not isinstance(r.id, int))])
        fields = metadata_types(sample.metadata)
        kinds = {"int" if isinstance(i, int) else "text" for i in sample.ids}
        meta_bytes = sum(len(json.dumps(m)) for m in sample.metadata) / max(1, len(sample))
        text_bytes = sum(len(t.encode()) for t in sample.texts or [] if t) / max(1, len(sample))
        extra: dict[str, Any] = {"vector_name": self._vector_name}
        if len(kinds) > 1:
            extra["mixed_ids"] = True
        return Inventory(
            provider=self.name, collection=name, exists=True, dimension=dimension, metric=metric,
            count=count, count_exact=True, id_type="text" if "text" in kinds else "int",
            fields=fields, bytes_per_record=int(4 * dimension + 16 + meta_bytes + text_bytes),
            index=indexinfo.index_of(info, self._vector_name),
            has_text=any(t is not None for t in sample.texts or []), extra=extra)

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        metric = self._ensure_shape()[1]
        return search.query(self._call, self._collection, self._vector_name, vector, k, flt, metric, self._text_key)

    def search_settings(self) -> dict[str, Any]:
        info = self._info()
        return search.settings(info, self._read_shape(info)[1]) if info is not None else {}

    def collection_exists(self) -> bool:
        return self._info() is not None

    def count(self) -> int:
        name = self._collection
        if self._info() is None:
            return 0
        result = self._call(f"counting collection '{name}'", lambda c: c.count(name, exact=True))
        return int(result.count)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Point-id ranges ``[lo, hi)`` of about ``shard_size`` points, from an ids-only scroll."""
        if not inventory.exists:
            return []
        size = max(1, int(shard_size))
        starts: list[ids.PointId] = []
        seen = 0
        offset: ids.PointId | None = None
        while True:
            page, offset = self._scroll(offset, IDS_PAGE, payload=False, vectors=False)
            for rec in page:
                if seen % size == 0:
                    starts.append(rec.id)  # type: ignore[arg-type]
                seen += 1
            if offset is None:
                break
        if not starts:
            return [{"lo": None, "hi": None, "records": 0}]
        return [{"lo": lo if i else None, "hi": starts[i + 1] if i + 1 < len(starts) else None,
                 "records": min(size, seen - i * size)} for i, lo in enumerate(starts)]

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        self._ensure_shape()
        size = max(1, int(batch_size))
        lo = (shard or {}).get("lo")
        hi = (shard or {}).get("hi")
        hi_key = ids.order_key(hi) if hi is not None else None
        after = ids.order_key(cursor) if cursor is not None else None
        offset: ids.PointId | None = cursor if cursor is not None else lo
        resuming = cursor is not None  # the offset is inclusive: the cursor's own point comes back first
        while True:
            page, nxt = self._scroll(offset, size + (1 if resuming else 0))
            resuming = False
            points = [p for p in page if after is None or ids.order_key(p.id) > after]
            if hi_key is not None:
                inside = [p for p in points if ids.order_key(p.id) < hi_key]
                if len(inside) < len(points):
                    points, nxt = inside, None
            if len(points) > size:
                points, nxt = points[:size], points[size].id  # type: ignore[assignment]
            if points:
                batch = self._to_batch(points)
                batch.cursor = points[-1].id
                after = ids.order_key(batch.cursor)
                yield batch
            if nxt is None or (hi_key is not None and ids.order_key(nxt) >= hi_key):
                return
            offset = nxt

    def fetch(self, record_ids: Sequence[RecordId]) -> Batch:
        self._ensure_shape()
        wanted = list(dict.fromkeys(record_ids))
        pids = [ids.point_id(r) for r in wanted]
        name = self._collection
        with_vectors: bool | list[str] = [self._vector_name] if self._vector_name else True
        found: dict[Any, models.Record] = {}
        for start in range(0, len(pids), MAX_REQUEST_POINTS):
            chunk = pids[start:start + MAX_REQUEST_POINTS]
            got = self._call(f"retrieving points of '{name}'", lambda c, chunk=chunk: c.retrieve(  # type: ignore[misc]
                name, ids=chunk, with_payload=True, with_vectors=with_vectors))
            found.update({r.id: r for r in got})
        return self._to_batch([found[p] for p in pids if p in found])

    # ---- writing --------------------------------------------------------------------------

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        # An existing collection keeps its own metric (vecmig writes into it as it is): QD003
        # is about that one, not the source's (a dotproduct target of a cosine source is fine).
        info = self._info()
        metric = self._read_shape(info)[1] if info is not None else schema.metric
        return lint.lint_sample(sample, metric, self._text_key, self.store.collection or "")

    def create_collection(self, schema: CollectionSchema) -> None:
        name = self._collection
        metric = schema.metric or "dotproduct"
        if metric not in DISTANCE:
            raise TerminalError(f"Qdrant has no metric '{metric}'", hint="use dotproduct, euclidean or cosine")
        if metric == "cosine":
            raise TerminalError(f"cannot create '{name}' with metric cosine: Qdrant stores a cosine collection's "
                                "vectors normalised, so they would not keep their bits [QD003]",
                                hint=lint.RULES["QD003"][1])
        existing = self._info()
        if existing is not None:  # created by an earlier, interrupted run: creation is idempotent
            if self._read_shape(existing) != (int(schema.dimension), metric):
                raise TerminalError(f"Qdrant collection '{name}' already exists with {self._shape}, not "
                                    f"({schema.dimension}, {metric!r})", hint="drop it, or name another collection")
            return
        params = models.VectorParams(size=int(schema.dimension), distance=DISTANCE[metric])
        wanted = self._named_vector  # fields.vector names the vector of the collection created
        config: models.VectorParams | dict[str, models.VectorParams] = {wanted: params} if wanted else params
        self._call(f"creating collection '{name}'", lambda c: c.create_collection(name, vectors_config=config))
        self._shape = None

    def drop_collection(self) -> None:
        name = self._collection
        self._call(f"deleting collection '{name}'", lambda c: c.delete_collection(name))
        self._shape = None

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        refuse_sparse(batch, self.name)  # no sparse vectors here: they would be dropped silently
        dim, metric = self._ensure_shape()
        if metric == "cosine":
            raise TerminalError(f"Qdrant collection '{self._collection}' is a cosine collection: Qdrant would store "
                                "the vectors normalised, not as written [QD003]", hint=lint.RULES["QD003"][1])
        vectors = np.asarray(batch.vectors, dtype=np.float32)
        if vectors.shape != (len(batch), dim):
            raise TerminalError(f"vectors of shape {vectors.shape} cannot go into Qdrant collection "
                                f"'{self._collection}' ({dim} dimensions)",
                                hint="the target's dimension must match the source (or re-embed)")
        lint.check_batch(batch, self._text_key, self._collection)
        # Last write wins within a batch, as in a store: one point per id, in first-seen order.
        last = {rid: pos for pos, rid in enumerate(batch.ids)}
        keep = sorted(last.values())
        pids = [ids.point_id(batch.ids[p]) for p in keep]
        payloads = records.payloads(batch, self._text_key)
        rows = vectors.tolist()  # float32 widened exactly to double: JSON reads back the same float32
        points = [(pids[i], rows[p], payloads[p]) for i, p in enumerate(keep)]
        per_point = 12 * dim + 64
        start = 0
        while start < len(points):
            end, nbytes = start, 0
            while end < len(points) and end - start < MAX_REQUEST_POINTS:
                size = per_point + len(json.dumps(points[end][2], ensure_ascii=False))
                if end > start and nbytes + size > MAX_REQUEST_BYTES:
                    break
                nbytes += size
                end += 1
            self._send(points[start:end])
            start = end

    def _send(self, points: list[tuple[ids.PointId, list[float], dict[str, Any]]]) -> None:
        name = self._collection
        vectors: Any = [p[1] for p in points]
        if self._vector_name:
            vectors = {self._vector_name: vectors}
        body = models.Batch(ids=[p[0] for p in points], vectors=vectors, payloads=[p[2] for p in points])
        try:
            self._call(f"upserting {len(points)} points into '{name}'",
                       lambda c: c.upsert(name, points=body, wait=True), splittable=len(points) > 1)
        except _Oversize:
            half = len(points) // 2
            self._send(points[:half])
            self._send(points[half:])

    def delete(self, record_ids: Sequence[RecordId]) -> None:
        name = self._collection
        if self._info() is None:
            return
        pids: list[Any] = [ids.point_id(r) for r in dict.fromkeys(record_ids)]
        for start in range(0, len(pids), MAX_REQUEST_POINTS):
            selector = models.PointIdsList(points=pids[start:start + MAX_REQUEST_POINTS])
            self._call(f"deleting points of '{name}'",
                       lambda c, s=selector: c.delete(name, points_selector=s, wait=True))  # type: ignore[misc]

    # ---- aliases: what readers follow; a switch is one atomic request ---------------------

    def read_alias(self, alias: str) -> str | None:
        found = self._call("reading aliases", lambda c: c.get_aliases())
        return next((a.collection_name for a in found.aliases if a.alias_name == alias), None)

    def switch_alias(self, alias: str, collection: str | None) -> None:
        actions: list[Any] = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))]
        if collection is not None:
            actions.append(models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        self._call(f"pointing alias '{alias}' at {collection!r}",
                   lambda c: c.update_collection_aliases(change_aliases_operations=actions))

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return speed.model(int(inventory.dimension or 768))
