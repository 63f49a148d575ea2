"""Parquet: id (int64 or string), vector ``fixed_size_list<float32>[dim]``, text, metadata.

Metadata is either one string column of canonical JSON (``fields.metadata`` a single name,
the default "metadata") or typed columns (``fields.metadata`` a list of names). Reading
also accepts a struct or map metadata column, variable-size float lists for vectors, and
- when the spec names no metadata and the file has no "metadata" column - treats every
column not claimed by id/vector/text as typed metadata, which is what most foreign files
(datasets exported from a dataframe) look like.

Shards are row ranges aligned to row groups (several small groups per shard, or slices of
one large group), cursors are absolute row indices. Written files hold row groups of
about 32 MiB (at most 65,536 rows), so a reader never needs more than that in memory.
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, Throughput, per_record_rate
from vecmig.providers.fidelity import Refusal, check_id, record_problem, refuse
from vecmig.providers.files.common import (
    TYPE_SAMPLE,
    FileFields,
    FileProvider,
    IdIndex,
    Keep,
    Source,
    TypeSampler,
    dict_columns,
    dumps,
    file_stamp,
    json_default,
    loads,
)
from vecmig.records import Batch, ColumnBatch, RecordId
from vecmig.spec import StoreSpec

_MARKS = b"vecmig"  # schema metadata: which typed columns hold JSON documents
_SEQ = b"vecmig.seq"  # schema metadata of a staged part: its sequence number
_ROW_GROUP_BYTES = 32 << 20
_MAX_ROW_GROUP_ROWS = 65_536
_READ_BUFFER = 1 << 20
_FETCH_CACHE_BYTES = 64 << 20  # row groups up to this size stay decoded between fetches


def logical_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
        pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    ):
        return "text[]"
    return "json"


def arrow_type(logical: str) -> pa.DataType:
    return {
        "text": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "text[]": pa.list_(pa.string()),
    }.get(logical, pa.string())  # json: a string column holding a JSON document


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))  # pyarrow is untyped


def _needs_jsonable(t: pa.DataType) -> bool:
    """Column types whose Python values (datetime, Decimal, bytes) JSON cannot hold."""
    return bool(pa.types.is_temporal(t) or pa.types.is_decimal(t) or pa.types.is_binary(t)
                or pa.types.is_large_binary(t))  # pyarrow is untyped


def build_schema(fields: FileFields, dimension: int, id_type: str, metadata: dict[str, str]) -> pa.Schema:
    cols = [
        pa.field(fields.id, pa.int64() if id_type == "int" else pa.string(), nullable=False),
        pa.field(fields.vector_out, pa.list_(pa.float32(), dimension), nullable=False),
        pa.field(fields.text, pa.string()),
    ]
    json_columns: list[str] = []
    if isinstance(fields.metadata, str):
        cols.append(pa.field(fields.metadata, pa.string()))
    else:
        for name in fields.metadata:
            logical = metadata.get(name, "json")
            cols.append(pa.field(name, arrow_type(logical)))
            if logical not in ("text", "int", "float", "bool", "text[]"):
                json_columns.append(name)
    marks = {"version": 1, "json_columns": json_columns}
    return pa.schema(cols).with_metadata({_MARKS: json.dumps(marks).encode()})


def _schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


class Layout:
    """Which column plays which role in one file's schema (read and write alike)."""

    def __init__(self, fields: FileFields, schema: pa.Schema, path: Path) -> None:
        self.path = path
        self.schema = schema
        names = schema.names

        def fail(what: str, hint: str) -> TerminalError:
            return TerminalError(f"{path}: {what} (columns: {', '.join(names)})", hint=hint)

        if fields.id not in names:
            raise fail(f"no id column '{fields.id}'", "set fields.id to the column holding record ids")
        self.id = fields.id
        id_t = schema.field(self.id).type
        if pa.types.is_integer(id_t):
            self.id_type = "int"
        elif _is_text(id_t):
            self.id_type = "text"
        else:
            raise fail(f"id column '{self.id}' is {id_t}", "ids must be an integer or string column")
        vector = next((v for v in fields.vector if v in names), None)
        if vector is None:
            raise fail(f"no vector column '{fields.vector[0]}'", "set fields.vector to the column holding vectors")
        self.vector = vector
        vt = schema.field(vector).type
        is_list = pa.types.is_fixed_size_list(vt) or pa.types.is_list(vt) or pa.types.is_large_list(vt)
        if not is_list or not (pa.types.is_floating(vt.value_type) or pa.types.is_integer(vt.value_type)):
            raise fail(
                f"vector column '{vector}' is {vt}", "vectors must be a list of floats (fixed_size_list<float32>)"
            )
        self.dim: int | None = vt.list_size if pa.types.is_fixed_size_list(vt) else None
        self.text = fields.text if fields.text in names else None
        marks = json.loads((schema.metadata or {}).get(_MARKS, b"{}"))
        self.json_columns = set(marks.get("json_columns", []))
        self.meta_mode: str  # json | struct | map | typed
        self.meta_columns: list[str]
        if isinstance(fields.metadata, str) and fields.metadata in names:
            mt = schema.field(fields.metadata).type
            if _is_text(mt):
                self.meta_mode = "json"
            elif pa.types.is_struct(mt):
                self.meta_mode = "struct"
            elif pa.types.is_map(mt):
                self.meta_mode = "map"
            else:
                raise fail(
                    f"metadata column '{fields.metadata}' is {mt}",
                    "use a JSON string, struct or map column, or list typed columns in fields.metadata",
                )
            self.meta_columns = [fields.metadata]
        elif isinstance(fields.metadata, str):
            if not fields.loose:
                raise fail(f"no metadata column '{fields.metadata}'", "fix fields.metadata")
            self.meta_mode = "typed"
            self.meta_columns = [n for n in names if n not in fields.reserved]
        else:
            missing = [n for n in fields.metadata if n not in names]
            if missing:
                raise fail(f"metadata columns missing: {', '.join(missing)}", "fix fields.metadata")
            self.meta_mode = "typed"
            self.meta_columns = list(fields.metadata)
        self.columns = [self.id, self.vector] + ([self.text] if self.text else []) + self.meta_columns

    def field_types(self) -> dict[str, str]:
        """Metadata types from the schema alone (typed columns); None for document columns."""
        return {
            name: "json" if name in self.json_columns else logical_type(self.schema.field(name).type)
            for name in sorted(self.meta_columns)
        }

    # -- arrow -> Batch ---------------------------------------------------------------------

    def metadata(self, rb: pa.RecordBatch, first_row: int) -> list[dict[str, Any]]:
        n = rb.num_rows
        if self.meta_mode == "json":
            out: list[dict[str, Any]] = []
            for i, doc in enumerate(rb.column(self.meta_columns[0]).to_pylist()):
                if doc is None:
                    out.append({})
                    continue
                try:
                    value = loads(doc)
                except ValueError as exc:
                    raise self._bad_row(first_row + i, f"metadata is not valid JSON ({exc})") from None
                if not isinstance(value, dict):
                    raise self._bad_row(first_row + i, "metadata JSON must be an object")
                out.append(value)
            return out
        if self.meta_mode in ("struct", "map"):
            rows = rb.column(self.meta_columns[0]).to_pylist()
            if self.meta_mode == "map":
                rows = [dict(r) if r is not None else None for r in rows]
            return [{k: v for k, v in r.items() if v is not None} if r else {} for r in rows]
        out = [{} for _ in range(n)]
        for name in self.meta_columns:
            col = rb.column(name)
            if col.null_count == n:
                continue
            values = col.to_pylist()
            if name in self.json_columns:
                values = [loads(v) if v is not None else None for v in values]
            elif _needs_jsonable(col.type):
                values = [json_default(v) if v is not None else None for v in values]
            for row, value in zip(out, values, strict=True):
                if value is not None:
                    row[name] = value
        return out

    def _bad_row(self, row: int, what: str) -> TerminalError:
        return TerminalError(what, where=f"{self.path}: row {row}", hint="fix that row of the file")

    def _checked(self, rb: pa.RecordBatch, first_row: int, dim: int) -> tuple[pa.Array, np.ndarray]:
        """The id column and the vectors as float32, refusing what ``scan`` refuses."""
        n = rb.num_rows
        id_col = rb.column(self.id)
        if id_col.null_count:
            raise self._bad_row(first_row + id_col.to_pylist().index(None), "record id is null")
        vec = rb.column(self.vector)
        if vec.null_count:
            raise self._bad_row(
                first_row + vec.is_null().to_pylist().index(True), f"record has no vector '{self.vector}'"
            )
        if self.dim is None:
            lengths = pc.list_value_length(vec).to_numpy(zero_copy_only=False)
            if n and (lengths != dim).any():
                bad = int(np.flatnonzero(lengths != dim)[0])
                raise self._bad_row(
                    first_row + bad, f"vector has {lengths[bad]} dimensions, the first record has {dim}"
                )
        flat = vec.flatten()  # respects slicing, unlike .values
        if flat.null_count:
            raise self._bad_row(first_row, "a vector holds null values")
        # A copy, not the zero-copy view: batches stay writable like every other provider's.
        vectors = np.array(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, dim)
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise self._bad_row(first_row + bad, "vector holds NaN or infinity")
        return id_col, vectors

    def to_batch(self, rb: pa.RecordBatch, first_row: int, dim: int, cursor: Any) -> Batch:
        id_col, vectors = self._checked(rb, first_row, dim)
        texts = rb.column(self.text).to_pylist() if self.text else [None] * rb.num_rows
        return Batch(ids=id_col.to_pylist(), vectors=vectors, metadata=self.metadata(rb, first_row), texts=texts,
                     cursor=cursor)

    def to_columns(self, rb: pa.RecordBatch, first_row: int, dim: int, cursor: Any) -> ColumnBatch:
        """As :meth:`to_batch`, but typed columns stay Arrow arrays; document metadata (JSON,
        struct, map, and columns JSON cannot hold as they are) is parsed into per-field lists."""
        id_col, vectors = self._checked(rb, first_row, dim)
        n = rb.num_rows
        meta: dict[str, Any] = {}
        if self.meta_mode == "typed" and not self.json_columns:
            for name in self.meta_columns:
                col = rb.column(name)
                if col.null_count == n:
                    continue  # as to_batch: a field no record has is not a field of this batch
                meta[name] = [json_default(v) if v is not None else None for v in col.to_pylist()] \
                    if _needs_jsonable(col.type) else col
        else:
            meta = dict_columns(self.metadata(rb, first_row))
        return ColumnBatch(ids=id_col, vectors=vectors, texts=rb.column(self.text) if self.text else None,
                           metadata=meta, cursor=cursor)

    # -- Batch -> arrow ---------------------------------------------------------------------

    def slots(self) -> tuple[dict[str, str] | None, str | None]:
        """Where metadata goes, for :mod:`vecmig.providers.fidelity`: typed columns, or one document."""
        if self.meta_mode == "json":
            return None, "json"
        if self.meta_mode in ("struct", "map"):
            return None, "json"  # Arrow checks the shape; the document rules still apply to values
        return {name: "json" if name in self.json_columns else logical_type(self.schema.field(name).type)
                for name in self.meta_columns}, None

    def check(self, batch: Batch) -> None:
        """Refuse, naming the record and field, what the columns cannot hold exactly.

        Arrow would refuse some of it with a message naming only the column, and silently
        change the rest (``1.5`` into an int64 column becomes ``1``).
        """
        slots, document = self.slots()
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        id_type = self.id_type
        for rid, meta, text in zip(batch.ids, batch.metadata, texts, strict=True):
            bad_id = check_id(rid, id_type, pg=False)
            if bad_id is not None:
                raise refuse(str(self.path), rid, None, Refusal(bad_id.code, f"id {bad_id.why}"))
            if slots is not None:
                unknown = sorted(k for k, v in meta.items() if k not in slots and v is not None)
                if unknown:
                    raise TerminalError(
                        f"record {rid!r}: metadata field(s) {', '.join(map(repr, unknown))} have no column in "
                        f"{self.path} (columns: {', '.join(self.meta_columns)})",
                        hint="list the field in fields.metadata, drop it (mapping.metadata.drop), or store "
                             "metadata as one JSON column (fields.metadata: metadata)",
                    )
            found = record_problem(meta, slots, document, pg=False, text=text)
            if found is not None:
                raise refuse(str(self.path), rid, found[0], found[1])

    def to_table(self, batch: Batch) -> pa.Table:
        self.check(batch)
        arrays: list[pa.Array] = []
        for field in self.schema:
            try:
                arr = self._column(field, batch)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                raise TerminalError(
                    f"{self.path}: column '{field.name}' ({field.type}) cannot hold "
                    f"{self._culprit(field, batch)} ({exc})",
                    hint="fix that record in the source, or the mapping, or re-create the target with matching types",
                ) from None
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _column(self, field: pa.Field, batch: Batch) -> pa.Array:
        n = len(batch)
        name = field.name
        if name == self.id:
            return pa.array(batch.ids, type=field.type)
        if name == self.vector:
            vectors = np.ascontiguousarray(batch.vectors, dtype=np.float32)
            arr = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
            return arr.cast(field.type) if arr.type != field.type else arr
        if name == self.text:
            return pa.array(batch.texts if batch.texts is not None else [None] * n, type=field.type)
        if name in self.meta_columns and self.meta_mode == "json":
            return pa.array([dumps(m) for m in batch.metadata], type=field.type)
        if name in self.meta_columns and self.meta_mode in ("struct", "map"):
            return pa.array(batch.metadata, type=field.type)
        if name in self.meta_columns:
            values = [m.get(name) for m in batch.metadata]
            if name in self.json_columns:
                values = [dumps(v) if v is not None else None for v in values]
            return pa.array(values, type=field.type)
        return pa.nulls(n, field.type)

    def _culprit(self, field: pa.Field, batch: Batch) -> str:
        """The first record whose value the column cannot hold (with the metadata key when one
        key is to blame), or "this batch's values" when no single record is."""
        for i in range(len(batch)):
            one = batch.take([i])
            try:
                self._column(field, one)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass
            else:
                continue
            rid = batch.ids[i]
            meta = batch.metadata[i] if field.name in self.meta_columns and self.meta_mode == "json" else {}
            for key, value in meta.items():
                try:
                    dumps(value)
                except (TypeError, ValueError, OverflowError):
                    return f"record {rid!r}: metadata '{key}' = {value!r}"
            return f"record {rid!r}"
        return "this batch's values"


