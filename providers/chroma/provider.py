"""Chroma as a source and a target, through the official ``chromadb`` client.

``connection: {host, port}`` talks to a ``chroma run`` server (HttpClient);
``connection: {path}`` opens a local persistent store (PersistentClient). The collection is
a Chroma collection; the record text is its document.

Ids: Chroma keeps strings. Integer ids are written as their decimal strings, and a collection
vecmig creates for int ids records ``vecmig:id_type: int`` in its metadata, so scan and fetch
give ints back (a round trip keeps the type). Into a collection without that record, int ids
stay strings there (CH002 says so) and validation matches 5 with "5", as for Pinecone.

Ordered, resumable scan: Chroma's ``get(limit, offset)`` pages follow its internal insertion
order, which writes and deletes shift, so the offset is no cursor. Instead every scan lists the
collection's ids (``include=[]``: ids only, in pages of the server's max batch size), sorts
them (numerically for int ids), keeps those of the shard after the cursor and fetches their
records by id, batch by batch; the cursor is the last id of a batch. The cost, paid once per
shard scan (and per resume): the whole id list is read and held, ~N ids of memory and N/5461
requests. A record written after the listing is not in that scan (the next diff or validation
finds it); one deleted before its fetch is simply absent.

Upsert replaces by id: Chroma's own upsert merges metadata and keeps a document when none is
sent, so for ids that already exist the keys they no longer have are sent as null (Chroma
removes them), and a record whose document must go is deleted before it is written again.
A collection this plan created skips that read (``expect_new_records``): replaying a batch
there writes the same values again. Requests carry at most the server's max batch size.

Vectors: an ``l2`` or ``ip`` collection gives float32 values back bit for bit; a ``cosine`` one
stores them normalised and gives back within 2 ulp (measured: about a quarter of values move
by 1 ulp, a few per 10,000 by 2): :meth:`vector_ulps` declares it, and validation and the diff
compare within it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, ClassVar, TypeVar

import chromadb
import numpy as np
from chromadb.config import Settings
from chromadb.errors import NotFoundError

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider, Throughput
from vecmig.providers.chroma import codec, indexinfo, search
from vecmig.providers.chroma.errors import classify
from vecmig.records import Batch, RecordId, metadata_types, sparse_of
from vecmig.retry import with_retries
from vecmig.search import Hit
from vecmig.spec import StoreSpec

T = TypeVar("T")

# vecmig's metric names and Chroma's hnsw spaces.
SPACES = {"cosine": "cosine", "euclidean": "l2", "dotproduct": "ip"}
METRICS = {v: k for k, v in SPACES.items()}
# Float32 values a collection of this space may give back changed, in ulp (see module docs).
ULP_BY_METRIC = {"cosine": 2, "euclidean": 0, "dotproduct": 0}
SAMPLE_SIZE = 100
_INCLUDE: Any = ["embeddings", "metadatas", "documents"]


class ChromaProvider(Provider):
    name: ClassVar[str] = "chroma"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=False,
        indexes=(),
        sparse=False,
        server_side_count=True,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        vector_ulps=2,  # the worst case (cosine); per collection: vector_ulps_for / vector_ulps
        search="index",
        search_filters=True,
    )
    # Measured by bench/chroma_throughput.py (20k x 384 against `chroma run` on 2 cores shared with
    # other work, load average ~12): writes ~240 records/s (HNSW inserts, as chromadb's own add),
    # the ordered scan ~4,600 records/s. Pessimistic on an idle machine; calibration from past
    # rounds (vecmig.calibrate) replaces it.
    # Every collection has an HNSW index; vecmig creates it with chromadb's defaults.
    own_index: ClassVar[dict[str, Any] | None] = {"type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 100}
    throughput: ClassVar[Throughput] = Throughput(
        read_records_per_s=4_600, write_records_per_s=240, read_mb_per_s=7, write_mb_per_s=0.4,
        max_parallel=2, spread=3.0, startup_s=0.5)

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        conn = store.connection or {}
        self._host = conn.get("host")
        self._port = int(conn.get("port", 8000))
        self._path = conn.get("path")
        self._client: Any = None
        self._coll: Any = None
        self._fresh = False  # expect_new_records: the collection was created by this plan
        self._max_batch: int | None = None

    def __repr__(self) -> str:
        return f"ChromaProvider(collection={self.store.collection!r})"

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        """One client call with vecmig's bounded retries; errors as one line each."""
        def attempt() -> T:
            try:
                return fn()
            except (TerminalError, NotFoundError):
                raise
            except Exception as exc:
                raise classify(exc, doing=doing, collection=self.store.collection, role=self._role) from None

        return with_retries(attempt, attempts=6, base=0.25, cap=5.0, budget=60.0)

    def connect(self) -> None:
        if self._client is not None:
            return
        settings = Settings(anonymized_telemetry=False)
        if self._path is not None:
            path = str(self.store.path(str(self._path)))
            self._client = self._call("opening the store", lambda: chromadb.PersistentClient(
                path=path, settings=settings))
        else:
            self._client = self._call("connecting", lambda: chromadb.HttpClient(
                host=str(self._host), port=self._port, settings=settings))

    def close(self) -> None:
        self._coll = None
        self._client = None

    def _api(self) -> Any:
        self.connect()
        return self._client

    def _name(self) -> str:
        if not self.store.collection:
            raise TerminalError(f"{self._role}.collection is required", hint="name the Chroma collection")
        return self.store.collection

    def _collection(self) -> Any | None:
        if self._coll is None:
            api, name = self._api(), self._name()
            try:
                self._coll = self._call("opening the collection",
                                        lambda: api.get_collection(name, embedding_function=None))
            except NotFoundError:
                return None
        return self._coll

    def _need(self) -> Any:
        coll = self._collection()
        if coll is None:
            raise TerminalError(f"Chroma collection {self.store.collection!r} does not exist",
                                hint="create it (target.create), or check the collection name")
        return coll

    def max_batch(self) -> int:
        if self._max_batch is None:
            api = self._api()
            self._max_batch = int(self._call("reading the max batch size", api.get_max_batch_size))
        return self._max_batch

    # ---- what the collection keeps ----------------------------------------------------------
    def _id_type(self) -> str | None:
        """``int`` where vecmig recorded int ids, ``text`` otherwise (None: no collection yet)."""
        coll = self._collection()
        if coll is None:
            return None
        return "int" if (coll.metadata or {}).get(codec.ID_TYPE_KEY) == "int" else "text"

    def _metric(self) -> str | None:
        coll = self._collection()
        if coll is None:
            return None
        config = getattr(coll, "configuration_json", None) or {}
        space = ((config.get("hnsw") or {}).get("space") or (config.get("spann") or {}).get("space")
                 or (coll.metadata or {}).get("hnsw:space") or "l2")
        return METRICS.get(str(space), str(space))

    @classmethod
    def vector_ulps_for(cls, metric: str | None) -> int:
        return ULP_BY_METRIC.get(metric or "", cls.capabilities.vector_ulps)

    def vector_ulps(self) -> int:
        metric = self._metric()
        if metric is None and self.store.create is not None:
            metric = self.store.create.metric
        return self.vector_ulps_for(metric)

    # ---- reading --------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        coll = self._collection()
        name = self.store.collection
        if coll is None:
            return Inventory(provider=self.name, collection=name, exists=False)
        count = int(self._call("counting records", coll.count))
        id_type = self._id_type()
        sample = self._rows(coll, self._call("sampling records", lambda: coll.get(limit=SAMPLE_SIZE,
                                                                                    include=_INCLUDE)), id_type)
        fields = metadata_types(sample.metadata)
        dimension = int(sample.vectors.shape[1]) if len(sample) else None
        texts = sample.texts or []
        return Inventory(
            provider=self.name, collection=name, exists=True, dimension=dimension, metric=self._metric(),
            count=count, count_exact=True, id_type=id_type, fields=fields,
            index=indexinfo.index_of(getattr(coll, "configuration_json", None), coll.metadata),
            bytes_per_record=4 * (dimension or 0) + 64 if dimension else None,
            has_text=any(t is not None for t in texts), extra={"vector_ulps": self.vector_ulps()})

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        return True  # keyed by its string ids: each once, one type

    def _sorted_ids(self, coll: Any, id_type: str | None) -> list[RecordId]:
        """Every id of the collection, sorted as scans go (see the module docs for the cost)."""
        step = self.max_batch()
        ids: list[str] = []
        while True:
            page = self._call("listing ids", partial(coll.get, include=[], limit=step, offset=len(ids)))["ids"]
            ids.extend(page)
            if len(page) < step:
                break
        out = [codec.read_id(i, id_type) for i in dict.fromkeys(ids)]
        out.sort()  # all ints or all strings: one id type per collection
        return out

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Id ranges ``[lo, hi)`` of ``shard_size`` records each in scan order (None: open end)."""
        coll = self._collection()
        if coll is None:
            return []
        ids = self._sorted_ids(coll, self._id_type())
        size = max(1, int(shard_size))
        starts = list(range(0, len(ids), size)) or [0]
        return [{"lo": ids[s] if i else None, "hi": ids[s + size] if s + size < len(ids) else None,
                 "records": len(ids[s:s + size])} for i, s in enumerate(starts)]

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        coll = self._need()
        id_type = self._id_type()
        lo = (shard or {}).get("lo")
        hi = (shard or {}).get("hi")
        ids = [i for i in self._sorted_ids(coll, id_type)
               if (lo is None or i >= lo) and (hi is None or i < hi) and (cursor is None or i > cursor)]
        size = max(1, min(int(batch_size), self.max_batch()))
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            batch = self._fetch_ordered(coll, chunk, id_type)
            batch.cursor = chunk[-1]
            yield batch

    def _rows(self, coll: Any, got: dict[str, Any], id_type: str | None) -> Batch:
        ids = [codec.read_id(i, id_type) for i in got["ids"]]
        emb = got.get("embeddings")
        if emb is None or len(ids) == 0:
            vectors = np.zeros((0, 0), dtype=np.float32)
        else:
            # The client hands float32 values back widened to float64: narrowing is exact.
            vectors = np.ascontiguousarray(np.asarray(emb, dtype=np.float64).astype(np.float32))
        metas = [dict(m) if m else {} for m in (got.get("metadatas") or [None] * len(ids))]
        docs = list(got.get("documents") or [None] * len(ids))
        return Batch(ids=ids, vectors=vectors, metadata=metas, texts=docs)

    def _fetch_ordered(self, coll: Any, ids: Sequence[RecordId], id_type: str | None) -> Batch:
        """Records among ``ids`` (as the collection's own id type), in the order asked."""
        wire = [str(i) for i in ids]
        got = self._call("reading records", lambda: coll.get(ids=wire, include=_INCLUDE))
        batch = self._rows(coll, got, "text")
        where = {rid: pos for pos, rid in enumerate(batch.ids)}
        out = batch.take([where[w] for w in wire if w in where])
        out.ids = [codec.read_id(str(i), id_type) for i in out.ids]
        return out

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        """Records among ``ids`` with the ids asked for (int 5 asks for "5" and is answered as 5)."""
        coll = self._collection()
        if coll is None or not ids:
            return Batch(ids=[], vectors=np.zeros((0, 0), dtype=np.float32), metadata=[], texts=[])
        wanted: dict[str, list[RecordId]] = {}
        for rid in ids:
            originals = wanted.setdefault(str(rid), [])
            if not any(type(o) is type(rid) and o == rid for o in originals):
                originals.append(rid)
        keys = [k for k in wanted if k]
        parts = [self._fetch_ordered(coll, keys[i:i + self.max_batch()], "text")
                 for i in range(0, len(keys), self.max_batch())]
        positions: list[tuple[int, int, RecordId]] = []
        for p, part in enumerate(parts):
            for pos, key in enumerate(part.ids):
                positions.extend((p, pos, orig) for orig in wanted[str(key)])
        rows = [parts[p].take([pos]) for p, pos, _ in positions]
        if not rows:
            return Batch(ids=[], vectors=np.zeros((0, 0), dtype=np.float32), metadata=[], texts=[])
        return Batch(ids=[orig for _, _, orig in positions], vectors=np.concatenate([r.vectors for r in rows]),
                     metadata=[r.metadata[0] for r in rows], texts=[(r.texts or [None])[0] for r in rows])

    def count(self) -> int:
        coll = self._collection()
        return int(self._call("counting records", coll.count)) if coll is not None else 0

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        space = SPACES.get(self._metric() or "euclidean", "l2")
        return search.query(self._need(), self._call, vector, k, flt, space, self._id_type())

    def search_settings(self) -> dict[str, Any]:
        return search.settings(self._need())

    def estimate_schema(self) -> CollectionSchema | None:
        inv = self.inventory()
        if not inv.exists:
            return None
        return CollectionSchema(dimension=int(inv.dimension or 0), metric=inv.metric or "euclidean",
                                id_type=inv.id_type or "text", metadata=dict(inv.fields),
                                text=inv.has_text)

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """Every rule ``upsert`` enforces, over the plan's sample (no I/O: the schema says the
        id type and metric a created collection gets; an existing one is judged by apply)."""
        return codec.summarize(codec.findings(sample, schema.id_type, schema.metric))

    # ---- writing --------------------------------------------------------------------------
    def expect_new_records(self) -> None:
        self._fresh = True

    def create_collection(self, schema: CollectionSchema) -> None:
        api, name = self._api(), self._name()
        meta: dict[str, Any] = {"hnsw:space": SPACES.get(schema.metric, "l2"), "created-by": "vecmig"}
        if schema.id_type == "int":
            meta[codec.ID_TYPE_KEY] = "int"
        # get_or_create: a create replayed after a kill finds the collection it made.
        self._coll = self._call("creating the collection", lambda: api.get_or_create_collection(
            name, metadata=meta, embedding_function=None))

    def drop_collection(self) -> None:
        """Deletes the collection's records, then the collection. Chroma 1.5.9 leaves the list
        values of a dropped collection's records behind (its array-metadata rows outlive
        ``delete_collection``), and records written later to another collection can come back
        with them: a record it deletes by id takes them along, so every record goes first."""
        api, name = self._api(), self._name()
        self._coll = None
        try:
            coll = self._call("opening the collection", lambda: api.get_collection(name, embedding_function=None))
        except NotFoundError:
            return  # already gone: idempotent
        step = self.max_batch()
        while True:
            page = self._call("listing ids to drop", partial(coll.get, include=[], limit=step))["ids"]
            if not page:
                break
            self._call("deleting records to drop", partial(coll.delete, ids=list(page)))
        try:
            self._call("dropping the collection", lambda: api.delete_collection(name))
        except NotFoundError:
            return  # already gone: idempotent

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        coll = self._need()
        id_type, metric = self._id_type(), self._metric()
        records: dict[str, tuple[np.ndarray, dict[str, Any] | None, str | None]] = {}
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        for rid, vec, meta, text, sparse in zip(batch.ids, batch.vectors, batch.metadata, texts, sparse_of(batch),
                                                strict=True):
            try:
                codec.check_sparse(rid, sparse)  # never dropped silently
                wid, wmeta = codec.check_record(rid, vec, meta, text, id_type, metric)
            except codec.Refused as exc:
                raise codec.rejected(rid, exc, self.store.collection) from None
            records.pop(wid, None)
            records[wid] = (vec, wmeta, text)  # the last of a repeated id wins, as one upsert after another
        keys = list(records)
        step = self.max_batch()
        for start in range(0, len(keys), step):
            self._write(coll, {k: records[k] for k in keys[start:start + step]})

    def _write(self, coll: Any, records: dict[str, tuple[np.ndarray, dict[str, Any] | None, str | None]]) -> None:
        keys = list(records)
        metas = [records[k][1] for k in keys]
        if not self._fresh:
            old = self._call("reading records to replace", lambda: coll.get(ids=keys, include=["metadatas",
                                                                                              "documents"]))
            gone: list[str] = []
            for rid, old_meta, old_doc in zip(old["ids"], old["metadatas"] or [], old["documents"] or [],
                                              strict=False):
                if old_doc is not None and records[rid][2] is None:
                    gone.append(rid)  # a document cannot be unset by upsert: write the record anew
                    continue
                stale = set(old_meta or {}) - set(records[rid][1] or {})
                if stale:
                    pos = keys.index(rid)
                    metas[pos] = {**(metas[pos] or {}), **dict.fromkeys(sorted(stale))}
            if gone:
                self._call("deleting records to replace", lambda: coll.delete(ids=gone))
        vectors = np.stack([records[k][0] for k in keys]).astype(np.float32)
        docs = [records[k][2] for k in keys]
        self._call("writing records", lambda: coll.upsert(
            ids=keys, embeddings=vectors,
            metadatas=metas if any(m is not None for m in metas) else None,
            documents=docs if any(d is not None for d in docs) else None))

    def delete(self, ids: Sequence[RecordId]) -> None:
        coll = self._collection()
        if coll is None:
            return
        keys = list(dict.fromkeys(str(i) for i in ids if str(i)))
        step = self.max_batch()
        for start in range(0, len(keys), step):
            chunk = keys[start:start + step]
            self._call("deleting records", partial(coll.delete, ids=chunk))
