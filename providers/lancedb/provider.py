"""LanceDB (embedded) as a source and a target: ``connection: {path: DIR}``, collection = table.

A table vecmig creates holds the id (int64 or string, per the source's ids), the vector as
``fixed_size_list<float32>[dim]`` (what LanceDB searches), the text, and the metadata either
as typed columns (the source's field types, the default) or one JSON string column
(``fields.metadata: <name>``): the same column layout, type mapping and refusals as a Parquet
file, through :class:`vecmig.providers.files.parquet.Layout`, so nothing is converted twice.

* Scan: LanceDB has no ordered scan of its own. Per window of up to 32 MiB of rows: the next
  ids after the cursor in order (``id > cursor [AND id < shard end] ORDER BY id LIMIT w``, a
  sort of the id column alone), then those rows by one unordered range read (``id <= last``),
  sorted in memory and yielded batch by batch, each batch's cursor its last id. Each query
  filters the id column of the whole table and costs tens of milliseconds: one sorted query per
  batch ran at 18k records/s (20,000 records of 384 dims), windows at 63k in the same run; the
  final bench (best of three) has the scan at 134k, 0.2× of an unordered read decoded into the
  same batches (bench/lancedb_throughput.py).
* Shards: id ranges ``[lo, hi)`` cut from the sorted id column; stable while the table changes.
* Upsert: ``merge_insert`` on the id (update all columns when matched, insert otherwise): one
  Lance commit per batch, so a replayed batch is harmless and an acknowledged one is a table
  version on disk (the commit renames the new manifest into place after its data files).
* Delete: ``delete("id IN (...)")``; fetch: ``id IN (...)`` in chunks.
* Index: built after the load (:mod:`.indexing`), none on a table too small to train one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The Rust core logs warnings to stderr by default ("No existing dataset ... will be created"
# for every table created); errors still show, and a user's own LANCE_LOG wins.
os.environ.setdefault("LANCE_LOG", "error")

import lancedb  # after LANCE_LOG, which the core reads when it loads
from lancedb.query import ColumnOrdering

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import (
    Capabilities,
    CollectionSchema,
    LintFinding,
    Provider,
    Throughput,
)
from vecmig.providers.fidelity import lint_records, refuse_sparse
from vecmig.providers.files.fields import FileFields, resolve_fields
from vecmig.providers.files.parquet import Layout, build_schema
from vecmig.providers.lancedb import existing, indexing, indexsettings, search
from vecmig.providers.lancedb.errors import classify, in_list, literal, quote_column
from vecmig.providers.lancedb.speed import model
from vecmig.records import Batch, RecordId
from vecmig.search import Hit
from vecmig.spec import IndexSpec, StoreSpec

_METRIC = b"vecmig.metric"  # schema metadata of a table vecmig created: the metric it was made for
_FETCH_CHUNK = 1000  # ids per IN (...) filter
# A scan reads this much at a time (then yields it batch by batch): each query costs tens of
# milliseconds however few rows it returns, so fewer, larger reads (bench/lancedb_throughput.py).
_WINDOW_BYTES = 32 << 20
_WINDOW_ROWS = 65_536
_KEEP_VERSIONS = timedelta(days=36_500)

class LanceDBProvider(Provider):
    name = "lancedb"
    capabilities = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=False,
        indexes=("hnsw", "ivfflat"),
        sparse=False,
        server_side_count=True,
        ordered_scan=True,
        metadata="both",  # typed columns, or one JSON column (fields.metadata: <name>)
        metadata_default="typed",
        search="index",  # its own search: the vector index, else an exhaustive (exact) scan (search.py)
        search_filters=True,
    )
    throughput = model(384)

    @classmethod
    def reader_settings(cls, index: IndexSpec) -> str | None:
        return indexsettings.reader_settings(index)

    @staticmethod
    def index_deferred(rows: int) -> bool:
        """No index is built on a table this small (LD001): the planner plans none either."""
        return indexing.too_few(rows)

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self.dir = store.path(str(store.connection["path"]))
        self.table_name = store.collection or ""
        self.fields: FileFields = resolve_fields(store.fields)
        self._db: Any = None
        self._table: Any = None
        self._layout: Layout | None = None
        self._layout_version: int | None = None

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return model(int(inventory.dimension or 384))

    # ---- connection -------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.dir}/{self.table_name}"

    def _connect(self) -> Any:
        if self._db is None:
            try:
                self._db = lancedb.connect(str(self.dir))
            except Exception as exc:  # the core's errors carry no common base
                raise classify(exc, doing="opening the database", table=self.table_name) from None
        return self._db

    def _open(self) -> Any | None:
        """The table at its latest version, or None when it does not exist."""
        if self._table is not None:
            try:
                self._table.checkout_latest()
                return self._table
            except Exception:
                self._table = None  # dropped or replaced under us: open again
        if not self.dir.is_dir():
            return None
        try:
            self._table = self._connect().open_table(self.table_name)
        except ValueError:
            return None  # "Table '...' was not found"
        except Exception as exc:
            raise classify(exc, doing="opening the table", table=self.table_name) from None
        return self._table

    def _need(self) -> Any:
        table = self._open()
        if table is None:
            raise TerminalError(f"LanceDB table '{self.table_name}' does not exist in {self.dir}",
                                hint=f"check {self.store.pointer[1:] or 'the store'}.collection and connection.path")
        return table

    def close(self) -> None:
        self._table = None
        self._db = None

    def _layout_of(self, table: Any) -> Layout:
        version = int(table.version)
        if self._layout is None or self._layout_version != version:
            self._layout = Layout(self.fields, table.schema, self.dir / self.table_name)
            self._layout_version = version
            if self._layout.dim is None:
                raise TerminalError(
                    f"LanceDB table '{self.where}': vector column '{self._layout.vector}' is not a fixed-size list",
                    hint="store vectors as fixed_size_list<float32>[dim] (what LanceDB searches)")
        return self._layout

    # ---- reading ----------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        table = self._open()
        if table is None:
            return Inventory(provider=self.name, collection=self.table_name, exists=False)
        layout = self._layout_of(table)
        try:
            count = int(table.count_rows())
            indices = list(table.list_indices())
        except Exception as exc:
            raise classify(exc, doing="reading its size", table=self.table_name) from None
        meta = table.schema.metadata or {}
        metric = meta[_METRIC].decode() if _METRIC in meta else None
        index: dict[str, Any] | None = None
        vector_index = next((i for i in indices if layout.vector in list(i.columns)), None)
        if vector_index is not None:
            itype = indexing.spec_type(str(vector_index.index_type))
            index = {"name": vector_index.name, "type": itype,  # + vecmig.indexes' neutral keys
                     **indexsettings.neutral(vector_index, itype, indexsettings.recorded(table, layout.vector))}
            kind = indexing.index_metric(table, vector_index.name)
            metric = metric or kind
        types = layout.field_types() if layout.meta_mode == "typed" else self._sampled_types(table, layout)
        return Inventory(provider=self.name, collection=self.table_name, exists=True, dimension=layout.dim,
                         metric=metric, count=count, count_exact=True, id_type=layout.id_type,
                         fields=dict(sorted(types.items())), index=index, has_text=layout.text is not None,
                         metadata_column=layout.meta_columns[0] if layout.meta_mode == "json" else None,
                         # Every commit is a new version: a plan made before one is stale.
                         extra={"version": int(table.version)})

    def _sampled_types(self, table: Any, layout: Layout) -> dict[str, str]:
        from vecmig.providers.files.common import TYPE_SAMPLE, TypeSampler

        sampler = TypeSampler()
        sample = table.search().select(layout.meta_columns).limit(TYPE_SAMPLE).to_arrow()
        for rb in sample.to_batches():
            for meta in layout.metadata(rb, 0):
                sampler.add(meta)
        return sampler.types()

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        return False  # LanceDB has no unique key: a table written with add() may repeat an id

    def _ids(self, table: Any, layout: Layout) -> pa.Array:
        try:
            col = table.search().select([layout.id]).to_arrow().column(0)
        except Exception as exc:
            raise classify(exc, doing="reading its ids", table=self.table_name) from None
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        self._refuse_null_ids(layout, col.null_count)
        return col

    def _refuse_null_ids(self, layout: Layout, nulls: int) -> None:
        """LanceDB has no primary key: nothing stops a null in the id column. Such a row has no
        identity to copy, resume after or validate by."""
        if nulls:
            raise TerminalError(
                f"LanceDB table '{self.where}': {nulls} row(s) have a null id (column '{layout.id}')",
                hint=f"give those rows ids, or delete them (table.delete(\"{layout.id} IS NULL\")), then plan again")

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        """Every id with its position in id order (the scan's order), from the id column alone."""
        table = self._need()
        ids = self._ids(table, self._layout_of(table))
        for pos, rid in enumerate(ids.sort().to_pylist()):
            yield rid, pos

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        return {p: f"LanceDB table {self.where}, record #{p + 1} in id order" for p in positions}

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Id ranges ``[lo, hi)`` of about ``shard_size`` records (None: open end)."""
        table = self._open()
        if table is None or not inventory.exists:
            return []
        ids = self._ids(table, self._layout_of(table)).sort().to_pylist()
        size = max(1, int(shard_size))
        starts = list(range(0, len(ids), size)) or [0]
        return [{"lo": ids[s] if i else None, "hi": ids[s + size] if s + size < len(ids) else None,
                 "records": len(ids[s:s + size])} for i, s in enumerate(starts)]

    def _range_filter(self, layout: Layout, shard: dict[str, Any] | None, cursor: Any) -> str | None:
        col = quote_column(layout.id)
        parts = []
        if cursor is not None:
            parts.append(f"{col} > {literal(cursor)}")
        elif shard and shard.get("lo") is not None:
            parts.append(f"{col} >= {literal(shard['lo'])}")
        if shard and shard.get("hi") is not None:
            parts.append(f"{col} < {literal(shard['hi'])}")
        return " AND ".join(parts) or None

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        """Windows of many batches: the next ``window`` ids in order (a query sorting the id
        column alone), then those rows in one unordered range read (``cursor < id <= last``),
        sorted here and cut into batches whose cursors are their last ids. Two queries per
        window instead of one sorted query per batch, which carried whole rows through the sort."""
        table = self._need()  # one handle, one table version for the whole scan: a snapshot
        layout = self._layout_of(table)
        size = max(1, int(batch_size))
        window = size * max(1, min(_WINDOW_ROWS, _WINDOW_BYTES // _row_bytes(layout)) // size)
        order = [ColumnOrdering(column_name=layout.id)]
        try:
            nulls = int(table.count_rows(f"{quote_column(layout.id)} IS NULL"))
        except Exception as exc:
            raise classify(exc, doing="counting null ids", table=self.table_name) from None
        self._refuse_null_ids(layout, nulls)
        while True:
            where = self._range_filter(layout, shard, cursor)
            try:
                query = table.search().select([layout.id])
                ids = (query.where(where) if where else query).order_by(order).limit(window).to_arrow()
                if not ids.num_rows:
                    return
                last = ids.column(0)[-1].as_py()
                upto = f"{quote_column(layout.id)} <= {literal(last)}"
                rows = (table.search().select(layout.columns).where(f"{where} AND {upto}" if where else upto)
                        .limit(None).to_arrow())
            except Exception as exc:
                raise classify(exc, doing="scanning it in id order", table=self.table_name) from None
            # Decoded once, then reordered batch by batch (numpy takes rows of the vectors far
            # faster than Arrow takes fixed-size lists).
            whole = self._to_batch(layout, rows)
            by_id = pc.sort_indices(rows.column(layout.id)).to_numpy()
            for start in range(0, len(by_id), size):
                batch = whole.take(by_id[start:start + size].tolist())
                batch.cursor = batch.ids[-1]
                yield batch
            if ids.num_rows < window:
                return
            cursor = last

    def _to_batch(self, layout: Layout, table: pa.Table) -> Batch:
        rb = table.combine_chunks().to_batches()
        dim = int(layout.dim or 0)
        if not rb:
            return Batch(ids=[], vectors=np.zeros((0, dim), dtype=np.float32), metadata=[], texts=[])
        return layout.to_batch(rb[0], 0, dim, cursor=None)

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        table = self._open()
        wanted = list(dict.fromkeys(ids))
        if table is None or not wanted:
            return Batch(ids=[], vectors=np.zeros((0, 0), dtype=np.float32), metadata=[], texts=[])
        layout = self._layout_of(table)
        parts: list[pa.Table] = []
        kind = int if layout.id_type == "int" else str
        usable = [i for i in wanted if isinstance(i, kind) and not isinstance(i, bool)]
        for start in range(0, len(usable), _FETCH_CHUNK):
            chunk = usable[start:start + _FETCH_CHUNK]
            try:
                parts.append(table.search().select(layout.columns).where(in_list(layout.id, chunk))
                             .limit(None).to_arrow())
            except Exception as exc:
                raise classify(exc, doing="fetching records by id", table=self.table_name) from None
        if not parts:
            return Batch(ids=[], vectors=np.zeros((0, int(layout.dim or 0)), dtype=np.float32), metadata=[],
                         texts=[])
        return self._to_batch(layout, pa.concat_tables(parts))

    def count(self) -> int:
        table = self._open()
        return int(table.count_rows()) if table is not None else 0

    # ---- writing ----------------------------------------------------------------------------

    def _target_fields(self, schema: CollectionSchema) -> FileFields:
        """Where metadata goes in a table vecmig creates: the spec's choice, else typed columns
        of the source's field types."""
        if self.store.fields.metadata is not None:
            return self.fields
        return replace(self.fields, metadata=tuple(sorted(schema.metadata)), loose=False)

    def create_collection(self, schema: CollectionSchema) -> None:
        if self._open() is not None:
            return  # a replayed create: the table is there (its shape is checked on every upsert)
        arrow = build_schema(self._target_fields(schema), int(schema.dimension), schema.id_type,
                             dict(schema.metadata))
        arrow = arrow.with_metadata({**(arrow.metadata or {}), _METRIC: (schema.metric or "cosine").encode()})
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._table = self._connect().create_table(self.table_name, schema=arrow, exist_ok=True)
        except Exception as exc:
            raise classify(exc, doing="creating it", table=self.table_name) from None

    def drop_collection(self) -> None:
        if self._open() is None:
            return
        self._table = None
        try:
            self._connect().drop_table(self.table_name, ignore_missing=True)
        except Exception as exc:
            raise classify(exc, doing="dropping it", table=self.table_name) from None

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """The write-time fidelity rules over the plan's sample, and whether an index can be trained."""
        from vecmig.refresh import SAMPLE_RECORDS

        create = self.store.create
        out: list[LintFinding] = []
        if len(sample) < SAMPLE_RECORDS:  # the sample is the whole (first) shard
            # Without create.index the source's index is carried over (vecmig.indexes): an index all the same.
            asked = create.index if create is not None and create.index is not None else IndexSpec()
            found = indexing.small_table_finding(asked, len(sample))
            if found is not None:
                out.append(found)
        if self._open() is not None:
            return out  # an existing table: check_existing_target judges against its own columns
        fields = self._target_fields(schema)
        if isinstance(fields.metadata, str):
            slots, document = None, "json"
        else:
            slots, document = {n: schema.metadata.get(n, "json") for n in fields.metadata}, None
        texts = sample.texts if sample.texts is not None else [None] * len(sample)
        return lint_records(sample.ids, sample.metadata, texts, slots, document, False,
                            f"lancedb ({self.where})", id_type=schema.id_type) + out

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        table = self._open()
        if table is None:
            return []
        return existing.findings(self._layout_of(table), f"LanceDB table '{self.where}'", sample)

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        refuse_sparse(batch, self.name)  # no sparse vectors here: they would be dropped silently
        table = self._need()
        layout = self._layout_of(table)
        if batch.vectors.shape[1] != layout.dim:
            raise TerminalError(
                f"record {batch.ids[0]!r}: {batch.vectors.shape[1]}-dimensional vector, but LanceDB table "
                f"'{self.where}' holds {layout.dim} dimensions", hint="migrate into a table of the source's dimension")
        if len(set(batch.ids)) != len(batch.ids):
            raise TerminalError(f"a batch for LanceDB table '{self.where}' repeats an id",
                                hint="give every source record its own id")
        arrow = layout.to_table(batch)  # refuses, naming the record, what the columns cannot hold exactly
        try:
            (table.merge_insert(layout.id).when_matched_update_all().when_not_matched_insert_all()
             .execute(arrow))
        except Exception as exc:
            raise classify(exc, doing=f"writing {len(batch)} records", table=self.table_name) from None

    def delete(self, ids: Sequence[RecordId]) -> None:
        table = self._open()
        if table is None or not ids:
            return
        layout = self._layout_of(table)
        kind = int if layout.id_type == "int" else str
        usable = [i for i in dict.fromkeys(ids) if isinstance(i, kind) and not isinstance(i, bool)]
        for start in range(0, len(usable), _FETCH_CHUNK):
            try:
                table.delete(in_list(layout.id, usable[start:start + _FETCH_CHUNK]))
            except Exception as exc:
                raise classify(exc, doing="deleting records", table=self.table_name) from None

    def estimate_schema(self) -> CollectionSchema | None:
        inv = self.inventory()
        if not inv.exists or not inv.dimension:
            return None
        return CollectionSchema(dimension=inv.dimension, metric=inv.metric or "cosine", id_type=inv.id_type or "int",
                                metadata=dict(inv.fields), text=inv.has_text)

    # ---- search -----------------------------------------------------------------------------

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """LanceDB's own search (``search.py``), filtered before the vector search (prefilter)."""
        table = self._need()
        return search.query(table, self._layout_of(table), self.store, self.where, vector, k, flt)

    def search_settings(self) -> dict[str, Any]:
        table = self._need()
        return search.settings(table, self._layout_of(table), self.store, self.where)

    # ---- the vector index -------------------------------------------------------------------

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        table = self._need()
        layout = self._layout_of(table)
        rows = int(table.count_rows())
        if index.type == "none" or indexing.too_few(rows):
            return None  # the plan said so (LD001): an exhaustive search is exact at this size
        try:
            # The copy committed one small fragment per batch: merge them first, so the index is
            # trained on, and searches read, a few large files (a killed compaction leaves the
            # committed version as it was; the replayed action compacts again). compact_files()
            # needs pylance; optimize() compacts in LanceDB's own core. Its pruning is held off
            # (a century): a table's older versions are its owner's history, not vecmig's to drop.
            table.optimize(cleanup_older_than=_KEEP_VERSIONS)
            config = indexing.config(index, metric, rows)
            table.create_index(layout.vector, config=config, replace=True, name=indexing.INDEX_NAME)
            built = ({"lists": int(config.num_partitions)} if index.type == "ivfflat" else
                     {"m": int(index.m), "ef_construction": int(index.ef_construction)})
            indexsettings.record(table, layout.vector, indexsettings.to_record(index, built))
        except Exception as exc:
            raise classify(exc, doing=f"building its {index.type} index", table=self.table_name) from None
        return indexing.INDEX_NAME

    def drop_index(self, name: str) -> None:
        table = self._open()
        if table is None or name not in {i.name for i in table.list_indices()}:
            return
        try:
            # The record first: a kill between the two leaves no record describing a missing index.
            indexsettings.record(table, self._layout_of(table).vector, None)
            table.drop_index(name)
        except Exception as exc:
            raise classify(exc, doing=f"dropping index {name}", table=self.table_name) from None


def _row_bytes(layout: Layout) -> int:
    """About how many bytes one row of the scan holds: the vector and a little for the rest."""
    return int(layout.dim or 1) * 4 + 64 * len(layout.columns)
