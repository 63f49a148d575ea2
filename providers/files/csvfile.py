"""CSV: one header row, then one record per row (RFC 4180 quoting, UTF-8 with or without BOM).

Columns: the id, the vector (a JSON array of float32 values in their shortest decimal form,
which parses back to the same bits), the text, and the metadata, either one column per key
(the default: every column no other role claims) or, with ``fields.metadata: <column>``, one
column holding a JSON object. How a cell keeps its type (``5`` vs ``"5"`` vs ``5.0``, no value
vs null): :mod:`vecmig.providers.files.csvcells`.

Source side: shards are byte ranges cut at record starts (a pass over the file finds them:
a quoted field may hold newlines, so a line start need not be a record start), cursors are
the byte offset of the next record. Target side: :mod:`vecmig.providers.files.base`'s protocol,
its hooks in :mod:`vecmig.providers.files.csvwrite`; the header row: :mod:`.csvheader`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, Throughput, per_record_rate
from vecmig.providers.files.common import (
    TYPE_SAMPLE,
    FileProvider,
    IdIndex,
    TypeSampler,
    file_stamp,
    line_number,
)
from vecmig.providers.files.csvcells import (
    CellError,
    decode_id,
    decode_text,
    decode_value,
    parse_one,
    parse_rows,
    parse_vector,
    raw_records,
)
from vecmig.providers.files.csvheader import Header, read_header
from vecmig.providers.files.csvwrite import CsvWriting
from vecmig.records import Batch, RecordId
from vecmig.spec import StoreSpec

_CHUNK = 1 << 20


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


class CsvProvider(CsvWriting, FileProvider):
    name = "csv"
    capabilities = Capabilities(
        create_collection=True, aliases=False, namespaces=False, sparse=False, server_side_count=False,
        ordered_scan=True, metadata="both", metadata_default="typed",
        exact_numbers=True,  # cells are JSON: 1 and 1.0 stay apart
        search="exact", search_filters=True,  # every record scored (files/search.py)
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
                    finite = bool(np.isfinite(matrix[i]).all())
                except (ValueError, TypeError, OverflowError):
                    finite = False
                if not finite:
                    raise self._bad(off, f"record {rid!r}: vector holds NaN, Infinity or a value beyond float32's "
                                    "range", "fix the vector values in that record")
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
