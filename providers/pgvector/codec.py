"""Binary wire formats: pgvector's ``vector`` and PostgreSQL's binary COPY stream.

``decode_vectors`` turns a page of raw binary ``vector`` values into one float32 matrix
with a single byteswap (bit-exact). ``build_copy`` assembles a complete binary COPY
payload with numpy for the fixed-width fields and ``bytes`` for the rest; the provider
uses it as the careful fallback of its upsert (it coerces safe values and names the
offending record), while the fast path is psycopg's C ``Copy.write_row`` — the two tie
end to end, see the provider's docstring for the measurements.

Only the seven "wire" types that vecmig stages data in are encoded: int8, float8, bool,
text, text[], jsonb and vector. The staging table uses exactly these types and the final
``INSERT ... SELECT`` casts to whatever the target column really is, so a target with
``int4``, ``varchar`` or ``timestamptz`` columns still works without an encoder for each.
"""

from __future__ import annotations

import decimal
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Wire = Literal["int8", "float8", "bool", "text", "text[]", "jsonb", "vector"]

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
PGCOPY_TRAILER = b"\xff\xff"
NULL_FIELD = b"\xff\xff\xff\xff"
TEXT_OID = 25

_I4 = struct.Struct(">i")
_I8 = struct.Struct(">iq")
_F8 = struct.Struct(">id")
_B1 = struct.Struct(">i?")
_ARRAY_1D = struct.Struct(">iiiii")  # ndim, has_null, element oid, length, lower bound
_ARRAY_EMPTY = struct.Struct(">iii").pack(0, 0, TEXT_OID)
_FAST_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# Beyond this magnitude repr() writes an integral float in exponent form ("6.02e+23"), which a
# jsonb numeric keeps with scale 0 and gives back as the int 602000000000000000000000: the
# value survives, its type (float) does not. Written positionally with ".0", it keeps both.
_EXPONENT_FORM = 1e16


def _needs_positional(v: Any) -> bool:
    if type(v) is float:
        return math.isfinite(v) and abs(v) >= _EXPONENT_FORM and v.is_integer()
    if isinstance(v, dict):
        return any(_needs_positional(x) for x in v.values())
    if isinstance(v, list | tuple):
        return any(_needs_positional(x) for x in v)
    return False


def _float_text(v: float) -> str:
    if math.isfinite(v) and abs(v) >= _EXPONENT_FORM and v.is_integer():
        # The shortest decimal that round-trips, without the exponent: parses back to v.
        return format(decimal.Decimal(repr(v)), "f") + ".0"
    return float.__repr__(v) if math.isfinite(v) else _refuse_nonfinite(v)


def _refuse_nonfinite(v: float) -> str:
    raise ValueError(f"Out of range float values are not JSON compliant: {v!r}")


class _PositionalEncoder(json.JSONEncoder):
    """The stdlib encoder with floats that keep their type through a jsonb numeric."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        return json.encoder._make_iterencode(  # type: ignore[attr-defined]
            {}, self.default, json.encoder.py_encode_basestring, self.indent, _float_text,
            self.key_separator, self.item_separator, self.sort_keys, self.skipkeys, _one_shot)(o, 0)


_SLOW_JSON = _PositionalEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def jsonb_dumps(value: Any) -> str:
    """JSON text for a jsonb value that PostgreSQL gives back as the same Python value and type."""
    return _SLOW_JSON(value) if _needs_positional(value) else _FAST_JSON(value)


_JSON_DUMPS = jsonb_dumps


class EncodeError(ValueError):
    """A value cannot be written to its column; ``row`` indexes the batch."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row


# ---- vectors ----------------------------------------------------------------------------------


def vector_dtype(dim: int) -> np.dtype:
    """pgvector's binary ``vector``: uint16 dim, uint16 unused, float32[dim], all big-endian."""
    return np.dtype([("dim", ">u2"), ("unused", ">u2"), ("v", ">f4", (dim,))])


def decode_vectors(payloads: Sequence[bytes], dim: int | None = None) -> np.ndarray:
    """Turn the binary ``vector`` values of a result into one native float32 matrix.

    Bit-exact: big-endian float32 is byteswapped, never converted through float64.
    """
    n = len(payloads)
    if n == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    d = (len(payloads[0]) - 4) // 4
    buf = b"".join(payloads)
    if len(buf) != n * (4 + 4 * d):
        raise ValueError("vectors of different dimensions in one column; pin the column type to vector(n)")
    rec = np.frombuffer(buf, dtype=vector_dtype(d))
    if (rec["dim"] != d).any():
        raise ValueError("malformed vector payload")
    return np.ascontiguousarray(rec["v"], dtype=np.float32)


def encode_vector(vector: np.ndarray) -> bytes:
    """One binary ``vector`` value (used for query parameters, not for COPY)."""
    v = np.ascontiguousarray(vector, dtype=">f4")
    return struct.pack(">HH", v.shape[0], 0) + v.tobytes()


# ---- binary COPY -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyColumn:
    """One column of a COPY payload: its name, wire type and the batch's values for it.

    ``values`` is a float32 matrix for ``vector`` and a sequence of Python values otherwise.
    """

    name: str
    wire: Wire
    values: Any


def _all_of(values: Sequence[Any], kinds: tuple[type, ...]) -> bool:
    # ``type(v) in kinds`` rather than isinstance: bool is an int subclass and must not
    # pass as an int8 silently.
    return all(type(v) in kinds for v in values)


