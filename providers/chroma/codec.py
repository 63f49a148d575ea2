"""What Chroma can keep of a record, as plan lint and as the checks ``upsert`` enforces.

Measured with chromadb 1.5.9 (PersistentClient and ``chroma run``): ids are non-empty strings;
metadata values are str, int (64-bit), float (double, 1.0 stays a float), bool, and non-empty
lists of one of those types; a None value is simply absent (vecmig's canonical form agrees).
What it would change silently is refused here instead, with a stable code:

| code  | severity | rule |
|-------|----------|------|
| CH001 | error    | the id is empty (Chroma refuses it) |
| CH002 | info     | integer ids are kept as decimal strings; a created collection records ``vecmig:id_type`` |
| CH003 | error    | an integer id into a collection that keeps string ids, or a string id into one that keeps ints |
| CH004 | error    | a metadata key is empty, starts with '#' or '$', or with 'chroma:' (reserved or refused) |
| CH005 | error    | a metadata value is a nested object, or a list that is empty, mixed or holds null |
| CH006 | error    | an integer beyond 64 bits (Chroma turns it into a float) |
| CH007 | error    | a float is NaN or Infinity (Chroma drops the record's whole metadata) |
| CH008 | error    | a float is -0.0 (Chroma keeps 0.0) |
| CH009 | error    | a string (value, key or text) holds a lone surrogate: not Unicode |
| CH010 | error    | a vector too large for a cosine collection (its norm overflows float32: Chroma keeps NaN) |
| CH012 | error    | a float Chroma would keep 1 ulp off (its JSON parser rounds twice: :func:`kept_float`) |
| CH013 | error    | the record carries sparse values, which a Chroma collection cannot hold |

Codes are stable: new rules get new numbers, retired numbers are never reused (CH011 is not
used: batches beyond the server's max batch size are split by ``upsert``, nothing to report).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.providers.base import LintFinding
from vecmig.records import Batch, RecordId, sparse_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Collection metadata key recording that the collection's (string) ids stand for integers.
ID_TYPE_KEY = "vecmig:id_type"
_RESERVED_PREFIXES = ("#", "$", "chroma:")
_FLOAT32_MAX = float(np.finfo(np.float32).max)

HINTS: dict[str, tuple[str, str]] = {
    "CH001": ("error", "give every record a non-empty id (Chroma refuses empty ids)"),
    "CH002": ("info", "nothing to do: scan and validation map them back to ints; readers of the collection see "
                      "strings"),
    "CH003": ("error", "migrate into a new collection (target.create) that records the id type, or map the ids "
                       "to one type in the source"),
    "CH004": ("error", "rename the field (mapping.metadata.rename): Chroma refuses empty keys, keys starting with "
                       "'#' or '$', and reserves 'chroma:'"),
    "CH005": ("error", "flatten the object or list (mapping), or drop the field (mapping.metadata.drop): Chroma "
                       "keeps only non-empty lists of one type of str, int, float or bool"),
    "CH006": ("error", "store such integers as strings: Chroma would turn them into floats"),
    "CH007": ("error", "replace NaN/Infinity in the source (e.g. with null), or drop the field"),
    "CH008": ("error", "replace -0.0 with 0.0 in the source: Chroma keeps no negative zero"),
    "CH009": ("error", "fix the text in the source: a lone UTF-16 surrogate is not a character"),
    "CH010": ("error", "scale these vectors down (their length must fit float32), or use metric euclidean or "
                       "dotproduct"),
    "CH013": ("error", "migrate sparse values into a store that holds them, or remove them from the source"),
    "CH012": ("error", "round such floats to at most 15 significant digits in the source (they are then kept "
                       "exactly), or store them as strings"),
}

_INT_ID = re.compile(r"0|-?[1-9][0-9]*")  # exactly what str(int) gives
_NUMBER = re.compile(r"(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?")
_POW10 = [float(f"1e{k}") for k in range(309)]


def kept_float(value: float) -> float:
    """The double Chroma keeps for ``value``: the client sends its shortest decimal (``repr``),
    and the server's JSON parser (serde_json without exact float parsing) reads it as the
    decimal significand (as a u64, then a double) multiplied or divided by a power of ten:
    two roundings, so about one double in six comes back 1 ulp off. Measured against
    chromadb 1.5.9 (PersistentClient and ``chroma run``): this predicts every value kept.
    Decimals of up to 15 significant digits are kept exactly."""
    m = _NUMBER.fullmatch(repr(value))
    if m is None:
        return value  # inf / nan: refused before this
    sign, whole, frac, exp_text = m.groups()
    frac = frac or ""
    significand = int((whole + frac).lstrip("0") or "0")
    exponent = int(exp_text or 0) - len(frac)
    while significand > 2**64 - 1:  # digits past a u64 are dropped
        significand //= 10
        exponent += 1
    f = float(significand)
    while True:
        if abs(exponent) < len(_POW10):
            f = f * _POW10[exponent] if exponent >= 0 else f / _POW10[-exponent]
            break
        if f == 0.0:
            break
        f /= 1e308
        exponent += 308
    return -f if sign else f


class Refused(ValueError):
    """One part of one record Chroma cannot keep as it is."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


@dataclass(frozen=True)
class Found:
    code: str
    record: RecordId
    why: str


def wire_id(rid: RecordId, id_type: str | None) -> str:
    """The id as Chroma keeps it; ``id_type`` is the collection's (``int``/``text``/None: unknown)."""
    if isinstance(rid, bool) or not isinstance(rid, int | str):
        raise Refused("CH003", f"id {rid!r} is {type(rid).__name__}, not an int or a string")
    if id_type == "int" and not isinstance(rid, int):
        raise Refused("CH003", f"id {rid!r} is a string, but the collection keeps integer ids")
    if id_type == "text" and isinstance(rid, int):
        raise Refused("CH003", f"id {rid} is an integer, but the collection keeps string ids")
    text = str(rid)
    if not text:
        raise Refused("CH001", "the id is empty")
    _check_str(text, "the id")
    return text


