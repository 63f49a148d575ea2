"""CSV: one header row, then one record per row (RFC 4180 quoting, UTF-8 with or without BOM).

Columns: the id, the vector (a JSON array of float32 values in their shortest decimal form,
which parses back to the same bits), the text, and the metadata, either one column per key
(the default: every column no other role claims) or, with ``fields.metadata: <column>``, one
column holding a JSON object. How a cell keeps its type (``5`` vs ``"5"`` vs ``5.0``, no value
vs null): :mod:`vecmig.providers.files.csvcells`.

Source side: shards are byte ranges cut at record starts (a pass over the file finds them:
a quoted field may hold newlines, so a line start need not be a record start), cursors are
the byte offset of the next record. Target side: :mod:`vecmig.providers.files.base`; a part is
a JSON header line (sequence, ids, each row's length in bytes) followed by the rows, copied
verbatim into the merged file.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

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
    dumps,
    file_stamp,
    float32_for_json,
    line_number,
)
from vecmig.providers.files.csvcells import (
    BOM,
    CellError,
    decode_id,
    decode_text,
    decode_value,
    encode_id,
    encode_text,
    encode_value,
    format_each,
    format_rows,
    format_vector,
    parse_one,
    parse_rows,
    parse_vector,
    raw_records,
)
from vecmig.records import Batch, RecordId
from vecmig.spec import StoreSpec

_CHUNK = 1 << 20
_PART_HEADER = "vecmig_csv_part"


@dataclass(frozen=True)
class Header:
    """Which column plays which role; ``end`` is the byte offset where the first record starts."""

    names: tuple[str, ...]
    id: int
    vector: int
    text: int | None
    meta: tuple[tuple[int, str], ...]
    json_meta: bool  # one column holding a JSON object
    end: int
    raw: bytes


def read_header(path: Path, f: IO[bytes], fields: FileFields) -> Header:
    f.seek(0)
    start = len(BOM) if f.read(len(BOM)) == BOM else 0
    first = next(raw_records(f, start, None), None)
    if first is None:
        raise TerminalError(f"{path} has no header row", where=f"{path}:1",
                            hint="a CSV file starts with a header naming its columns (id, vector, ...)")
    offset, raw = first
    try:
        names = tuple(parse_one(raw))
    except CellError as exc:
        raise TerminalError(f"header row {exc}", where=f"{path}:1", hint="fix the header row") from None

    def fail(what: str, hint: str) -> TerminalError:
        return TerminalError(f"{what} (columns: {', '.join(names)})", where=f"{path}:{line_number(path, offset)}",
                             hint=hint)

    seen: set[str] = set()
    for name in names:
        if not name:
            raise fail("header has an empty column name", "name every column")
        if name in seen:
            raise fail(f"header names column '{name}' twice", "give every column its own name")
        seen.add(name)
    if fields.id not in names:
        raise fail(f"no id column '{fields.id}'", "set fields.id to the column holding record ids")
    vector = next((v for v in fields.vector if v in names), None)
    if vector is None:
        raise fail(f"no vector column '{fields.vector[0]}'", "set fields.vector to the column holding vectors")
    text = names.index(fields.text) if fields.text in names else None
    if isinstance(fields.metadata, str) and fields.metadata in names:
        meta: tuple[tuple[int, str], ...] = ((names.index(fields.metadata), fields.metadata),)
        json_meta = True
    elif isinstance(fields.metadata, str):
        if not fields.loose:
            raise fail(f"no metadata column '{fields.metadata}'", "fix fields.metadata")
        meta = tuple((i, n) for i, n in enumerate(names) if n not in fields.reserved)
        json_meta = False
    else:
        missing = [n for n in fields.metadata if n not in names]
        if missing:
            raise fail(f"metadata columns missing: {', '.join(missing)}", "fix fields.metadata")
        listed = set(fields.metadata)
        extra = [n for n in names if n not in fields.reserved and n not in listed]
        if extra:
            raise fail(f"column(s) {', '.join(extra)} are in no field, and would be dropped",
                       "list them in fields.metadata, or remove fields.metadata so every column is metadata")
        meta = tuple((names.index(n), n) for n in fields.metadata)
        json_meta = False
    return Header(names, names.index(fields.id), names.index(vector), text, meta, json_meta, offset + len(raw), raw)


# µs per record = fixed + per dimension: JSONL's figures (files/jsonl.py) scaled by the ratios
# bench/csv_vs_jsonl.py measured in one run on the 2-core development machine under load
# (20,000 records; reads 0.66-1.1x JSONL's rate, writes 1.1-1.5x: orjson writes the vectors).
READ_US = (30.0, 0.3)
WRITE_US = (27.0, 0.8)
FETCH_US = (60.0, 0.45)
FINALIZE_US = (8.0, 0.02)


def model(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*READ_US, dimension),
        write_records_per_s=per_record_rate(*WRITE_US, dimension),
        read_mb_per_s=0.0, write_mb_per_s=0.0, max_parallel=1, spread=1.0, startup_s=0.01,
        fetch_records_per_s=per_record_rate(*FETCH_US, dimension),
        finalize_records_per_s=per_record_rate(*FINALIZE_US, dimension),
    )


class CsvProvider(FileProvider):
    name = "csv"
    capabilities = Capabilities(
        create_collection=True, aliases=False, namespaces=False, sparse=False, server_side_count=False,
        ordered_scan=True, metadata="both", metadata_default="typed",
        exact_numbers=True,  # cells are JSON: 1 and 1.0 stay apart
    )
    throughput = model(384)
    part_suffix = ".csvpart"

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return model(int(inventory.dimension or 384))

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._dim: int | None = None
        self._index: IdIndex | None = None

    # ---- reading --------------------------------------------------------------------------

    def _header(self, f: IO[bytes]) -> Header:
        return read_header(self.path, f, self.fields)

    def _bad(self, offset: int, what: str, hint: str) -> TerminalError:
        return TerminalError(what, where=f"{self.path}:{line_number(self.path, offset)}", hint=hint)

    def _rows(self, raws: list[bytes], offsets: list[int]) -> list[list[str]]:
        rows = parse_rows(raws) if raws else []
        if rows is not None:
            return rows
        out = []
        for raw, off in zip(raws, offsets, strict=True):
            try:
                out.append(parse_one(raw))
            except CellError as exc:
                raise self._bad(off, f"record {exc}", "fix that record of the file") from None
        return out

    def _decode(self, h: Header, row: list[str], offset: int, dim: int | None
                ) -> tuple[RecordId, list[Any], dict[str, Any], str | None]:
        if len(row) != len(h.names):
            raise self._bad(offset, f"record has {len(row)} fields, the header has {len(h.names)} (a ragged row)",
                            "give every row one field per header column (quote fields that hold commas)")

        def cell_error(col: int, exc: CellError, hint: str) -> TerminalError:
            return self._bad(offset, f"column '{h.names[col]}' {exc}", hint)

        try:
            rid = decode_id(row[h.id])
        except CellError as exc:
            raise cell_error(h.id, exc, "write string ids as they are, or as JSON strings") from None
        if rid is None:
            raise self._bad(offset, f"record has no id (column '{h.names[h.id]}' is empty)", "give every record an id")
        cell = row[h.vector]
        try:
            vector = parse_vector(cell)
        except ValueError as exc:
            raise self._bad(offset, f"record {rid!r}: column '{h.names[h.vector]}' is not a JSON array ({exc})",
                            "write the vector as a JSON array of numbers, e.g. [0.1,0.2]") from None
        # Only a cell holding quotes, letters of true/false/null or nested brackets can hold
        # anything but numbers: the element-wise look runs for those alone.
        odd = '"' in cell or "t" in cell or "f" in cell or "n" in cell or cell.count("[") != 1
        if (not isinstance(vector, list) or not vector
                or (odd and any(type(x) is not float and type(x) is not int for x in vector))):
            raise self._bad(offset, f"record {rid!r}: column '{h.names[h.vector]}' must be a non-empty JSON array of "
                            "numbers", "write the vector as a JSON array of numbers, e.g. [0.1,0.2]")
        if dim is not None and len(vector) != dim:
            raise self._bad(offset, f"record {rid!r} has a {len(vector)}-dimensional vector, the first record "
                            f"has {dim}", "every vector in one file must have the same dimension")
        text = None
        if h.text is not None:
            try:
                text = decode_text(row[h.text])
            except CellError as exc:
                raise cell_error(h.text, exc, "write a text that starts with a quote as a JSON string") from None
        meta: dict[str, Any] = {}
        for col, name in h.meta:
            try:
                present, value = decode_value(row[col])
            except CellError as exc:
                raise cell_error(col, exc, "fix the JSON in that cell, or write the text as a JSON string") from None
            if not h.json_meta:
                if present:
                    meta[name] = value
            elif present and value is not None:
                if not isinstance(value, dict):
                    raise self._bad(offset, f"record {rid!r}: column '{name}' must hold a JSON object",
                                    "put the metadata in one JSON object, or drop fields.metadata for one column "
                                    "per key")
                meta = value
        return rid, vector, meta, text

    def _first_dim(self) -> int | None:
        if self._dim is None:
            with self.open_read() as f:
                h = self._header(f)
                for offset, raw in raw_records(f, h.end, None):
                    self._dim = len(self._decode(h, self._rows([raw], [offset])[0], offset, None)[1])
                    break
        return self._dim

    def _batch(self, h: Header, raws: list[bytes], offsets: list[int], dim: int, cursor: int | None) -> Batch:
        rows = self._rows(raws, offsets)
        matrix = np.empty((len(rows), dim), dtype=np.float32)
        ids: list[RecordId] = []
        metas: list[dict[str, Any]] = []
        texts: list[str | None] = []
        with np.errstate(over="ignore"):
            for i, (row, off) in enumerate(zip(rows, offsets, strict=True)):
                rid, vector, meta, text = self._decode(h, row, off, dim)
                try:
                    matrix[i] = vector
                except (ValueError, TypeError, OverflowError):
                    raise self._bad(off, f"record {rid!r}: vector holds a value beyond float32's range",
                                    "fix the vector values in that record") from None
                if not np.isfinite(matrix[i]).all():
                    raise self._bad(off, f"record {rid!r}: vector holds a value beyond float32's range",
                                    "fix the vector values in that record")
                ids.append(rid)
                metas.append(meta)
                texts.append(text)
        return Batch(ids=ids, vectors=matrix, metadata=metas, texts=texts, cursor=cursor)

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        if not self.path.exists():
            raise self._missing()
        dim = self._first_dim() or 0
        batch_size = max(1, int(batch_size))
        with self.open_read(buffering=_CHUNK) as f:
            h = self._header(f)
            start = max(int(shard["start"]), h.end) if shard else h.end
            end = int(shard["end"]) if shard else None
            if cursor is not None:
                pos = int(cursor)
                if pos < start or (end is not None and pos > max(end, start)):
                    raise TerminalError(
                        f"{self.path}: checkpoint offset {pos} is not a record start in this shard",
                        hint="the file changed since the checkpoint; plan again to start this copy over")
            else:
                pos = start
            raws: list[bytes] = []
            offsets: list[int] = []
            for offset, raw in raw_records(f, pos, end):
                raws.append(raw)
                offsets.append(offset)
                if len(raws) >= batch_size:
                    yield self._batch(h, raws, offsets, dim, offset + len(raw))
                    raws, offsets = [], []
            if raws:
                yield self._batch(h, raws, offsets, dim, offsets[-1] + len(raws[-1]))

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        if not self.path.exists():
            raise self._missing()
        with self.open_read(buffering=_CHUNK) as f:
            h = self._header(f)
            for offset, raw in raw_records(f, h.end, None):
                yield self._id_of(h, raw, offset), offset

    def _id_of(self, h: Header, raw: bytes, offset: int) -> RecordId:
        row = self._rows([raw], [offset])[0]
        if len(row) != len(h.names):
            self._decode(h, row, offset, None)  # raises the ragged-row error
        try:
            rid = decode_id(row[h.id])
        except CellError:
            return self._decode(h, row, offset, None)[0]  # raises, naming the column
        if rid is None:
            self._decode(h, row, offset, None)
        return rid  # type: ignore[no-any-return]

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        return {p: f"{self.path}:{line_number(self.path, p)}" for p in positions}

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        wanted = set(ids)
        empty = Batch(ids=[], vectors=np.zeros((0, self._dim or 0), dtype=np.float32), metadata=[], texts=[])
        if not wanted or not self.path.exists():
            return empty
        dim = self._first_dim() or 0
        stamp = file_stamp(self.path)
        if self._index is None or self._index.stamp != stamp:
            self._index = IdIndex.build(stamp, self.id_positions())
        raws: list[bytes] = []
        offsets: list[int] = []
        with self.open_read() as f:
            h = self._header(f)
            for offset in self._index.candidates(list(wanted)):
                raw = next(raw_records(f, offset, None))[1]
                raws.append(raw)
                offsets.append(offset)
            if not raws:
                return empty
            batch = self._batch(h, raws, offsets, dim, None)
        keep = [i for i, rid in enumerate(batch.ids) if rid in wanted]  # not a hash collision
        return batch if len(keep) == len(batch) else batch.take(keep)

    def _offsets(self) -> Iterator[int]:
        with self.open_read(buffering=_CHUNK) as f:
            h = self._header(f)
            for offset, _ in raw_records(f, h.end, None):
                yield offset

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return sum(1 for _ in self._offsets())

    def inventory(self) -> Inventory:
        manifest = self.staging.read_manifest() if self.staging.exists() else None
        exists = self.path.exists()
        if not exists and manifest is None:
            return Inventory(provider=self.name, collection=self.store.collection or self.raw_path, exists=False)
        dim = manifest.get("dimension") if manifest else None
        id_type = manifest.get("id_type") if manifest else None
        types: dict[str, str] = dict(manifest.get("metadata", {})) if manifest else {}
        has_text = bool(manifest.get("text")) if manifest else False
        extra: dict[str, Any] = {}
        count = 0
        if exists:
            st = self.path.stat()
            extra.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
            sample = next(self.scan(None, None, TYPE_SAMPLE), None)
            if sample is not None:
                sampler = TypeSampler()
                for meta in sample.metadata:
                    sampler.add(meta)
                kinds = {"int" if isinstance(i, int) else "text" for i in sample.ids}
                id_type = "int" if kinds == {"int"} else "text"
                if len(kinds) > 1:
                    extra["mixed_id_types"] = True
                dim = int(sample.vectors.shape[1])
                types = sampler.types()
                has_text = has_text or any(t is not None for t in sample.texts or [])
            count = self.count()
        return self._inventory(dim=dim, count=count, id_type=id_type, types=types, has_text=has_text, extra=extra)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Record starts every ``shard_size`` records: exact bounds, from one pass over the file."""
        if not inventory.exists or not self.path.exists():
            return []
        size = self.path.stat().st_size
        every = max(1, int(shard_size))
        cuts: list[int] = []
        n = 0
        for n, offset in enumerate(self._offsets()):
            if n % every == 0:
                cuts.append(offset)
        total = n + 1 if cuts else 0
        if not cuts:
            return [{"start": 0, "end": size, "records": 0}]
        bounds = [*cuts, size]
        shards = [{"start": a, "end": b, "records": every} for a, b in itertools.pairwise(bounds)]
        shards[-1]["records"] = total - every * (len(shards) - 1)
        return shards

    # ---- writing (hooks of FileProvider) ----------------------------------------------------

    def _columns(self, metadata: Sequence[str]) -> list[str]:
        f = self.fields
        cols = [f.id, f.vector_out, f.text]
        if isinstance(f.metadata, str) and not f.loose:
            return [*cols, f.metadata]
        keys = list(f.metadata) if isinstance(f.metadata, tuple) else sorted(metadata)
        clash = [k for k in keys if k in f.reserved]
        if clash:
            raise TerminalError(
                f"{self.path}: metadata key(s) {', '.join(map(repr, clash))} would share a column with the id, vector "
                "or text", hint="rename them (mapping.metadata.rename), or keep metadata in one JSON column "
                                "(fields.metadata: metadata)")
        return [*cols, *keys]

    def _manifest_from_schema(self, schema: CollectionSchema) -> dict[str, Any]:
        return {"format": "csv", "dimension": schema.dimension, "id_type": schema.id_type,
                "metadata": dict(sorted(schema.metadata.items())), "text": schema.text,
                "columns": self._columns(list(schema.metadata))}

    def _derive_manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        if self.path.exists():
            with self.open_read() as f:
                names = list(self._header(f).names)
            return {"format": "csv", "dimension": self._first_dim() or batch_dim, "columns": names}
        keys = sorted({k for m in sample.metadata for k in m})
        return {"format": "csv", "dimension": batch_dim, "columns": self._columns(keys)}

    def _write_empty(self, tmp: Path, manifest: dict[str, Any]) -> None:
        tmp.write_bytes(format_rows([list(manifest["columns"])]))

    def _encode_rows(self, batch: Batch, columns: list[str]) -> list[bytes]:
        f = self.fields
        finite = np.isfinite(batch.vectors).all(axis=1)
        if not finite.all():
            bad = batch.ids[int(np.flatnonzero(~finite)[0])]
            raise TerminalError(f"{self.path}: record {bad!r}: vector holds NaN or infinity",
                                hint="fix the vector in the source: no store keeps non-finite values")
        vectors = float32_for_json(batch.vectors).tolist()
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        meta_cols = set(columns[3:])
        json_meta = isinstance(f.metadata, str) and not f.loose
        rows: list[list[str]] = []
        for i, rid in enumerate(batch.ids):
            meta = batch.metadata[i]
            if not json_meta:
                unknown = sorted(k for k, v in meta.items() if k not in meta_cols and v is not None)
                if unknown:
                    raise TerminalError(
                        f"record {rid!r}: metadata field(s) {', '.join(map(repr, unknown))} have no column in "
                        f"{self.path} (columns: {', '.join(columns)})",
                        hint="re-create the target from a source whose sample shows the field, drop it "
                             "(mapping.metadata.drop), or keep metadata in one JSON column (fields.metadata: metadata)")
            cells = [encode_id(rid), format_vector(vectors[i]), encode_text(texts[i])]
            try:
                if json_meta:
                    cells.append(dumps(meta) if meta else "")
                else:
                    cells.extend(encode_value(meta[k]) if k in meta else "" for k in columns[3:])
            except (ValueError, TypeError) as exc:
                raise self._unwritable(rid, meta, texts[i], exc) from None
            rows.append(cells)
        out: list[bytes] = []
        for i, line in enumerate(format_each(rows)):
            try:
                out.append(line.encode("utf-8"))
            except UnicodeEncodeError as exc:  # a lone surrogate: name the record and the field
                raise self._unwritable(batch.ids[i], batch.metadata[i], texts[i], exc) from None
        return out

    def _unwritable(self, rid: RecordId, meta: dict[str, Any], text: str | None, exc: Exception) -> TerminalError:
        bad_id = check_id(rid, "text", pg=False)
        if bad_id is not None:
            return refuse(str(self.path), rid, None, Refusal(bad_id.code, f"id {bad_id.why}"))
        found = record_problem(meta, None, "json", pg=False, text=text)
        if found is not None:
            return refuse(str(self.path), rid, found[0], found[1])
        return TerminalError(f"{self.path}: record {rid!r} cannot be written as CSV ({exc})",
                             hint="metadata values must be JSON-like")

    def _write_part(self, tmp: Path, batch: Batch, seq: int, manifest: dict[str, Any]) -> None:
        rows = self._encode_rows(batch, list(manifest["columns"]))
        header = dumps({_PART_HEADER: 1, "seq": seq, "ids": batch.ids, "ends": [len(r) for r in rows]})
        with open(tmp, "wb") as out:
            out.write(header.encode() + b"\n")
            out.writelines(rows)

    @staticmethod
    def _part_header(f: IO[bytes], path: Path) -> dict[str, Any]:
        header = json.loads(f.readline())
        if not isinstance(header, dict) or header.get(_PART_HEADER) != 1:
            raise TerminalError(f"{path} is not a vecmig part", hint="remove stray files from the parts directory")
        return header

    def _part_seq(self, path: Path) -> int:
        with open(path, "rb") as f:
            return int(self._part_header(f, path)["seq"])

    def _part_ids(self, path: Path) -> list[RecordId]:
        with open(path, "rb") as f:
            return list(self._part_header(f, path)["ids"])

    def _base_ids(self) -> Iterator[RecordId]:
        return (rid for rid, _ in self.id_positions())

    def _write_merged(self, tmp: Path, sources: list[Source], keep: Keep,
                      duplicates: dict[RecordId, tuple[int, int]], manifest: dict[str, Any] | None) -> None:
        with open(tmp, "wb", buffering=_CHUNK) as out:
            wrote_header = False
            for si, src in enumerate(sources):
                if src.kind == "tomb":
                    continue
                with open(src.path, "rb", buffering=_CHUNK) as f:
                    if src.kind == "base":
                        h = self._header(f)
                        out.write(h.raw if h.raw.endswith(b"\n") else h.raw + b"\r\n")
                        wrote_header = True
                        for row, (offset, raw) in enumerate(raw_records(f, h.end, None)):
                            if not duplicates or keep(si, row, self._id_of(h, raw, offset)):
                                out.write(raw if raw.endswith(b"\n") else raw + b"\r\n")
                        continue
                    if not wrote_header:
                        assert manifest is not None  # parts exist only beside a manifest
                        out.write(format_rows([list(manifest["columns"])]))
                        wrote_header = True
                    header = self._part_header(f, src.path)
                    ids = header["ids"]
                    if not any(rid in duplicates for rid in ids):
                        shutil.copyfileobj(f, out, _CHUNK)
                        continue
                    for row, (rid, length) in enumerate(zip(ids, header["ends"], strict=True)):
                        raw = f.read(length)
                        if keep(si, row, rid):
                            out.write(raw)
