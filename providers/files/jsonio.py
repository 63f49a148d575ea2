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

    _HAVE_ORJSON = True
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_ORJSON = False


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


class DuplicateKey(ValueError):
    """A JSON object names one key twice: parsers keep the last silently, so data would vanish."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key.encode("utf-8", "backslashreplace").decode()
                raise DuplicateKey(f"key {shown!r} appears twice in one object; only one of its values could be kept")
            seen.add(key)
    return out


def _tally(value: Any, counts: list[int]) -> None:
    """Add to ``counts`` = [quote characters, letters t, letters f] what ``value`` spells when
    written as JSON without escapes (a key or a string: 2 quotes plus what is inside; ``true``
    one t, ``false`` one f; numbers and null neither)."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            counts[0] += 2 + k.count('"')
            counts[1] += k.count("t")
            counts[2] += k.count("f")
            _tally(v, counts)
    elif t is list:
        for v in value:
            if type(v) is not float:
                _tally(v, counts)
    elif t is str:
        counts[0] += 2 + value.count('"')
        counts[1] += value.count("t")
        counts[2] += value.count("f")
    elif t is bool:
        counts[1 if value else 2] += 1


def spelled_as_parsed(data: bytes | str, doc: Any, skip: frozenset[str] | tuple[str, ...] = ()) -> tuple[bool, bool]:
    """(quotes agree, letters t and f agree) between the raw text and the parsed document,
    leaving out the values of the top-level ``skip`` keys (their keys still count).

    A duplicate key adds quotes the parsed document no longer has, so agreement proves there
    is none; ``true``/``false`` or a string inside a skipped value adds letters or quotes the
    walk did not count. Single-byte counts run at memory speed, and the walk skips floats;
    a disagreement (escapes such as \\t or \\u00ff, a quote escaped as \\u0022) only sends
    the caller to an exact check."""
    counts = [0, 0, 0]
    if type(doc) is dict:
        for k, v in doc.items():
            counts[0] += 2 + k.count('"')
            counts[1] += k.count("t")
            counts[2] += k.count("f")
            if k not in skip:
                _tally(v, counts)
    else:
        _tally(doc, counts)
    if isinstance(data, str):
        quotes, ts, fs = data.count('"'), data.count("t"), data.count("f")
    else:
        rest = data.translate(None, _NUMBERS)  # one pass; what is left is small
        quotes, ts, fs = rest.count(b'"'), rest.count(b"t"), rest.count(b"f")
    return quotes == counts[0], (ts, fs) == (counts[1], counts[2])


_NUMBERS = b"0123456789.eE+-,[] \t\r\n"


def check_duplicate_keys(data: bytes | str, doc: Any, skip: frozenset[str] | tuple[str, ...] = ()) -> None:
    """Raise :class:`DuplicateKey` if an object of ``data`` names a key twice."""
    if type(doc) not in (dict, list):
        return
    if spelled_as_parsed(data, doc, skip)[0]:
        return
    json.loads(data, object_pairs_hook=_no_duplicates)


def loads(data: bytes | str, skip: frozenset[str] | tuple[str, ...] = ()) -> Any:
    """Parse one JSON document exactly; stdlib json has the last word on anything orjson
    refuses or would change (NaN literals, integers beyond 64 bits) and words the errors.
    An object that names a key twice is refused (:class:`DuplicateKey`, a ValueError).

    ``skip``: top-level keys whose numbers need not be exact (a JSONL record's float32
    vector), left out of the look for integers orjson turned into floats.
    """
    doc = _loads(data, skip)
    check_duplicate_keys(data, doc, skip)
    return doc


def loads_record(data: bytes | str, skip: frozenset[str] | tuple[str, ...] = ()) -> tuple[Any, bool]:
    """:func:`loads`, and whether the skipped values may hold more than numbers (quotes or
    ``true``/``false`` the rest of the document does not account for): then the caller checks
    them element by element; otherwise they hold numbers, nulls and lists only."""
    doc = _loads(data, skip)
    if type(doc) not in (dict, list):
        return doc, False
    quotes_ok, words_ok = spelled_as_parsed(data, doc, skip)
    if not quotes_ok:
        json.loads(data, object_pairs_hook=_no_duplicates)
    return doc, not (quotes_ok and words_ok)


def _loads(data: bytes | str, skip: frozenset[str] | tuple[str, ...] = ()) -> Any:
    if _HAVE_ORJSON:
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