def _fixed_array(col: CopyColumn) -> np.ndarray | None:
    """The column as a numpy array when it can be encoded as fixed-width fields (no NULLs)."""
    vals = col.values
    if col.wire == "int8" and _all_of(vals, (int,)):
        try:
            return np.asarray(vals, dtype=np.int64)
        except OverflowError:
            return None
    if col.wire == "float8" and _all_of(vals, (float, int)):
        try:
            return np.asarray(vals, dtype=np.float64)
        except OverflowError:
            return None
    if col.wire == "bool" and _all_of(vals, (bool,)):
        return np.asarray(vals, dtype=np.bool_)
    return None


_FIXED_TYPE = {"int8": ">i8", "float8": ">f8", "bool": "?"}
_FIXED_LEN = {"int8": 8, "float8": 8, "bool": 1}


def _variable_fields(col: CopyColumn) -> list[bytes]:
    """Length-prefixed field bytes per row, NULL as length -1."""
    out: list[bytes] = []
    append = out.append
    wire = col.wire
    for row, v in enumerate(col.values):
        if v is None:
            append(NULL_FIELD)
            continue
        try:
            if wire == "text":
                if type(v) is not str:
                    raise TypeError(f"expected a string, got {type(v).__name__}")
                b = v.encode()
                append(_I4.pack(len(b)) + b)
            elif wire == "int8":
                integral = isinstance(v, float | np.floating) and float(v).is_integer()
                if type(v) is int or isinstance(v, np.integer) or integral:
                    append(_I8.pack(8, int(v)))
                else:
                    raise TypeError(f"expected an integer, got {type(v).__name__} {v!r}")
            elif wire == "float8":
                if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                    raise TypeError(f"expected a number, got {type(v).__name__}")
                append(_F8.pack(8, float(v)))
            elif wire == "bool":
                if not isinstance(v, bool | np.bool_):
                    raise TypeError(f"expected a boolean, got {type(v).__name__}")
                append(_B1.pack(1, bool(v)))
            elif wire == "text[]":
                append(_text_array(v))
            elif wire == "jsonb":
                b = b"\x01" + _JSON_DUMPS(_jsonable(v)).encode()
                append(_I4.pack(len(b)) + b)
            else:  # pragma: no cover - vector is always fixed width
                raise TypeError(f"unsupported wire type {wire}")
        except (TypeError, ValueError, OverflowError, struct.error) as exc:
            raise EncodeError(f"column '{col.name}': {exc}", row) from None
    return out


def _text_array(v: Any) -> bytes:
    if isinstance(v, str) or not isinstance(v, list | tuple | np.ndarray):
        raise TypeError(f"expected a list of strings, got {type(v).__name__}")
    if len(v) == 0:
        return _I4.pack(len(_ARRAY_EMPTY)) + _ARRAY_EMPTY
    parts = []
    has_null = 0
    for item in v:
        if item is None:
            has_null = 1
            parts.append(NULL_FIELD)
        elif type(item) is str:
            b = item.encode()
            parts.append(_I4.pack(len(b)) + b)
        else:
            raise TypeError(f"expected a list of strings, found {type(item).__name__}")
    body = _ARRAY_1D.pack(1, has_null, TEXT_OID, len(v), 1) + b"".join(parts)
    return _I4.pack(len(body)) + body


def _jsonable(v: Any) -> Any:
    """numpy scalars/arrays and tuples, as sources produce them, into plain JSON values."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("NaN/Infinity cannot be stored in jsonb")
    return v


def build_copy(columns: Sequence[CopyColumn], n: int) -> tuple[list[str], bytes]:
    """A complete binary COPY payload for ``n`` rows; returns (column order, payload).

    Fixed-width columns without NULLs (int8/float8/bool and the vector) are laid out as one
    numpy structured array whose bytes are exactly the head of each row; the variable-width
    fields are appended per row. The caller must COPY with the returned column order.
    """
    fixed: list[tuple[CopyColumn, np.ndarray]] = []
    variable: list[tuple[CopyColumn, list[bytes]]] = []
    for col in columns:
        if col.wire == "vector":
            fixed.append((col, col.values))
            continue
        arr = _fixed_array(col)
        if arr is not None:
            fixed.append((col, arr))
        else:
            variable.append((col, _variable_fields(col)))

    fields: list[tuple[Any, ...]] = [("nfields", ">i2")]
    for i, (col, arr) in enumerate(fixed):
        fields.append((f"l{i}", ">i4"))
        if col.wire == "vector":
            dim = arr.shape[1]
            fields += [(f"d{i}", ">u2"), (f"u{i}", ">u2"), (f"v{i}", ">f4", (dim,))]
        else:
            fields.append((f"v{i}", _FIXED_TYPE[col.wire]))
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["nfields"] = len(columns)
    for i, (col, arr) in enumerate(fixed):
        if col.wire == "vector":
            dim = arr.shape[1]
            rows[f"l{i}"] = 4 + 4 * dim
            rows[f"d{i}"] = dim
            rows[f"u{i}"] = 0
            rows[f"v{i}"] = arr
        else:
            rows[f"l{i}"] = _FIXED_LEN[col.wire]
            rows[f"v{i}"] = arr
    order = [c.name for c, _ in fixed] + [c.name for c, _ in variable]
    head = rows.tobytes()
    if not variable:
        return order, PGCOPY_HEADER + head + PGCOPY_TRAILER
    width = rows.dtype.itemsize
    view = memoryview(head)
    parts: list[Any] = [PGCOPY_HEADER]
    extend = parts.extend
    var_lists = [fields_ for _, fields_ in variable]
    for i, rest in enumerate(zip(*var_lists, strict=True)):
        start = i * width
        parts.append(view[start : start + width])
        extend(rest)
    parts.append(PGCOPY_TRAILER)
    return order, b"".join(parts)
