"""JSON Lines: one ``{"id", "vector", "metadata", "text"}`` object per line.

Source side: shards are byte ranges (a shard owns every line that *starts* inside
``[start, end)``), cursors are the byte offset of the next line, so a shard resumes with one
``seek`` and never reads another shard's lines. Target side: see ``files.common`` — parts
here are JSONL files whose first line is a header ``{"vecmig_part":1,"seq":..,"ids":[..]}``
so that the merge learns a part's ids without parsing its records, and copies the records'
bytes verbatim.

Vectors are written as the shortest decimal that parses back to the same float32 (see
``common.float32_for_json``), so they survive a round trip bit for bit and stay readable.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from vecmig import safe_paths
from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, Throughput, per_record_rate
from vecmig.providers.fidelity import Refusal, check_id, record_problem, refuse
from vecmig.providers.files.common import (
    TYPE_SAMPLE,
    FileProvider,
    IdIndex,
    Keep,
    Source,
    TypeSampler,
    check_record_id,
    dict_columns,
    dumps,
    file_stamp,
    float32_for_json,
    line_number,
    loads_record,
)
from vecmig.providers.files.staging import JsonHeaderedParts
from vecmig.records import Batch, ColumnBatch, RecordId
from vecmig.spec import StoreSpec

_CHUNK = 1 << 20
# Vectors are cast to float32 and checked with isfinite afterwards, which names the line; the
# cast's own "overflow encountered in cast" warning would only be a stray line on stderr.
# A filter, not np.errstate around each row: that costs ~10% of the parse on the hot path.
warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning,
                        module=re.escape(__name__))
_PART_HEADER = "vecmig_part"
# A JSON escape of a UTF-16 surrogate: a lone one decodes to a str no UTF-8 store can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """Where in ``value`` a string (or a key) holds a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "the value"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            where = _lone_surrogate(k, f"{path}/{k} (a key)") or _lone_surrogate(v, f"{path}/{k}")
            if where:
                return where
    elif isinstance(value, list):
        for i, v in enumerate(value):
            where = _lone_surrogate(v, f"{path}/{i}")
            if where:
                return where
    return None


class _Record:
    __slots__ = ("id", "meta", "sparse", "text", "vector")

    def __init__(self, rid: RecordId, vector: list[Any], meta: dict[str, Any], text: str | None, sparse: Any):
        self.id = rid
        self.vector = vector
        self.meta = meta
        self.text = text
        self.sparse = sparse



# µs per record = fixed + per dimension, measured with bench/estimate_models.py on the 2-core
# development machine under its usual load (load average 4-7), local disk, batches of 2000,
# docs-shaped records: float formatting (json.dumps) and parsing dominate, both per float.
READ_US = (30.0, 0.2)  # parsed into a batch (a copy's columns, a validation's hashed records)
WRITE_US = (30.0, 1.2)  # formatted and appended to a staged part, fsync per batch
FETCH_US = (50.0, 0.35)  # read by id through the id index, parsed and hashed
FINALIZE_US = (8.0, 0.02)  # parts concatenated into the file: bytes copied, nothing parsed
IDS_PER_S = 300_000.0  # validate_ids: ids cut from each line's start, the rest not parsed


def model(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*READ_US, dimension),
        write_records_per_s=per_record_rate(*WRITE_US, dimension),
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=1,
        spread=1.0,  # this machine's typical figures: the range is the ±√2 band around them
        startup_s=0.01,
        fetch_records_per_s=per_record_rate(*FETCH_US, dimension),
        finalize_records_per_s=per_record_rate(*FINALIZE_US, dimension),
        ids_records_per_s=IDS_PER_S,
    )