def read_id(text: str, id_type: str | None) -> RecordId:
    """A Chroma id back as the source's: an int where the collection records int ids. Only the
    decimal strings vecmig writes are ints: "05", " 7" or "1_0" would read as 5, 7 or 10, be
    fetched under another id and go missing; "doc-9" is no int at all. Either is refused."""
    if id_type != "int":
        return text
    if _INT_ID.fullmatch(text) and INT64_MIN <= int(text) <= INT64_MAX:
        return int(text)
    raise TerminalError(
        f"Chroma collection records integer ids ({ID_TYPE_KEY}: int) but holds id {text!r}, which is not "
        "the decimal form of one",
        hint=f"remove '{ID_TYPE_KEY}' from the collection's metadata (collection.modify) to read every id as "
             "a string, or rewrite that record under its decimal id")


def _check_str(s: str, what: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("CH009", f"{what} holds a lone surrogate") from None


def _check_scalar(value: Any, where: str) -> None:
    t = type(value)
    if t is bool:
        return
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise Refused("CH006", f"{where} = {value} does not fit 64 bits")
        return
    if t is float:
        if not math.isfinite(value):
            raise Refused("CH007", f"{where} is {value}")
        if value == 0.0 and math.copysign(1.0, value) < 0:
            raise Refused("CH008", f"{where} is -0.0")
        kept = kept_float(value)
        if kept != value:
            raise Refused("CH012", f"{where} = {value!r} would be kept as {kept!r}")
        return
    if t is str:
        _check_str(value, where)
        return
    raise Refused("CH005", f"{where} is {t.__name__}, which Chroma cannot keep")


def wire_metadata(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record's metadata as Chroma keeps it (None values left out: absent is null); None
    when nothing is left, since Chroma refuses an empty mapping. Raises :class:`Refused`."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        name = str(key)
        if not name or name.startswith(_RESERVED_PREFIXES):
            raise Refused("CH004", f"metadata key {name!r} is refused or reserved by Chroma")
        _check_str(name, f"metadata key {name[:40]!r}")
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        where = f"metadata.{name}"
        if isinstance(value, list | tuple):
            kinds = {type(v) for v in value}
            if not value or len(kinds) != 1 or kinds & {type(None), dict, list, tuple}:
                raise Refused("CH005", f"{where} is a list that is empty, mixed or holds null/objects")
            for i, item in enumerate(value):
                _check_scalar(item, f"{where}[{i}]")
            out[name] = list(value)
            continue
        if isinstance(value, Mapping):
            raise Refused("CH005", f"{where} is a nested object")
        _check_scalar(value, where)
        out[name] = value
    return out or None


def check_text(text: str | None) -> None:
    if text is not None:
        _check_str(text, "the text")


def check_vector(vector: np.ndarray, metric: str | None) -> None:
    if metric == "cosine" and vector.size:
        v = vector.astype(np.float64)
        if float(np.dot(v, v)) > _FLOAT32_MAX:  # Chroma sums the squares in float32: inf, then NaN values
            raise Refused("CH010", "the vector's squared length overflows float32")


def check_record(rid: RecordId, vector: np.ndarray, metadata: Mapping[str, Any], text: str | None,
                 id_type: str | None, metric: str | None) -> tuple[str, dict[str, Any] | None]:
    """Every rule on one record; the wire id and metadata. Raises :class:`Refused`."""
    wid = wire_id(rid, id_type)
    meta = wire_metadata(metadata)
    check_text(text)
    check_vector(vector, metric)
    return wid, meta


def rejected(rid: RecordId, exc: Refused, collection: str | None) -> TerminalError:
    return TerminalError(f"record {rid!r} cannot be written to Chroma collection {collection!r}: {exc.why} "
                         f"({exc.code})", hint=HINTS[exc.code][1])


def check_sparse(rid: RecordId, sparse: Any) -> None:
    if sparse is not None:
        raise Refused("CH013", "it carries sparse values")


def findings(batch: Batch, id_type: str | None, metric: str | None) -> list[Found]:
    out: list[Found] = []
    for rid, sparse in zip(batch.ids, sparse_of(batch), strict=True):
        if sparse is not None:
            out.append(Found("CH013", rid, "it carries sparse values"))
    ints = [rid for rid in batch.ids if isinstance(rid, int) and not isinstance(rid, bool)]
    if ints and id_type != "text":
        out.append(Found("CH002", ints[0], f"{len(ints)} integer id(s) kept as decimal strings"))
    for rid, vec, meta, text in batch.rows():
        try:
            check_record(rid, vec, meta, text, id_type, metric)
        except Refused as exc:
            out.append(Found(exc.code, rid, exc.why))
    return out


def summarize(found: Iterable[Found]) -> list[LintFinding]:
    """One finding per code, with the count and the first few records."""
    by_code: dict[str, list[Found]] = {}
    for f in found:
        by_code.setdefault(f.code, []).append(f)
    out = []
    for code in sorted(by_code):
        items = by_code[code]
        severity, hint = HINTS[code]
        if code == "CH002":
            message = f"Chroma keeps ids as strings: {items[0].why}"
        else:
            shown = "; ".join(f"record {f.record!r}: {f.why}" for f in items[:3])
            more = "; ..." if len(items) > 3 else ""
            message = f"{len(items)} record(s) Chroma cannot keep as they are ({shown}{more})"
        out.append(LintFinding(code=code, severity=severity, message=message, hint=hint))  # type: ignore[arg-type]
    return out