def _concat(batches: list[Batch], dim: int) -> Batch:
    if not batches:
        return Batch(ids=[], vectors=np.zeros((0, dim), dtype=np.float32), metadata=[], texts=[])
    return Batch(
        ids=[i for b in batches for i in b.ids],
        vectors=np.concatenate([b.vectors for b in batches]),
        metadata=[m for b in batches for m in b.metadata],
        texts=[t for b in batches for t in (b.texts or [None] * len(b))],
    )


class _RowGroupWriter:
    """Coalesces small tables into row groups of ``rows`` rows: few, large, evenly sized."""

    def __init__(self, writer: pq.ParquetWriter, rows: int) -> None:
        self.writer = writer
        self.rows = rows
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.buffer.append(table)
        self.buffered += table.num_rows
        while self.buffered >= self.rows:
            whole = pa.concat_tables(self.buffer)
            self.writer.write_table(whole.slice(0, self.rows), row_group_size=self.rows)
            rest = whole.slice(self.rows)
            self.buffer = [rest] if rest.num_rows else []
            self.buffered = rest.num_rows

    def close(self) -> None:
        if self.buffered:
            self.writer.write_table(pa.concat_tables(self.buffer), row_group_size=self.buffered)
        self.buffer, self.buffered = [], 0



# µs per record = fixed + per dimension, per worker, measured with bench/estimate_models.py on
# the 2-core development machine under its usual load (load average 4-7), local disk, JSON
# metadata, batches of 2000, copy waves at concurrency 2.
READ_US = (37.0, 0.01)  # read into a batch and hashed (a validation's source side)
WRITE_US = (52.0, 0.18)  # a staged part written (one worker's share)
FETCH_US = (52.0, 0.072)  # read by id through the id index and hashed
FINALIZE_US = (4.0, 0.1)  # parts merged into the file
IDS_PER_S = 1_000_000.0  # validate_ids: the id column alone


