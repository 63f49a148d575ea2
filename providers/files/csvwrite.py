"""The writing half of the CSV store: the hooks :class:`~vecmig.providers.files.base.FileProvider`
calls (manifest, empty file, parts, merge). A part is a JSON header line (sequence, ids, each
row's length in bytes) followed by the rows, which the merge copies verbatim."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.fidelity import Refusal, check_id, record_problem, refuse
from vecmig.providers.files.base import Keep
from vecmig.providers.files.csvcells import (
    encode_id,
    encode_text,
    encode_value,
    format_each,
    format_rows,
    format_vector,
    raw_records,
)
from vecmig.providers.files.csvheader import Header
from vecmig.providers.files.fields import FileFields
from vecmig.providers.files.jsonio import dumps, float32_for_json
from vecmig.providers.files.staging import JsonHeaderedParts, Source
from vecmig.records import Batch, RecordId

_CHUNK = 1 << 20
_PART_HEADER = "vecmig_csv_part"


class CsvWriting(JsonHeaderedParts):
    """Mixed into the CSV provider, which supplies the reading side named below."""

    part_marker = _PART_HEADER

    path: Path
    fields: FileFields

    if TYPE_CHECKING:  # the provider's reading side; stubs only for the type checker, so they
        # can never shadow the real methods in the method resolution order
        def _header(self, f: IO[bytes]) -> Header: ...

        def _first_dim(self) -> int | None: ...

        def _id_of(self, h: Header, raw: bytes, offset: int) -> RecordId: ...

        def id_positions(self) -> Iterator[tuple[RecordId, int]]: ...

        def open_read(self, buffering: int = -1) -> IO[bytes]: ...

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
