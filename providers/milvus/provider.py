"""Milvus as a source and a target, through ``pymilvus.MilvusClient`` (gRPC).

Spec::

    provider: milvus
    connection: {uri: "${env:MILVUS_URI}", token: "${env:MILVUS_TOKEN}"}   # token optional
    collection: docs
    namespace: p2024        # a partition; source: omitted = every partition; target: omitted =
                            # _default, "*" = the partition each record came from
    fields: {text: body}    # the VARCHAR text field (default "text")
    create: {dimension: 768, metric: cosine, index: {type: hnsw, m: 16, ef_construction: 64}}

Reading. A partition is a shard. A scan is ``query_iterator`` over one partition with the
filter ``pk > cursor``: Milvus' query iterator returns records in primary-key order, so the
cursor is the last id of a batch and a resumed scan starts right after it. Every read uses
consistency level Strong, so it sees every acknowledged write.

Writing. ``upsert`` (idempotent by primary key, collection-wide: the same id upserted into
another partition moves there) into the record's partition; Milvus acknowledges once the
write is in its log, and Strong reads see it. Every record passes :mod:`lint` first (a
rule-breaking record fails the batch naming its id). A new collection gets a FLAT index at
once (Milvus loads, and so queries, only indexed collections); ``build_index`` flushes,
replaces it by the spec's index (HNSW, IVF_FLAT) and loads the collection again.

Errors: :mod:`errors` splits them into transient (retried by ``vecmig.retry``) and terminal;
pymilvus' own error log lines are silenced (they print tracebacks; the error we raise says
it in one line).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from pymilvus import MilvusClient

from vecmig.errors import TerminalError, TransientError, VecmigError
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider, Throughput
from vecmig.providers.milvus import layout as lay
from vecmig.providers.milvus import lint
from vecmig.providers.milvus.errors import classify
from vecmig.providers.milvus.kit import MAX_DIMENSION
from vecmig.records import Batch, RecordId
from vecmig.retry import with_retries
from vecmig.spec import IndexSpec, StoreSpec

T = TypeVar("T")
logging.getLogger("pymilvus").setLevel(logging.CRITICAL + 1)

# pymilvus pings every 10 s even on an idle channel; a server keeping gRPC's default policy
# (Milvus Lite's, many proxies) answers the third such ping within 5 minutes with GOAWAY
# "too_many_pings", and pymilvus then fails to bring the channel back. One ping per 5 minutes,
# and only while a call is running, passes every policy; each call still has its timeout.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
DEFAULT_PARTITION = "_default"
ALL = "*"
STRONG = {"consistency_level": "Strong"}
# What pymilvus' query_iterator asks of the server: the ``limit`` records with the smallest
# primary keys matching the filter, in key order. We page with our own filter (``pk > cursor``)
# because the iterator writes string keys into its filter unescaped (ids with '"' or '\\' break).
PK_ORDER = {"iterator": "True", "reduce_stop_for_best": "True"}
MAX_PAGE = 16_384  # Milvus' largest query limit (offset + limit <= 16384)
SAMPLE = 1000  # records inventory reads to type the metadata of a JSON field
MAX_REQUEST_BYTES = 32 << 20  # under gRPC's 64 MiB message limit with room for framing


class MilvusProvider(Provider):
    name: ClassVar[str] = "milvus"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True, aliases=True, namespaces=True, indexes=("hnsw", "ivfflat"), sparse=False,
        server_side_count=True, ordered_scan=True, metadata="json", metadata_default="json",
        max_dimension=MAX_DIMENSION, exact_numbers=True)
    # Milvus Lite's server on the loaded 2-core development machine (bench/milvus_throughput.py,
    # 20k records of 128 dims, batches of 1000): ~4.1k records/s written, ~3.2k/s scanned from a
    # flushed collection (unflushed: ~0.8k/s). A Milvus cluster is faster; spread covers some of it.
    throughput: ClassVar[Throughput] = Throughput(read_records_per_s=3_000, write_records_per_s=4_000,
                                                  read_mb_per_s=2, write_mb_per_s=2.5, max_parallel=2,
                                                  spread=3.0, startup_s=0.5)

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._client: MilvusClient | None = None
        self._layout: lay.Layout | None = None
        conn = store.connection
        self._secrets = tuple(str(conn[k]) for k in ("uri", "token") if conn.get(k))

    def __repr__(self) -> str:  # never the uri or token
        return f"MilvusProvider(collection={self.store.collection!r}, partition={self.store.namespace!r})"

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    @property
    def _name(self) -> str:
        return self.store.collection or ""

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except VecmigError:
                raise  # already classified (a nested call, our own checks)
            except Exception as exc:  # every pymilvus/gRPC error is classified
                err = classify(exc, doing=doing, collection=self._name, role=self._role, secrets=self._secrets)
                if isinstance(err, TransientError):
                    self.close()  # the retry opens a new channel: pymilvus may not revive this one
                raise err from None  # its context may hold the token
        return with_retries(attempt, attempts=6, budget=60.0)

    def connect(self) -> None:
        if self._client is None:
            conn = self.store.connection
            kw: dict[str, Any] = {"uri": str(conn["uri"]), "timeout": float(conn.get("timeout", 60)),
                                  "dedicated": True, "grpc_options": GRPC_OPTIONS}
            if conn.get("token"):
                kw["token"] = str(conn["token"])
            self._client = self._call("connecting", lambda: MilvusClient(**kw))

    def _c(self) -> MilvusClient:
        self.connect()
        assert self._client is not None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):  # closing a dead channel must not mask the real error
                client.close()

    def _exists(self) -> bool:
        return bool(self._call("looking up the collection", lambda: self._c().has_collection(self._name)))

    def _get_layout(self) -> lay.Layout:
        if self._layout is None:
            desc = self._call("describing the collection", lambda: self._c().describe_collection(self._name))
            self._layout = lay.read_layout(desc, self.store.fields.text, f"Milvus collection '{self._name}'")
            self._ensure_loaded()  # Milvus answers queries on loaded collections only (a restart releases them)
        return self._layout

    def _partitions(self) -> list[str]:
        """The partitions this store reads: its namespace, or every partition."""
        ns = self.store.namespace
        if ns and ns != ALL:
            return [ns]
        return sorted(self._call("listing partitions", lambda: self._c().list_partitions(self._name)))

    def _count(self, partitions: list[str] | None) -> int:
        rows = self._call("counting records", lambda: self._c().query(
            self._name, filter=self._get_layout().every, output_fields=["count(*)"], partition_names=partitions,
            **STRONG))
        return int(rows[0]["count(*)"])

    # -- reading --------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        if not self._exists():
            return Inventory(provider=self.name, collection=self._name, exists=False)
        layout = self._get_layout()
        counts = {p: self._count([p]) for p in self._partitions()}
        index, metric = self._index()
        fields = dict(layout.scalars)
        sample = next(self.scan(None, None, SAMPLE), None)
        for meta in sample.metadata if sample else []:
            for key, value in meta.items():
                if value is None or key in layout.scalars:
                    continue
                kind = lay.logical_type(value)
                fields[key] = kind if fields.get(key, kind) == kind else "json"
        aliases = self._call("listing aliases", lambda: self._c().list_aliases(self._name))
        return Inventory(
            provider=self.name, collection=self._name, exists=True, dimension=layout.dimension, metric=metric,
            count=sum(counts.values()), count_exact=True, id_type="int" if layout.pk_int else "text",
            fields=dict(sorted(fields.items())), index=index,
            aliases={a: self._name for a in sorted(aliases.get("aliases") or [])},
            bytes_per_record=4 * layout.dimension + 64,
            extra={"partitions": counts, "text": layout.text is not None, "pk": layout.pk, "vector": layout.vector,
                   "metadata_field": layout.metadata, "dynamic": layout.dynamic, "scalars": sorted(layout.scalars)})

    def _index(self) -> tuple[dict[str, Any] | None, str | None]:
        """The vector field's index as vecmig names it (type, params, metric) and the metric."""
        layout = self._get_layout()
        names = self._call("listing indexes", lambda: self._c().list_indexes(self._name, field_name=layout.vector))
        if not names:
            return None, None
        desc = self._call("describing the index", lambda: self._c().describe_index(self._name, names[0]))
        return lay.index_info(names[0], desc)

    def _ensure_loaded(self) -> None:
        state = self._call("reading the load state", lambda: self._c().get_load_state(self._name))
        if "Loaded" not in str(state.get("state")):
            self._call("loading the collection", lambda: self._c().load_collection(self._name))

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        return True  # a primary key, unique across partitions (upsert replaces collection-wide)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """One shard per partition holding records (the namespace's only, when one is set)."""
        if not inventory.exists:
            return []
        counts: dict[str, int] = inventory.extra.get("partitions") or {}
        return [{"namespace": p, "records": n} for p, n in sorted(counts.items()) if n]

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        layout = self._get_layout()
        partitions = [shard["namespace"]] if shard and shard.get("namespace") else (
            None if not self.store.namespace or self.store.namespace == ALL else [self.store.namespace])
        size = max(1, min(int(batch_size), MAX_PAGE))
        while True:
            expr = layout.id_filter(">", cursor) if cursor is not None else layout.every
            rows = self._call("scanning records", lambda expr=expr: self._c().query(  # type: ignore[misc]
                self._name, filter=expr, output_fields=layout.output_fields, partition_names=partitions,
                limit=size, **PK_ORDER, **STRONG))
            if not rows:
                return
            batch = lay.to_batch(layout, sorted(rows, key=lambda r: r[layout.pk]))
            cursor = batch.cursor = batch.ids[-1]
            if partitions and len(partitions) == 1:
                batch.extra["namespace"] = partitions[0]
            yield batch
            if len(rows) < size:
                return

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        layout = self._get_layout()
        wanted = [rid for rid in dict.fromkeys(ids) if isinstance(rid, int) == layout.pk_int
                  and not isinstance(rid, bool) and lint.record_problem(rid, _NO_VECTOR, {}, None) is None]
        partitions = [self.store.namespace] if self.store.namespace and self.store.namespace != ALL else None
        rows: dict[RecordId, dict[str, Any]] = {}
        for i in range(0, len(wanted), 1000):
            part = wanted[i:i + 1000]
            got = self._call(f"fetching {len(part)} records", lambda part=part: self._c().query(  # type: ignore[misc]
                self._name, ids=part, output_fields=layout.output_fields, partition_names=partitions, **STRONG))
            rows.update({r[layout.pk]: r for r in got})
        return lay.to_batch(layout, [rows[rid] for rid in wanted if rid in rows])

    def count(self) -> int:
        if not self._exists():
            return 0
        ns = self.store.namespace
        return self._count([ns] if ns and ns != ALL else None)

    # -- writing --------------------------------------------------------------------------
    def _write_partition(self, batch: Batch) -> str:
        ns = self.store.namespace
        if ns == ALL:
            src = batch.extra.get("namespace")
            return src if isinstance(src, str) and src else DEFAULT_PARTITION
        return ns or DEFAULT_PARTITION

    def _ensure_partition(self, name: str) -> None:
        if name == DEFAULT_PARTITION:
            return
        if not self._call("looking up a partition", lambda: self._c().has_partition(self._name, name)):
            self._call(f"creating partition '{name}'", lambda: self._c().create_partition(self._name, name))

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        layout = self._get_layout()
        if batch.vectors.shape[1] != layout.dimension:
            raise TerminalError(f"{batch.vectors.shape[1]}-dimensional vectors cannot go into Milvus collection "
                                f"'{self._name}' ({layout.dimension} dimensions)")
        finite = bool(np.isfinite(batch.vectors).all())  # one pass over the matrix, not one per record
        for rid, vector, metadata, text in batch.rows():
            problem = lint.record_problem(rid, vector if not finite else _NO_VECTOR, metadata, text)
            if problem is None and isinstance(rid, int) != layout.pk_int:
                problem = ("VM144", f"its id is {'text' if layout.pk_int else 'an integer'}, the collection's "
                                    f"primary key is {'INT64' if layout.pk_int else 'VARCHAR'}")
            if problem is None and text is not None and layout.text is None:
                problem = ("VM141", "it has text, and the collection has no VARCHAR text field")
            if problem is not None:
                code, what = problem
                raise TerminalError(f"record {rid!r} cannot go into Milvus collection '{self._name}': {what} "
                                    f"({code})", hint=lint.HINTS.get(code, "migrate into a new collection"))
        partition = self._write_partition(batch)
        self._ensure_partition(partition)
        if self.store.namespace == ALL:
            self._refuse_namesakes(layout, batch, partition)
        rows = lay.to_rows(layout, batch)
        per_record = max(1, batch.nbytes // max(1, len(batch)))
        step = max(1, min(len(rows), MAX_REQUEST_BYTES // per_record))
        for i in range(0, len(rows), step):
            part = rows[i:i + step]
            self._call(f"upserting {len(part)} records", lambda part=part: self._c().upsert(  # type: ignore[misc]
                self._name, part, partition_name=partition))

    def _refuse_namesakes(self, layout: lay.Layout, batch: Batch, partition: str) -> None:
        """A primary key is unique across a collection's partitions: upserting an id that lives
        in another partition would move it here, silently losing the other namespace's record.
        Sources with namespaces ('*') may hold such namesakes; refuse them by id instead."""
        others = [p for p in self._call("listing partitions", lambda: self._c().list_partitions(self._name))
                  if p != partition]
        if not others:
            return
        found = self._call("looking for namesakes in other partitions", lambda: self._c().query(
            self._name, ids=list(batch.ids), output_fields=[layout.pk], partition_names=others, limit=1, **STRONG))
        if found:
            rid = found[0][layout.pk]
            raise TerminalError(
                f"record {rid!r} of namespace '{partition}' has a namesake in another partition of Milvus "
                f"collection '{self._name}': Milvus keeps one record per id across partitions",
                hint="give ids unique across namespaces, or migrate each namespace into its own collection")

    def delete(self, ids: Sequence[RecordId]) -> None:
        if not ids or not self._exists():
            return
        layout = self._get_layout()
        keep = [rid for rid in ids if isinstance(rid, int) == layout.pk_int]
        for i in range(0, len(keep), 1000):
            part = keep[i:i + 1000]
            self._call(f"deleting {len(part)} records", lambda part=part: self._c().delete(  # type: ignore[misc]
                self._name, ids=part))

    def create_collection(self, schema: CollectionSchema) -> None:
        """A collection with vecmig's fields, Strong consistency, a FLAT index (so it loads and
        answers queries during the copy), loaded; idempotent."""
        if not self._exists():
            client = self._c()
            index = client.prepare_index_params()
            index.add_index(field_name=lay.VECTOR, index_type="FLAT",
                            metric_type=lay.METRICS.get(schema.metric, "COSINE"))
            self._call("creating the collection", lambda: client.create_collection(
                self._name, schema=lay.new_schema(schema, self.store.fields.text), index_params=index,
                consistency_level="Strong"))
        self._layout = None
        self._ensure_loaded()
        ns = self.store.namespace
        if ns and ns != ALL:
            self._ensure_partition(ns)

    def drop_collection(self) -> None:
        if self._exists():
            self._call("dropping the collection", lambda: self._c().drop_collection(self._name))
        self._layout = None

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        """Flush what the copy wrote, replace the placeholder index by ``index``, load again."""
        layout = self._get_layout()
        self._replace_index(layout, *lay.index_params(index), lay.METRICS.get(metric, "COSINE"))
        return layout.vector

    def drop_index(self, name: str) -> None:
        """Back to the FLAT index a new collection has (Milvus cannot load an unindexed one)."""
        if not self._exists():
            return
        _, metric = self._index()
        self._replace_index(self._get_layout(), "FLAT", {}, lay.METRICS.get(metric or "cosine", "COSINE"))

    def _replace_index(self, layout: lay.Layout, kind: str, params: dict[str, Any], metric: str) -> None:
        client = self._c()
        self._call("flushing", lambda: client.flush(self._name))
        self._call("releasing the collection", lambda: client.release_collection(self._name))
        for name in self._call("listing indexes", lambda: client.list_indexes(self._name, field_name=layout.vector)):
            self._call(f"dropping index '{name}'", lambda name=name: client.drop_index(  # type: ignore[misc]
                self._name, name))
        spec = client.prepare_index_params()
        spec.add_index(field_name=layout.vector, index_type=kind, metric_type=metric, params=params)
        self._call(f"building the {kind} index", lambda: client.create_index(self._name, spec))
        self._call("loading the collection", lambda: client.load_collection(self._name))

    def read_alias(self, alias: str) -> str | None:
        names = self._call("listing aliases", lambda: self._c().list_aliases())
        if alias not in (names.get("aliases") or []):
            return None
        found = self._call(f"reading alias '{alias}'", lambda: self._c().describe_alias(alias))
        return str(found["collection_name"])

    def switch_alias(self, alias: str, collection: str | None) -> None:
        current = self.read_alias(alias)
        client = self._c()
        if collection is None:
            if current is not None:
                self._call(f"dropping alias '{alias}'", lambda: client.drop_alias(alias))
        elif current is None:
            self._call(f"creating alias '{alias}'", lambda: client.create_alias(collection, alias))
        elif current != collection:
            self._call(f"moving alias '{alias}'", lambda: client.alter_alias(collection, alias))

    def estimate_schema(self) -> CollectionSchema | None:
        inv = self.inventory()
        if not inv.exists:
            return None
        return CollectionSchema(dimension=int(inv.dimension or 0), metric=inv.metric or "cosine",
                                id_type=inv.id_type or "int", metadata=dict(inv.fields),
                                text=bool(inv.extra.get("text")))

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        return lint.batch_findings(sample, schema.dimension)

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        return lint.existing_target_findings(inventory, sample, self._role)


_NO_VECTOR = np.zeros(0, dtype=np.float32)  # a vector already checked (or none to check)
