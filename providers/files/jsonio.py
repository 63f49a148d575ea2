"""JSON for the file stores: exact parsing (orjson when present, stdlib json where it must),
compact float32 vectors, and the encoder hook for values other stores hand over."""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
from collections.abc import Iterable
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for what other stores hand us inside metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


try:  # an optional accelerator (pinecone's SDK brings it): parsed values are identical
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


# orjson parses integers outside [-2**63, 2**64) as floats (18446744073709551616 becomes
# 1.8446744073709552e+19) instead of refusing them. A float that large in what orjson
# returned may therefore have been an integer in the text: such documents are parsed again
# by stdlib json, which keeps every integer exact. A regular expression over the raw bytes
# cost 2-8x the parse itself on digit-heavy lines; the checks below cost a few percent, and
# a float that really was written that large only costs a second parse.
_MAYBE_INT = float(2**63)


def _maybe_big_int(values: Iterable[Any]) -> bool:
    """Any float beyond +-2**63 among ``values``, nested or not (plain loops: 2x ``any(map())``)."""
    for value in values:
        t = type(value)
        if t is float:
            if value >= _MAYBE_INT or value <= -_MAYBE_INT:
                return True
        elif t is dict:
            if _maybe_big_int(value.values()):
                return True
        elif t is list and _maybe_big_int(value):
            return True
    return False


def loads(data: bytes | str, skip: frozenset[str] | tuple[str, ...] = ()) -> Any:
    """Parse one JSON document exactly; stdlib json has the last word on anything orjson
    refuses or would change (NaN literals, integers beyond 64 bits) and words the errors.

    ``skip``: top-level keys whose numbers need not be exact (a JSONL record's float32
    vector), left out of the look for integers orjson turned into floats.
    """
    if _orjson is not None:
        try:
            doc = _orjson.loads(data)
        except ValueError:
            return json.loads(data)
        if type(doc) is dict:
            suspect = _maybe_big_int(v for k, v in doc.items() if k not in skip) if skip else \
                _maybe_big_int(doc.values())
        else:
            suspect = _maybe_big_int((doc,))
        if not suspect:
            return doc
    return json.loads(data)


def float32_for_json(vectors: np.ndarray) -> np.ndarray:
    """float64 copies of float32 values whose repr is the short decimal of the float32.

    ``repr(float(np.float32(0.1)))`` is ``0.10000000149011612``; the double nearest to
    ``0.1`` converts back to the same float32 and prints as ``0.1``. Files get ~40% smaller
    and faster to parse. Each candidate (6 to 9 significant digits, the most a float32
    needs) is checked bit for bit; whatever fails keeps the exact widened value.
    """
    v32 = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    v64 = v32.astype(np.float64)
    out = v64.copy()
    bits = v32.view(np.uint32)
    with np.errstate(all="ignore"):
        exp = np.floor(np.log10(np.abs(v64)))
        exp[~np.isfinite(exp)] = 0
        exp_i = exp.astype(np.int64)
        todo = np.flatnonzero(np.isfinite(v64))
        for digits in (6, 7, 8, 9):
            if not todo.size:
                break
            x = v64[todo]
            m = digits - 1 - exp_i[todo]
            scale = 10.0 ** np.abs(m)  # exact up to 1e22, so the division below rounds once
            up = m >= 0
            y = np.where(up, np.round(x * scale) / scale, np.round(x / scale) * scale)
            good = (np.abs(m) <= 22) & (y.astype(np.float32).view(np.uint32) == bits[todo])
            out[todo[good]] = y[good]
            todo = todo[~good]
    return out.reshape(np.shape(vectors))


def dumps(obj: Any) -> str:
    # allow_nan=False: NaN is not JSON, and no vector store accepts it either.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=json_default)
