"""The header row of a CSV file: which column plays which role (id, vector, text, metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vecmig.errors import TerminalError
from vecmig.providers.files.csvcells import BOM, CellError, parse_one, raw_records
from vecmig.providers.files.fields import FileFields
from vecmig.providers.files.idindex import line_number


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