def model(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*READ_US, dimension),
        write_records_per_s=per_record_rate(*WRITE_US, dimension),
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=2,
        spread=1.0,  # this machine's typical figures: the range is the ±√2 band around them
        startup_s=0.01,
        fetch_records_per_s=per_record_rate(*FETCH_US, dimension),
        finalize_records_per_s=per_record_rate(*FINALIZE_US, dimension),
        ids_records_per_s=IDS_PER_S,
    )


class ParquetProvider(FileProvider):
    name = "parquet"
    capabilities = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=False,
        sparse=False,
        server_side_count=False,
        ordered_scan=True,
        metadata="both",
        metadata_default="json",
        search="exact",  # every record scored (files/search.py)
        search_filters=True,
    )
    throughput = model(384)

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return model(int(inventory.dimension or 384))

    part_suffix = ".parquet"

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._dim: int | None = None
        self._index: IdIndex | None = None
        self._group_cache: tuple[tuple[Any, int], pa.Table] | None = None

    # ---- reading --------------------------------------------------------------------------

    def _open(self) -> pq.ParquetFile:
        if not self.path.exists():
            raise self._missing()
        self.check_paths()  # a FIFO or a device is never handed to Arrow
        try:
            # Buffered reads stream a column chunk instead of loading it whole.
            return pq.ParquetFile(self.path, buffer_size=_READ_BUFFER, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise TerminalError(f"{self.path} is not a readable Parquet file ({exc})", hint="check the file") from None

    def _layout(self, pf: pq.ParquetFile) -> Layout:
        return Layout(self.fields, pf.schema_arrow, self.path)

    def _file_dim(self, pf: pq.ParquetFile, layout: Layout) -> int:
        """Fixed-size lists carry it in the schema; variable lists: the first row's length."""
        if layout.dim is not None:
            return layout.dim
        if self._dim is None:
            for rb in pf.iter_batches(batch_size=1, columns=[layout.vector]):
                if rb.num_rows:
                    first = rb.column(0)[0]
                    self._dim = len(first) if first.is_valid else 0
                    break
        return self._dim or 0

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        for layout, rb, start, dim in self._slices(shard, cursor, batch_size):
            yield layout.to_batch(rb, start, dim, cursor=start + rb.num_rows)

    def scan_columns(
        self, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[ColumnBatch] | None:
        return (
            layout.to_columns(rb, start, dim, cursor=start + rb.num_rows)
            for layout, rb, start, dim in self._slices(shard, cursor, batch_size)
        )

    def _slices(
        self, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[tuple[Layout, pa.RecordBatch, int, int]]:
        """(layout, record batch, its first row, dimension) from ``cursor`` to the shard's end."""
        pf = self._open()
        layout = self._layout(pf)
        dim = self._file_dim(pf, layout)
        md = pf.metadata
        starts = [0]
        for i in range(md.num_row_groups):
            starts.append(starts[-1] + md.row_group(i).num_rows)
        lo, hi = (int(shard["rows"][0]), int(shard["rows"][1])) if shard else (0, md.num_rows)
        pos = lo if cursor is None else int(cursor)
        if not lo <= pos <= hi or hi > md.num_rows:
            raise TerminalError(
                f"{self.path}: checkpoint row {pos} lies outside shard rows [{lo}, {hi}) of a {md.num_rows}-row file",
                hint="the file changed since the checkpoint; plan again to start this copy over",
            )
        if pos >= hi:
            return
        first = bisect.bisect_right(starts, pos) - 1
        groups = [g for g in range(first, md.num_row_groups) if starts[g] < hi]
        row = starts[first]
        for rb in pf.iter_batches(batch_size=max(1, int(batch_size)), row_groups=groups, columns=layout.columns):
            b0, row = row, row + rb.num_rows
            if row <= pos:
                continue  # before the cursor: only inside the first row group
            take = rb.slice(pos - b0, min(row, hi) - pos) if (b0 < pos or row > hi) else rb
            start = max(b0, pos)
            yield layout, take, start, dim
            pos = start + take.num_rows
            if pos >= hi:
                return

    def _id_index(self, pf: pq.ParquetFile, layout: Layout) -> IdIndex:
        stamp = file_stamp(self.path)
        if self._index is None or self._index.stamp != stamp:

            def pairs() -> Iterator[tuple[RecordId, int]]:
                row = 0
                for rb in pf.iter_batches(batch_size=65_536, columns=[layout.id]):
                    for rid in rb.column(0).to_pylist():
                        yield rid, row
                        row += 1

            self._index = IdIndex.build(stamp, pairs())
        return self._index

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        """(id, row number) for every row, from the id column alone."""
        if not self.path.exists():
            raise self._missing()
        pf = self._open()
        row = 0
        for rb in pf.iter_batches(batch_size=65_536, columns=[self._layout(pf).id]):
            for rid in rb.column(0).to_pylist():
                yield rid, row
                row += 1

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        return {p: f"{self.path} row {p}" for p in positions}

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        """One pass over the id column builds an id -> row index (rebuilt when the file
        changes); each call then decodes only the row groups holding what it returns."""
        if not self.path.exists():
            return _concat([], 0)
        pf = self._open()
        layout = self._layout(pf)
        dim = self._file_dim(pf, layout)
        wanted = set(ids)
        rows = self._id_index(pf, layout).candidates(list(wanted)) if wanted else []
        md = pf.metadata
        starts = [0]
        for g in range(md.num_row_groups):
            starts.append(starts[-1] + md.row_group(g).num_rows)
        by_group: dict[int, list[int]] = {}
        for r in rows:
            by_group.setdefault(bisect.bisect_right(starts, r) - 1, []).append(r)
        found: list[Batch] = []

        def take(source: pa.Table, first_row: int, local: list[int]) -> None:
            for piece in source.take(pa.array(local)).to_batches():
                batch = layout.to_batch(piece, first_row, dim, cursor=None)
                keep = [i for i, rid in enumerate(batch.ids) if rid in wanted]  # not a hash collision
                found.append(batch if len(keep) == len(batch) else batch.take(keep))

        for g, group_rows in sorted(by_group.items()):
            row = starts[g]
            if md.row_group(g).total_byte_size <= _FETCH_CACHE_BYTES:
                # Validation fetches batch after batch in file order: keep the group decoded.
                if self._group_cache is None or self._group_cache[0] != (self._index_stamp(), g):
                    self._group_cache = ((self._index_stamp(), g), pf.read_row_group(g, columns=layout.columns))
                take(self._group_cache[1], row, [r - row for r in group_rows])
                continue
            # A huge (foreign) row group: stream it, stop after the last row wanted.
            for rb in pf.iter_batches(batch_size=16_384, row_groups=[g], columns=layout.columns):
                local = [r - row for r in group_rows if row <= r < row + rb.num_rows]
                if local:
                    take(pa.Table.from_batches([rb]), row, local)
                row += rb.num_rows
                if row > group_rows[-1]:
                    break
        return _concat(found, dim)

    def _index_stamp(self) -> tuple[int, int, int] | None:
        return self._index.stamp if self._index is not None else None

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return int(self._open().metadata.num_rows)

    def inventory(self) -> Inventory:
        manifest = self.staging.read_manifest() if self.staging.exists() else None
        collection = self.store.collection or self.raw_path
        exists = self.path.exists()
        if not exists and manifest is None:
            return Inventory(provider=self.name, collection=collection, exists=False)
        extra: dict[str, Any] = {}
        if exists:
            pf = self._open()
            layout = self._layout(pf)
            st = self.path.stat()
            count = int(pf.metadata.num_rows)
            extra.update(size=st.st_size, mtime_ns=st.st_mtime_ns, row_groups=pf.metadata.num_row_groups)
            dim: int | None = self._file_dim(pf, layout) if (layout.dim or count) else None
            id_type: str | None = layout.id_type
            has_text = layout.text is not None
            if layout.meta_mode == "typed":
                types = layout.field_types()
            elif count:
                sampler = TypeSampler()
                for rb in pf.iter_batches(batch_size=TYPE_SAMPLE, columns=layout.meta_columns):
                    for meta in layout.metadata(rb, 0):
                        sampler.add(meta)
                    break
                types = sampler.types()
            else:
                types = dict(manifest.get("metadata", {})) if manifest else {}
        else:
            assert manifest is not None
            count = 0
            dim, id_type = manifest.get("dimension"), manifest.get("id_type")
            types, has_text = dict(manifest.get("metadata", {})), bool(manifest.get("text"))
        return self._inventory(dim=dim, count=count, id_type=id_type, types=types, has_text=has_text, extra=extra)

    @classmethod
    def describe_shard(cls, shard: dict[str, Any]) -> str:
        return f"row groups {shard['row_groups']}" if "row_groups" in shard else super().describe_shard(shard)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Whole row groups gathered up to ``shard_size`` rows; a row group of more than four
        shards' worth is sliced."""
        if not inventory.exists or not self.path.exists():
            return []
        md = self._open().metadata
        shard_size = max(1, int(shard_size))
        shards: list[dict[str, Any]] = []
        acc_first, acc_start, row = 0, 0, 0

        def flush(upto_group: int, upto_row: int) -> None:
            if upto_row > acc_start:
                shards.append(
                    {
                        "row_groups": [acc_first, upto_group],
                        "rows": [acc_start, upto_row],
                        "records": upto_row - acc_start,
                    }
                )

        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            # A row group is read whole even for a slice of it, so each slice costs the whole
            # group's decoding: slice only a group much bigger than a shard (a file written
            # as one huge group), where the parallelism is worth the repeated decoding.
            if n > shard_size * 4:
                flush(g, row)
                k = -(-n // shard_size)
                for j in range(k):
                    a, b = row + n * j // k, row + n * (j + 1) // k
                    shards.append({"row_groups": [g, g + 1], "rows": [a, b], "records": b - a})
                row += n
                acc_first, acc_start = g + 1, row
                continue
            row += n
            if row - acc_start >= shard_size:
                flush(g + 1, row)
                acc_first, acc_start = g + 1, row
        flush(md.num_row_groups, row)
        return shards or [{"row_groups": [0, md.num_row_groups], "rows": [0, row], "records": 0}]

    def _lint_slots(self, schema: CollectionSchema) -> tuple[dict[str, str] | None, str | None, str | None]:
        if isinstance(self.fields.metadata, str):
            return None, "json", schema.id_type
        return {name: schema.metadata.get(name, "json") for name in self.fields.metadata}, None, schema.id_type

    # ---- writing (hooks of FileProvider) ----------------------------------------------------

    def _manifest_from_schema(self, schema: CollectionSchema) -> dict[str, Any]:
        arrow = build_schema(self.fields, schema.dimension, schema.id_type, schema.metadata)
        return {
            "format": "parquet",
            "dimension": schema.dimension,
            "id_type": schema.id_type,
            "metadata": dict(sorted(schema.metadata.items())),
            "text": schema.text,
            "arrow_schema": _schema_to_text(arrow),
        }

    def _derive_manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        if self.path.exists():
            pf = self._open()
            layout = self._layout(pf)
            arrow = pf.schema_arrow
            return {
                "format": "parquet",
                "dimension": self._file_dim(pf, layout),
                "id_type": layout.id_type,
                "arrow_schema": _schema_to_text(arrow),
            }
        sampler = TypeSampler()
        for meta in sample.metadata:
            sampler.add(meta)
        first = sample.ids[0]
        id_type = "int" if isinstance(first, int) else "text"
        schema = CollectionSchema(dimension=batch_dim, metric="", id_type=id_type, metadata=sampler.types())
        return self._manifest_from_schema(schema)

    def _arrow_schema(self, manifest: dict[str, Any]) -> pa.Schema:
        return _schema_from_text(manifest["arrow_schema"])

    def _write_empty(self, tmp: Path, manifest: dict[str, Any]) -> None:
        pq.ParquetWriter(tmp, self._arrow_schema(manifest)).close()

    def _write_part(self, tmp: Path, batch: Batch, seq: int, manifest: dict[str, Any]) -> None:
        schema = self._arrow_schema(manifest)
        table = Layout(self.fields, schema, self.path).to_table(batch)
        table = table.replace_schema_metadata({**(schema.metadata or {}), _SEQ: str(seq).encode()})
        # Parts live minutes: no compression, no dictionaries, just fast durable bytes.
        pq.write_table(table, tmp, compression="none", use_dictionary=False)

    def _part_seq(self, path: Path) -> int:
        meta = pq.read_schema(path).metadata or {}
        if _SEQ not in meta:
            raise TerminalError(f"{path} is not a vecmig part", hint="remove stray files from the parts directory")
        return int(meta[_SEQ])

    def _part_ids(self, path: Path) -> list[RecordId]:
        return pq.read_table(path, columns=[self.fields.id]).column(0).to_pylist()  # type: ignore[no-any-return]

    def _base_ids(self) -> Iterator[RecordId]:
        pf = self._open()
        for rb in pf.iter_batches(batch_size=65_536, columns=[self._layout(pf).id]):
            yield from rb.column(0).to_pylist()

    def _write_merged(
        self,
        tmp: Path,
        sources: list[Source],
        keep: Keep,
        duplicates: dict[RecordId, tuple[int, int]],
        manifest: dict[str, Any] | None,
    ) -> None:
        # Without a manifest (delete() on a file never staged into) the file keeps its own schema.
        schema = self._arrow_schema(manifest) if manifest is not None else self._open().schema_arrow
        layout = Layout(self.fields, schema, self.path)
        vt = schema.field(layout.vector).type
        row_bytes = (vt.list_size if pa.types.is_fixed_size_list(vt) else 1024) * 4 + 128
        rows = max(1024, min(_MAX_ROW_GROUP_ROWS, _ROW_GROUP_BYTES // row_bytes))
        plain = [f.name for f in schema if f.name != layout.vector]
        writer = pq.ParquetWriter(
            tmp,
            schema,
            compression={name: "none" if name == layout.vector else "snappy" for name in schema.names},
            use_dictionary=plain,
        )

        def select(table: pa.Table, si: int, first_row: int) -> pa.Table:
            ids = table.column(layout.id).to_pylist() if duplicates else []
            if any(rid in duplicates for rid in ids):
                mask = [keep(si, first_row + i, rid) for i, rid in enumerate(ids)]
                table = table.filter(pa.array(mask, type=pa.bool_()))
            try:
                return table.replace_schema_metadata(schema.metadata).cast(schema)
            except (pa.ArrowException, ValueError) as exc:
                raise TerminalError(
                    f"{self.path}: staged data does not match the file's schema ({exc})",
                    hint="drop the target and apply again",
                ) from None

        out = _RowGroupWriter(writer, rows)
        try:
            for si, src in enumerate(sources):
                if src.kind == "tomb":
                    continue
                if src.kind == "part":
                    out.add(select(pq.read_table(src.path), si, 0))
                    continue
                row = 0  # the base file: row numbers run across its batches, as in pass 1
                for rb in self._open().iter_batches(batch_size=16_384):
                    out.add(select(pa.Table.from_batches([rb]), si, row))
                    row += rb.num_rows
            out.close()
        finally:
            writer.close()
