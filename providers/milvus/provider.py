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

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Throughput
from vecmig.providers.fidelity import refuse_sparse
from vecmig.providers.milvus import indexsettings, lint, search
from vecmig.providers.milvus import layout as lay
from vecmig.providers.milvus.ddl import MilvusDdl
from vecmig.providers.milvus.kit import MAX_DIMENSION
from vecmig.providers.milvus.session import ALL, DEFAULT_PARTITION, GRPC_OPTIONS, STRONG
from vecmig.records import Batch, RecordId, metadata_types
from vecmig.search import Hit
from vecmig.spec import IndexSpec

__all__ = ["GRPC_OPTIONS", "MilvusProvider"]

# What pymilvus' query_iterator asks of the server: the ``limit`` records with the smallest
# primary keys matching the filter, in key order. We page with our own filter (``pk > cursor``)
# because the iterator writes string keys into its filter unescaped (ids with '"' or '\\' break).
PK_ORDER = {"iterator": "True", "reduce_stop_for_best": "True"}
MAX_PAGE = 16_384  # Milvus' largest query limit (offset + limit <= 16384)
SAMPLE = 1000  # records inventory reads to type the metadata of a JSON field
MAX_REQUEST_BYTES = 32 << 20  # under gRPC's 64 MiB message limit with room for framing