class JsonlProvider(JsonHeaderedParts, FileProvider):
    part_marker = _PART_HEADER
    name = "jsonl"
    capabilities = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=False,
        sparse=True,  # carried through verbatim in Batch.extra["sparse"]
        server_side_count=False,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        exact_numbers=True,  # JSON keeps 1 and 1.0 apart, and vecmig writes what it read
        search="exact",  # every record scored (files/search.py)
        search_filters=True,
    )
    # Parsing and formatting hold the GIL, so threads do not add throughput (max_parallel 1).
    throughput = model(384)

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return model(int(inventory.dimension or 384))

    part_suffix = ".jsonl"

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        key = re.escape(json.dumps(self.fields.id, ensure_ascii=False).encode())
        # The id of a line without parsing the whole line: files written here (and most
        # others) put the id first. Anything the pattern does not match takes the slow path.
        self._id_prefix = re.compile(rb"\s*\{\s*" + key + rb'\s*:\s*(-?(?:0|[1-9][0-9]*)|"(?:[^"\\]|\\.)*")\s*[,}]')
        self._dim: int | None = None
        self._index: IdIndex | None = None

    # ---- decoding -------------------------------------------------------------------------

    def _bad(self, offset: int, what: str, hint: str) -> TerminalError:
        line = line_number(self.path, offset)
        return TerminalError(what, where=f"{self.path}:{line}", hint=hint)

    def _decode(self, line: bytes, offset: int, dim: int | None) -> _Record:
        try:
            rec, odd = loads_record(line, self.fields.vector)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise self._bad(
                offset, f"invalid JSON ({exc})", "fix or remove that line; each line must be one JSON object"
            ) from None
        if not isinstance(rec, dict):
            raise self._bad(
                offset, f"expected a JSON object, found {type(rec).__name__}", "each line must be one JSON object"
            )
        if _SURROGATE_ESCAPE.search(line):
            where = _lone_surrogate(rec)
            if where:
                where = where.encode("utf-8", "backslashreplace").decode()
                raise self._bad(
                    offset,
                    f"a string at {where} holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its "
                    "pair), which no UTF-8 store can hold",
                    "fix the escape on that line (a character outside the BMP is a pair of escapes)",
                )
        f = self.fields
        rid = rec.get(f.id)
        why = check_record_id(rid)
        if why:
            raise self._bad(
                offset,
                f"record id '{f.id}' {why}",
                f"give every record an integer or string '{f.id}', or set fields.id",
            )
        vector = None
        for key in f.vector:
            vector = rec.get(key)
            if vector is not None:
                break
        if not isinstance(vector, list) or not vector:
            raise self._bad(
                offset,
                f"record {rid!r} has no vector '{f.vector[0]}' (a non-empty list of numbers)",
                "add the vector, or set fields.vector to the key that holds it",
            )
        if odd and any(type(x) is not float and type(x) is not int for x in vector):
            bad = next(x for x in vector if type(x) is not float and type(x) is not int)
            raise self._bad(
                offset,
                f"record {rid!r}: vector '{key}' must hold only finite numbers, not {type(bad).__name__} {_short(bad)}",
                "write every vector element as a JSON number",
            )
        if dim is not None and len(vector) != dim:
            raise self._bad(
                offset,
                f"record {rid!r} has a {len(vector)}-dimensional vector, the file's first record has {dim}",
                "every vector in one file must have the same dimension",
            )
        if isinstance(f.metadata, str):
            meta = rec.get(f.metadata)
            if meta is None:
                meta = {}
            elif not isinstance(meta, dict):
                raise self._bad(
                    offset,
                    f"record {rid!r}: '{f.metadata}' must be a JSON object, not {type(meta).__name__}",
                    "put metadata in one object, or list top-level keys in fields.metadata",
                )
            if len(rec) > 2:
                reserved = f.reserved
                extra = {k: v for k, v in rec.items() if k not in reserved}
                if extra and not f.loose:
                    raise self._bad(
                        offset,
                        f"record {rid!r} has top-level key(s) {_keys(extra)} outside '{f.metadata}', which "
                        f"fields.metadata: {f.metadata} would drop",
                        f"move them into '{f.metadata}', or remove fields.metadata so top-level keys are metadata too",
                    )
                if extra:
                    both = [k for k in extra if k in meta]
                    if both:
                        raise self._bad(
                            offset,
                            f"record {rid!r} has key(s) {_keys(both)} both at the top level and in "
                            f"'{f.metadata}': one of the two values would be dropped",
                            "rename one of them, or list the metadata keys to keep in fields.metadata",
                        )
                    meta = {**extra, **meta}
        else:
            meta = {k: rec[k] for k in f.metadata if k in rec}
        text = rec.get(f.text)
        if text is not None and not isinstance(text, str):
            raise self._bad(offset, f"record {rid!r}: '{f.text}' must be a string", "store text as a JSON string")
        # cast: check_record_id above refused every value that is not an int or a non-empty str.
        return _Record(cast(RecordId, rid), vector, meta, text, rec.get("sparse"))

    def _line_id(self, line: bytes, offset: int) -> RecordId:
        m = self._id_prefix.match(line)
        if m:
            token = m.group(1)
            return json.loads(token) if token[:1] == b'"' else int(token)
        return self._decode(line, offset, None).id

    def _vectors(self, records: list[_Record], offsets: list[int], filled: np.ndarray | None = None) -> np.ndarray:
        """The batch's float32 matrix; ``filled`` holds it already (see :meth:`_pages`)."""
        if filled is not None:
            vectors = filled
        else:
            try:
                vectors = np.array([r.vector for r in records], dtype=np.float32)
            except (ValueError, TypeError):
                vectors = None
        if vectors is None or vectors.ndim != 2 or not np.isfinite(vectors).all():
            finite = np.isfinite(vectors).all(axis=1) if vectors is not None and vectors.ndim == 2 else None
            for i, (r, off) in enumerate(zip(records, offsets, strict=True)):
                if finite is not None:
                    ok = bool(finite[i])
                else:
                    try:
                        row = np.array(r.vector, dtype=np.float32)
                    except (ValueError, TypeError):
                        row = None
                    ok = row is not None and row.ndim == 1 and bool(np.isfinite(row).all())
                if not ok:
                    raise self._bad_vector(r, off)
            raise TerminalError(f"{self.path}: inconsistent vectors in a batch")  # unreachable in practice
        return vectors

    def _bad_vector(self, r: _Record, offset: int) -> TerminalError:
        return self._bad(
            offset,
            f"record {r.id!r}: vector must hold only finite numbers (no null, NaN, strings, lists)",
            "fix the vector values on that line",
        )

    def _to_batch(self, records: list[_Record], offsets: list[int], cursor: int | None,
                  filled: np.ndarray | None = None) -> Batch:
        batch = Batch(
            ids=[r.id for r in records],
            vectors=self._vectors(records, offsets, filled),
            metadata=[r.meta for r in records],
            texts=[r.text for r in records],
            cursor=cursor,
        )
        if any(r.sparse is not None for r in records):
            batch.extra["sparse"] = [r.sparse for r in records]
        return batch

    def _to_columns(self, records: list[_Record], offsets: list[int], cursor: int | None,
                    filled: np.ndarray | None = None) -> ColumnBatch:
        sparse = [r.sparse for r in records]
        return ColumnBatch(
            ids=[r.id for r in records],
            vectors=self._vectors(records, offsets, filled),
            texts=[r.text for r in records],
            metadata=dict_columns([r.meta for r in records]),
            cursor=cursor,
            sparse=sparse if any(x is not None for x in sparse) else None,
        )

    # ---- reading --------------------------------------------------------------------------

    def _records(self, f: IO[bytes], pos: int, end: int | None) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of the non-blank lines starting at ``pos`` and before ``end``."""
        f.seek(pos)
        readline = f.readline
        while end is None or pos < end:
            line = readline()
            if not line:
                return
            start = pos
            pos += len(line)
            if line.isspace():
                continue
            yield start, line

    def _first_dim(self) -> int | None:
        """The dimension every record must have: the first record's."""
        if self._dim is None:
            with self.open_read() as f:
                for offset, line in self._records(f, 0, None):
                    self._dim = len(self._decode(line, offset, None).vector)
                    break
        return self._dim

    @staticmethod
    def _line_start(f: IO[bytes], offset: int) -> int:
        """The first line start at or after ``offset``."""
        if offset <= 0:
            return 0
        f.seek(offset - 1)
        f.readline()  # finishes the line that contains offset-1 (just "\n" if one starts at offset)
        return f.tell()

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        for records, offsets, after, filled in self._pages(shard, cursor, batch_size):
            yield self._to_batch(records, offsets, after, filled)

    def scan_columns(
        self, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[ColumnBatch] | None:
        return (self._to_columns(*page) for page in self._pages(shard, cursor, batch_size))

    def _pages(
        self, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[tuple[list[_Record], list[int], int, np.ndarray]]:
        """(records, their line offsets, the cursor after them, their vectors) per batch.

        Each vector goes into the batch's float32 matrix as soon as its line is parsed, and
        its list of Python floats is dropped: thousands of live lists made the cyclic garbage
        collector walk every float again and again (a third of the parse time at 384 dims).
        """
        if not self.path.exists():
            raise self._missing()
        start, end = (int(shard["start"]), int(shard["end"])) if shard else (0, None)
        dim = self._first_dim()
        batch_size = max(1, int(batch_size))
        with self.open_read(buffering=_CHUNK) as f:
            if cursor is not None:
                pos = int(cursor)
                if pos < start or (pos > 0 and self._byte_before(f, pos) != b"\n"):
                    raise TerminalError(
                        f"{self.path}: checkpoint offset {pos} is not a line start in this shard",
                        hint="the file changed since the checkpoint; plan again to start this copy over",
                    )
            else:
                pos = self._line_start(f, start)
            records: list[_Record] = []
            offsets: list[int] = []
            matrix = np.empty((batch_size, dim or 0), dtype=np.float32)
            after = pos  # the cursor: where the line after the last record read starts
            for offset, line in self._records(f, pos, end):
                rec = self._decode(line, offset, dim)
                try:
                    matrix[len(records)] = rec.vector
                except (ValueError, TypeError):
                    raise self._bad_vector(rec, offset) from None
                rec.vector = []
                records.append(rec)
                offsets.append(offset)
                after = offset + len(line)
                if len(records) >= batch_size:
                    yield records, offsets, after, matrix
                    records, offsets = [], []
                    matrix = np.empty((batch_size, dim or 0), dtype=np.float32)
            if records:
                yield records, offsets, after, matrix[: len(records)]

    @staticmethod
    def _byte_before(f: IO[bytes], pos: int) -> bytes:
        f.seek(pos - 1)
        return f.read(1)

    def _id_index(self) -> IdIndex:
        stamp = file_stamp(self.path)
        if self._index is None or self._index.stamp != stamp:
            with self.open_read(buffering=_CHUNK) as f:
                pairs = ((self._line_id(line, off), off) for off, line in self._records(f, 0, None))
                self._index = IdIndex.build(stamp, pairs)
        return self._index

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        """(id, byte offset of its line) for every record: the id alone where the line starts
        with it (see ``_line_id``), so a pass reads bytes but parses no vectors."""
        if not self.path.exists():
            raise self._missing()
        with open(self.path, "rb", buffering=_CHUNK) as f:
            for off, line in self._records(f, 0, None):
                yield self._line_id(line, off), off

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        """Byte offsets as ``path:line`` (one pass counting newlines up to the last one)."""
        out: dict[int, str] = {}
        wanted = sorted(set(positions))
        if not wanted:
            return out
        line, pos = 1, 0
        with open(self.path, "rb", buffering=0) as f:
            for offset in wanted:
                while pos < offset:
                    chunk = f.read(min(offset - pos, _CHUNK))
                    if not chunk:
                        break
                    line += chunk.count(b"\n")
                    pos += len(chunk)
                out[offset] = f"{self.path}:{line}"
        return out

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        """One pass over the file builds an id -> offset index (rebuilt when the file
        changes); each call then reads only the lines it returns."""
        wanted = set(ids)
        dim = self._first_dim() if self.path.exists() else None
        records: list[_Record] = []
        offsets: list[int] = []
        if wanted and self.path.exists():
            with self.open_read() as f:
                for offset in self._id_index().candidates(list(wanted)):
                    f.seek(offset)
                    rec = self._decode(f.readline(), offset, dim)
                    if rec.id in wanted:  # not merely a hash collision
                        records.append(rec)
                        offsets.append(offset)
        if not records:
            return Batch(ids=[], vectors=np.zeros((0, dim or 0), dtype=np.float32), metadata=[], texts=[])
        return self._to_batch(records, offsets, None)

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return count_nonblank_lines(self.path)

    def inventory(self) -> Inventory:
        manifest = self.staging.read_manifest() if self.staging.exists() else None
        exists = self.path.exists()
        collection = self.store.collection or self.raw_path
        if not exists and manifest is None:
            return Inventory(provider=self.name, collection=collection, exists=False)
        extra: dict[str, Any] = {}
        dim = manifest.get("dimension") if manifest else None
        id_type = manifest.get("id_type") if manifest else None
        types: dict[str, str] = dict(manifest.get("metadata", {})) if manifest else {}
        has_text = bool(manifest.get("text")) if manifest else False
        count = 0
        if exists:
            st = self.path.stat()
            extra.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
            sampler = TypeSampler()
            id_types: set[str] = set()
            seen = 0
            with self.open_read(buffering=_CHUNK) as f:
                for offset, line in self._records(f, 0, None):
                    rec = self._decode(line, offset, dim)
                    if dim is None:
                        dim = len(rec.vector)
                    id_types.add("int" if isinstance(rec.id, int) else "text")
                    sampler.add(rec.meta)
                    has_text = has_text or rec.text is not None
                    seen += 1
                    if seen >= TYPE_SAMPLE:
                        break
            if seen:
                id_type = "int" if id_types == {"int"} else "text"
                if len(id_types) > 1:
                    extra["mixed_id_types"] = True
                types = sampler.types()
            count = count_nonblank_lines(self.path)
        return self._inventory(dim=dim, count=count, id_type=id_type, types=types, has_text=has_text, extra=extra)

    @classmethod
    def describe_shard(cls, shard: dict[str, Any]) -> str:
        return f"bytes [{shard['start']}, {shard['end']})" if "start" in shard else super().describe_shard(shard)

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Even byte ranges sized to hold about ``shard_size`` records each."""
        if not inventory.exists:
            return []
        size = int(inventory.extra.get("size", 0))
        count = int(inventory.count or 0)
        if size == 0 or count == 0:
            return [{"start": 0, "end": size, "records": 0}]
        per_record = max(1, inventory.bytes_per_record or size // count)
        n = max(1, -(-size // (max(1, shard_size) * per_record)))
        n = min(n, count)
        bounds = [size * i // n for i in range(n + 1)]
        shards = [{"start": a, "end": b, "records": count * (b - a) // size} for a, b in itertools.pairwise(bounds)]
        shards[-1]["records"] += count - sum(s["records"] for s in shards)  # estimates add up to the count
        return shards

    # ---- writing (hooks of FileProvider) ----------------------------------------------------

    def _manifest_from_schema(self, schema: CollectionSchema) -> dict[str, Any]:
        return {
            "format": "jsonl",
            "dimension": schema.dimension,
            "id_type": schema.id_type,
            "metadata": dict(sorted(schema.metadata.items())),
            "text": schema.text,
        }

    def _derive_manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        dim = self._first_dim() if self.path.exists() else None
        return {"format": "jsonl", "dimension": dim or batch_dim}

    def _write_empty(self, tmp: Path, manifest: dict[str, Any]) -> None:
        tmp.write_bytes(b"")

    def _encode(self, batch: Batch) -> bytes:
        f = self.fields
        vectors = float32_for_json(batch.vectors).tolist()
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        sparse = batch.extra.get("sparse")
        lines = []
        for i, rid in enumerate(batch.ids):
            rec: dict[str, Any] = {f.id: rid, f.vector_out: vectors[i]}
            meta = batch.metadata[i]
            if isinstance(f.metadata, str):
                rec[f.metadata] = meta
            else:
                rec.update((k, meta[k]) for k in f.metadata if k in meta and k not in f.reserved)
            if texts[i] is not None:
                rec[f.text] = texts[i]
            if sparse is not None and sparse[i] is not None:
                rec["sparse"] = sparse[i]
            try:
                lines.append(dumps(rec))
            except (ValueError, TypeError) as exc:
                raise self._unwritable(batch, i, exc) from None
        lines.append("")
        try:
            return "\n".join(lines).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: find the record and the field
            bad = next((i for i, line in enumerate(lines) if not _encodable(line)), 0)
            raise self._unwritable(batch, bad, exc) from None

    def _unwritable(self, batch: Batch, i: int, exc: Exception) -> TerminalError:
        """Why record ``i`` of ``batch`` cannot be a JSON line, naming the field (FD codes)."""
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        rid = batch.ids[i]
        bad_id = check_id(rid, "text", pg=False)
        if bad_id is not None:
            return refuse(str(self.path), rid, None, Refusal(bad_id.code, f"id {bad_id.why}"))
        found = record_problem(batch.metadata[i], None, "json", pg=False, text=texts[i])
        if found is not None:
            return refuse(str(self.path), rid, found[0], found[1])
        return TerminalError(
            f"{self.path}: record {rid!r} cannot be written as JSON ({exc})",
            hint="vectors must be finite; metadata must be JSON-like",
        )

    def _write_part(self, tmp: Path, batch: Batch, seq: int, manifest: dict[str, Any]) -> None:
        header = dumps({_PART_HEADER: 1, "seq": seq, "ids": batch.ids})
        body = self._encode(batch)
        with open(tmp, "wb") as out:
            out.write(header.encode() + b"\n")
            out.write(body)

    def _base_ids(self) -> Iterator[RecordId]:
        with self.open_read(buffering=_CHUNK) as f:
            for offset, line in self._records(f, 0, None):
                yield self._line_id(line, offset)

    def _write_merged(
        self,
        tmp: Path,
        sources: list[Source],
        keep: Keep,
        duplicates: dict[RecordId, tuple[int, int]],
        manifest: dict[str, Any] | None,
    ) -> None:
        with open(tmp, "wb", buffering=_CHUNK) as out:
            for si, src in enumerate(sources):
                if src.kind == "tomb":
                    continue
                with open(src.path, "rb", buffering=_CHUNK) as f:
                    if src.kind == "base":
                        if not duplicates:
                            _copy_lines(f, out)
                            continue
                        for row, (offset, line) in enumerate(self._records(f, 0, None)):
                            if keep(si, row, self._line_id(line, offset)):
                                out.write(line if line.endswith(b"\n") else line + b"\n")
                        continue
                    ids = self._part_header(f, src.path)["ids"]
                    if not any(rid in duplicates for rid in ids):
                        shutil.copyfileobj(f, out, _CHUNK)
                        continue
                    for row, line in enumerate(f):
                        if keep(si, row, ids[row]):
                            out.write(line)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def _keys(keys: Any) -> str:
    names = [repr(k) for k in keys]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _encodable(line: str) -> bool:
    try:
        line.encode()
    except UnicodeEncodeError:
        return False
    return True


def _copy_lines(src: IO[bytes], out: IO[bytes]) -> None:
    """Copy a whole file, making sure it ends with a newline so the next part starts a line."""
    last = b"\n"
    while chunk := src.read(_CHUNK):
        out.write(chunk)
        last = chunk[-1:]
    if last != b"\n":
        out.write(b"\n")


def count_nonblank_lines(path: Path) -> int:
    """Exact record count in 1 MiB chunks, without decoding JSON (blank lines are skipped)."""
    count = 0
    pending = False  # the unfinished line carried over from the previous chunk has content
    with safe_paths.open_read(path, "jsonl file", buffering=0, error=TerminalError) as f:
        while chunk := f.read(_CHUNK):
            pieces = chunk.split(b"\n")
            for piece in pieces[:-1]:
                if pending or (piece and not piece.isspace()):
                    count += 1
                pending = False
            tail = pieces[-1]
            pending = pending or bool(tail and not tail.isspace())
    return count + (1 if pending else 0)
