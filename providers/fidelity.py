"""Can a target hold a value exactly? One set of rules for the write path and for plan lint.

A value either round trips (source → target → compare gives equal, under the canonical
form of ``vecmig.records``: absent == null, an integral float == its int) or the target
refuses it at write time, naming the record, the field and why, with a fix. The same
rules run over the plan's sample, so a reviewer sees the problem before anything is
written (stable codes below). Nothing is left for validation to find as "1 different".

Where a value goes is a *slot*:

* ``json``: a JSON document kept as text (a JSONL line, Parquet's JSON metadata column,
  a Parquet column holding JSON documents). Any integer, any finite float, any string
  that is valid Unicode.
* ``jsonb``: a PostgreSQL jsonb document: as ``json``, and no NUL character in a string or
  a key (PostgreSQL refuses ``\\u0000`` in jsonb), and no ``-0.0`` (numeric has no negative
  zero: it would come back as ``0``).
* typed columns, ``int`` (64-bit), ``float`` (double), ``bool``, ``text``, ``text[]``, in a
  Parquet file or a PostgreSQL table (``pg=True``: text holds no NUL either); narrower
  PostgreSQL columns name themselves: ``int2``, ``int4``, ``float4``, ``numeric``.

| code  | rule |
|-------|------|
| FD001 | a float is NaN or Infinity where the slot cannot hold it (JSON, jsonb, an int column) |
| FD002 | a string holds a NUL character, which PostgreSQL refuses in text and jsonb |
| FD003 | a string holds a lone surrogate (not valid Unicode, cannot be encoded as UTF-8) |
| FD004 | an integer does not fit a 64-bit integer column (or id) |
| FD005 | a value of another type than the typed column holds (would be refused or changed) |
| FD006 | a number its column would round (an int beyond 2**53 into a double; a double into real or numeric) |
| FD007 | -0.0 into jsonb, whose numbers have no negative zero |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.providers.base import LintFinding
from vecmig.records import Batch, RecordId, sparse_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_EXACT_DOUBLE_INT = 2**53
_INT_RANGE = {"int": (INT64_MIN, INT64_MAX), "int4": (-(2**31), 2**31 - 1), "int2": (-(2**15), 2**15 - 1)}
_INT_BITS = {"int": 64, "int4": 32, "int2": 16}

HINTS: dict[str, str] = {
    "FD001": "replace NaN/Infinity in the source (e.g. with null), or drop the field (mapping.metadata.drop)",
    "FD002": "remove the NUL characters from the source, or drop the field (mapping.metadata.drop); "
             "PostgreSQL text and jsonb cannot hold them",
    "FD003": "fix the text in the source: a lone UTF-16 surrogate is not a character",
    "FD004": "store such integers as strings, or keep them in a JSON/jsonb metadata document "
             "(fields.metadata: <one column name>)",
    "FD005": "map the field to one type in the source, or store metadata as one JSON/jsonb document "
             "(fields.metadata: <one column name>)",
    "FD006": "store such integers as strings or in an integer column; a double would round them",
    "FD007": "replace -0.0 with 0 in the source, or store metadata in a Parquet/JSONL target",
}

_PY_KIND = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "a list",
            dict: "an object"}


class Refusal(ValueError):
    """One value a slot cannot hold: ``code``, the field ``path`` and why."""

    def __init__(self, code: str, why: str, path: str = "") -> None:
        super().__init__(why)
        self.code = code
        self.why = why
        self.path = path

    def at(self, prefix: str) -> Refusal:
        return Refusal(self.code, self.why, prefix + self.path)


def _kind(v: Any) -> str:
    return _PY_KIND.get(type(v), f"a {type(v).__name__}")


def _nonfinite(v: float) -> str:
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _short(v: Any, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_str(s: str, pg: bool) -> None:
    if pg and "\x00" in s:
        raise Refusal("FD002", f"holds a NUL character ({_short(s)})")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise Refusal("FD003", f"holds a lone surrogate ({_short(s)})") from None


def check_document(value: Any, pg: bool) -> None:
    """A JSON (``pg``: jsonb) document value, recursively; raises :class:`Refusal`."""
    t = type(value)
    if value is None or t is bool or t is int:
        return
    if t is str:
        _check_str(value, pg)
        return
    if t is float:
        if not math.isfinite(value):
            raise Refusal("FD001", f"is {_nonfinite(value)}, which JSON cannot hold")
        if pg and value == 0.0 and math.copysign(1.0, value) < 0:
            raise Refusal("FD007", "is -0.0, which jsonb stores as 0")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            try:
                _check_str(key, pg)
                check_document(v, pg)
            except Refusal as exc:
                raise exc.at(f".{key}") from None
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            try:
                check_document(v, pg)
            except Refusal as exc:
                raise exc.at(f"[{i}]") from None
        return
    if isinstance(value, np.generic):
        check_document(value.item(), pg)
        return
    if isinstance(value, np.ndarray):
        check_document(value.tolist(), pg)
    # other types (dates, decimals, bytes from another store) are written as text by the encoders


def check_typed(value: Any, logical: str, pg: bool) -> None:
    """A value for a typed column of logical type ``logical``; raises :class:`Refusal`."""
    if value is None:
        return
    if isinstance(value, np.generic):
        value = value.item()
    t = type(value)
    if logical in _INT_RANGE:
        lo, hi = _INT_RANGE[logical]
        if t is float and math.isfinite(value) and value.is_integer() and abs(value) <= MAX_EXACT_DOUBLE_INT:
            return  # stored as the int it equals (the canonical form compares them equal)
        if t is not int:
            if t is float and not math.isfinite(value):
                raise Refusal("FD001", f"is {_nonfinite(value)}, which an integer column cannot hold")
            raise Refusal("FD005", f"is {_kind(value)} ({_short(value)}), the column holds integers")
        if not lo <= value <= hi:
            raise Refusal("FD004", f"= {value} does not fit a {_INT_BITS[logical]}-bit integer column")
    elif logical in ("float", "float4", "numeric"):
        if t is int:
            if abs(value) > MAX_EXACT_DOUBLE_INT and float(value) != value:
                raise Refusal("FD006", f"= {value} would be rounded to {float(value)!r} in a double column")
            value = float(value)
        elif t is not float:
            raise Refusal("FD005", f"is {_kind(value)} ({_short(value)}), the column holds numbers")
        if logical == "float4" and math.isfinite(value) and float(np.float32(value)) != value:
            raise Refusal("FD006", f"= {value!r} would be rounded to {float(np.float32(value))!r} in a real "
                                   "(float4) column")
        if logical == "numeric":
            if not math.isfinite(value):
                raise Refusal("FD001", f"is {_nonfinite(value)}, which a numeric column cannot hold")
            if float(f"{value:.15g}") != value:
                # PostgreSQL casts double precision to numeric with 15 significant digits.
                raise Refusal("FD006", f"= {value!r} would be rounded to {float(f'{value:.15g}')!r} in a numeric "
                                       "column")
    elif logical == "bool":
        if t is not bool:
            raise Refusal("FD005", f"is {_kind(value)} ({_short(value)}), the column holds booleans")
    elif logical == "text":
        if t is not str:
            raise Refusal("FD005", f"is {_kind(value)} ({_short(value)}), the column holds strings")
        _check_str(value, pg)
    elif logical == "text[]":
        if not isinstance(value, list | tuple):
            raise Refusal("FD005", f"is {_kind(value)} ({_short(value)}), the column holds lists of strings")
        for i, item in enumerate(value):
            if item is None:
                continue
            if type(item) is not str:
                raise Refusal("FD005", f"holds {_kind(item)} ({_short(item)}), the column holds lists of strings",
                              f"[{i}]")
            try:
                _check_str(item, pg)
            except Refusal as exc:
                raise exc.at(f"[{i}]") from None
    else:  # json / jsonb
        check_document(value, pg)


def check_id(record_id: RecordId, id_type: str, pg: bool) -> Refusal | None:
    """An id for an ``int`` (64-bit) or ``text`` id column/field."""
    try:
        if id_type == "int":
            if type(record_id) is int and not INT64_MIN <= record_id <= INT64_MAX:
                raise Refusal("FD004", f"does not fit the 64-bit integer id column ({record_id})")
        elif isinstance(record_id, str):
            _check_str(record_id, pg)
    except Refusal as exc:
        return exc
    return None


def field_message(record_id: RecordId, key: str, exc: Refusal) -> str:
    return f"record {record_id!r}: metadata field '{key}{exc.path}' {exc.why}"


def refuse(where: str, record_id: RecordId, key: str | None, exc: Refusal) -> TerminalError:
    """The one-line write-time error: what (record, field, why), where (the target), how to fix."""
    what = field_message(record_id, key, exc) if key is not None else f"record {record_id!r}: {exc.why}"
    return TerminalError(f"{what} [{exc.code}] (writing {where})", hint=HINTS[exc.code])


Slots = Mapping[str, str]  # metadata key -> "json" | "jsonb" | a typed column's logical type


def record_problem(metadata: Mapping[str, Any], slots: Slots | None, document: str | None, pg: bool,
                   text: str | None = None) -> tuple[str | None, Refusal] | None:
    """The first value of one record its target cannot hold: (field or None for the text, why).

    ``document`` ("json"/"jsonb") when the metadata is one document; else ``slots`` gives each
    key's typed column.
    """
    if text is not None:
        try:
            _check_str(text, pg)
        except Refusal as exc:
            return None, Refusal(exc.code, f"text {exc.why}")
    for key, value in metadata.items():
        if value is None:
            continue
        try:
            if document is not None:
                _check_str(str(key), pg or document == "jsonb")
                check_document(value, pg or document == "jsonb")
            else:
                logical = (slots or {}).get(key, "json")
                check_typed(value, logical, pg)
        except Refusal as exc:
            return str(key), exc
    return None


def lint_records(ids: Iterable[RecordId], metadata: Iterable[Mapping[str, Any]],
                 texts: Iterable[str | None], slots: Slots | None, document: str | None, pg: bool,
                 target: str, id_type: str | None = None) -> list[LintFinding]:
    """Plan findings over a sample: one per code, with a count and the first record named."""
    by_code: dict[str, list[str]] = {}
    for rid, meta, text in zip(ids, metadata, texts, strict=True):
        if id_type is not None:
            bad_id = check_id(rid, id_type, pg)
            if bad_id is not None:
                by_code.setdefault(bad_id.code, []).append(f"record id {rid!r} {bad_id.why}")
        found = record_problem(meta, slots, document, pg, text)
        if found is not None:
            key, exc = found
            msg = field_message(rid, key, exc) if key is not None else f"record {rid!r}: {exc.why}"
            by_code.setdefault(exc.code, []).append(msg)
    out = []
    for code in sorted(by_code):
        msgs = by_code[code]
        more = f" (and {len(msgs) - 1} more record(s))" if len(msgs) > 1 else ""
        out.append(LintFinding(code, "error", f"{msgs[0]}{more}; target {target}", HINTS[code]))
    return out


def refuse_sparse(batch: Batch, store: str) -> None:
    """For a store without sparse values: a record carrying some is refused, naming it, before
    anything of the batch is written. Checked in the store's own ``upsert`` so that every path that
    writes (a copy, a catch-up by diffs, a restore) refuses alike, not only the engine's copy."""
    for rid, sparse in zip(batch.ids, sparse_of(batch), strict=True):
        if sparse is not None:
            from vecmig.providers import stores_that  # loads store classes: only on this error path

            raise TerminalError(f"record {rid!r} has sparse values, which {store} cannot store",
                                hint="migrate into a target that holds sparse values "
                                     f"({stores_that(lambda c: c.capabilities.sparse)}), "
                                     "or remove them from the source")