class MilvusProvider(MilvusDdl):
    name: ClassVar[str] = "milvus"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True, aliases=True, namespaces=True, indexes=("hnsw", "ivfflat"), sparse=False,
        server_side_count=True, ordered_scan=True, metadata="json", metadata_default="json",
        max_dimension=MAX_DIMENSION, exact_numbers=True, search="index", search_filters=True)
    # Milvus Lite's server on the loaded 2-core development machine (bench/milvus_throughput.py,
    # 20k records of 128 dims, batches of 1000): 3.5k-6.0k records/s written, 3.2k-7.0k/s scanned
    # from a flushed collection (unflushed: ~0.8k/s). The low ends, spread 3: a cluster is faster.
    throughput: ClassVar[Throughput] = Throughput(read_records_per_s=3_000, write_records_per_s=4_000,
                                                  read_mb_per_s=2, write_mb_per_s=2.5, max_parallel=2,
                                                  spread=3.0, startup_s=0.5)

    @classmethod
    def reader_settings(cls, index: IndexSpec) -> str | None:
        return indexsettings.reader_settings(index)

    # -- reading --------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        if not self._exists():
            return Inventory(provider=self.name, collection=self._name, exists=False)
        layout = self._get_layout()
        counts = {p: self._count([p]) for p in self._partitions()}
        index, metric = self._index()
        sample = next(self.scan(None, None, SAMPLE), None)
        sampled = metadata_types({k: v for k, v in meta.items() if k not in layout.scalars}
                                 for meta in (sample.metadata if sample else []))
        fields = {**dict(layout.scalars), **sampled}
        aliases = self._call("listing aliases", lambda: self._c().list_aliases(self._name))
        return Inventory(
            provider=self.name, collection=self._name, exists=True, dimension=layout.dimension, metric=metric,
            count=sum(counts.values()), count_exact=True, id_type="int" if layout.pk_int else "text",
            fields=dict(sorted(fields.items())), index=index,
            aliases={a: self._name for a in sorted(aliases.get("aliases") or [])},
            bytes_per_record=4 * layout.dimension + 64,
            has_text=layout.text is not None,
            extra={"partitions": counts, "pk": layout.pk, "vector": layout.vector,
                   "metadata_field": layout.metadata, "dynamic": layout.dynamic, "scalars": sorted(layout.scalars)})

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        return True  # a primary key, unique across partitions (upsert replaces collection-wide)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """One shard per partition holding records (the namespace's only, when one is set)."""
        if not inventory.exists:
            return []
        counts: dict[str, int] = inventory.extra.get("partitions") or {}
        return [{"namespace": p, "records": n} for p, n in sorted(counts.items()) if n]

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        """A shard (partition), or the store: with ``namespace: "*"`` partition by partition,
        each batch tagged with its partition and the cursor ``{"ns": partition, "after": id}``."""
        if shard and shard.get("namespace"):
            yield from self._scan([str(shard["namespace"])], cursor, batch_size)
        elif self.store.namespace == ALL:
            names = self._partitions()
            start = names.index(cursor["ns"]) if isinstance(cursor, dict) and cursor.get("ns") in names else 0
            for pos, ns in enumerate(names[start:]):
                after = cursor["after"] if pos == 0 and isinstance(cursor, dict) and cursor.get("ns") == ns else None
                for batch in self._scan([ns], after, batch_size):
                    batch.cursor = {"ns": ns, "after": batch.cursor}
                    yield batch
        else:
            yield from self._scan([self.store.namespace] if self.store.namespace else None, cursor, batch_size)

    def _scan(self, partitions: list[str] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        layout = self._get_layout()
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
        ns = self.store.namespace
        return self._fetch(ids, [ns] if ns and ns != ALL else None)

    def fetch_matching(self, batch: Batch) -> Batch:
        """With ``namespace: "*"`` a source batch is answered from the partition it came from only."""
        ns = batch.extra.get("namespace")
        if self.store.namespace == ALL and isinstance(ns, str):
            return self._fetch(batch.ids, [ns])
        return self.fetch(batch.ids)

    def fetch_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> Batch:
        ns = shard.get("namespace") if shard else None
        if self.store.namespace == ALL and isinstance(ns, str):
            return self._fetch(ids, [ns])
        return self.fetch(ids)

    def _fetch(self, ids: Sequence[RecordId], partitions: list[str] | None) -> Batch:
        layout = self._get_layout()
        wanted = [rid for rid in dict.fromkeys(ids) if isinstance(rid, int) == layout.pk_int
                  and not isinstance(rid, bool) and lint.record_problem(rid, _NO_VECTOR, {}, None) is None]
        rows: dict[RecordId, dict[str, Any]] = {}
        for i in range(0, len(wanted), 1000):
            part = wanted[i:i + 1000]
            got = self._call(f"fetching {len(part)} records", lambda part=part: self._c().query(  # type: ignore[misc]
                self._name, filter=layout.ids_filter(part), output_fields=layout.output_fields,
                partition_names=partitions, **STRONG))
            rows.update({r[layout.pk]: r for r in got})
        batch = lay.to_batch(layout, [rows[rid] for rid in wanted if rid in rows])
        if partitions and len(partitions) == 1:
            batch.extra["namespace"] = partitions[0]
        return batch

    # -- search ---------------------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """The configured partition's (or every partition's) nearest records: :mod:`search`."""
        layout = self._get_layout()
        if self._searching is None or self._searching[0] is not layout:  # one describe per index, not per query
            self._searching = (layout, *self._index())
        _, index, metric = self._searching
        if metric is None:
            kind = (index or {}).get("metric_type") or "no index"
            raise TerminalError(f"Milvus collection '{self._name}' is searched by {kind}, not a metric vecmig compares "
                                "(cosine, L2, IP)", hint="search a collection indexed with COSINE, L2 or IP")
        ns = self.store.namespace
        partitions = [ns] if ns and ns != ALL else None
        data = [search.query_vector(vector)]

        def run(limit: int, expr: search.Expr, fields: list[str]) -> list[dict[str, Any]]:
            params = search.search_params(index, lay.METRICS[metric], limit)
            got = self._call("searching", lambda: self._c().search(
                self._name, data=data, limit=limit, filter="" if expr is True else str(expr),
                output_fields=fields, partition_names=partitions, search_params=params, **STRONG))
            return list(got[0])

        return search.search(run, layout, k, flt, metric)

    def search_settings(self) -> dict[str, Any]:
        return search.settings(*self._index())

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

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        refuse_sparse(batch, self.name)  # no sparse vectors here: they would be dropped silently
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
        in another partition would move it here, silently taking the other namespace's record
        (and, outside this partition, no before-image would bring it back). Refused by id."""
        others = [p for p in self._call("listing partitions", lambda: self._c().list_partitions(self._name))
                  if p != partition]
        if not others:
            return
        found = self._call("looking for namesakes in other partitions", lambda: self._c().query(
            self._name, filter=layout.ids_filter(list(batch.ids)), output_fields=[layout.pk], partition_names=others,
            limit=1, **STRONG))
        if found:
            rid = found[0][layout.pk]
            raise TerminalError(
                f"record {rid!r} of namespace '{partition}' has a namesake in another partition of Milvus "
                f"collection '{self._name}': Milvus keeps one record per id across partitions",
                hint="give ids unique across namespaces, or migrate each namespace into its own collection")

    def delete(self, ids: Sequence[RecordId]) -> None:
        ns = self.store.namespace
        self._delete(ids, ns if ns and ns != ALL else None)

    def delete_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> None:
        ns = shard.get("namespace") if shard else None
        if self.store.namespace == ALL and isinstance(ns, str):
            self._delete(ids, ns)
        else:
            self.delete(ids)

    def _delete(self, ids: Sequence[RecordId], partition: str | None) -> None:
        if not ids or not self._exists():
            return
        layout = self._get_layout()
        keep = [rid for rid in ids if isinstance(rid, int) == layout.pk_int]
        if partition:
            # Only the ids that live there: Milvus Lite deletes by id across partitions, whatever
            # partition_name says (ids are unique in the collection, so this is exact everywhere).
            keep = list(self._fetch(keep, [partition]).ids)
        where = {"partition_name": partition} if partition else {}
        for i in range(0, len(keep), 1000):
            part = keep[i:i + 1000]
            self._call(f"deleting {len(part)} records", lambda part=part: self._c().delete(  # type: ignore[misc]
                self._name, filter=layout.ids_filter(part), **where))

    def estimate_schema(self) -> CollectionSchema | None:
        inv = self.inventory()
        if not inv.exists:
            return None
        return CollectionSchema(dimension=int(inv.dimension or 0), metric=inv.metric or "cosine",
                                id_type=inv.id_type or "int", metadata=dict(inv.fields),
                                text=inv.has_text)

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        return lint.batch_findings(sample, schema.dimension)

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        return lint.existing_target_findings(inventory, sample, self._role)


_NO_VECTOR = np.zeros(0, dtype=np.float32)  # a vector already checked (or none to check)
