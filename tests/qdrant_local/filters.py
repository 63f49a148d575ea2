"""Qdrant's payload filters, evaluated as the server does, for ``points/query``.

``must`` (every condition), ``should`` (at least one, when given), ``must_not`` (none), nested
filters as conditions; field conditions with ``match`` (``value``: a keyword, an integer or a
bool, typed, so the integer 1 does not match the float 1.0 nor ``true``; ``any``: one of a list
of keywords or integers), ``range`` (numbers, ints and floats alike, never bools), and
``is_empty`` (missing, null or ``[]``), ``is_null`` (present and null), ``has_id``. An array
payload matches ``match``/``range`` when one of its elements does. Keys are plain payload
keys: a path (``a.b``, ``a[]``) and the conditions this server does not implement (``except``,
``text``, ``values_count``, geo, ``nested``, ``min_should``) are refused with a 400, never
ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.qdrant_local.store import ApiError, PointKey, point_key

Predicate = Callable[[PointKey, dict[str, Any]], bool]
_MISSING = object()


def _refuse(what: str) -> ApiError:
    return ApiError(400, f"Wrong input: {what} is not served by this local Qdrant server")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _values(payload: dict[str, Any], key: str) -> list[Any]:
    value = payload.get(key, _MISSING)
    if value is _MISSING or value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _same(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored == wanted
    if isinstance(wanted, int):
        return type(stored) is int and stored == wanted
    return isinstance(wanted, str) and isinstance(stored, str) and stored == wanted


def _match(key: str, match: Any) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(match, dict):
        raise ApiError(400, "Format error in JSON body: match must be an object")
    match = {k: v for k, v in match.items() if v is not None}
    if set(match) == {"value"}:
        wanted = match["value"]
        if not isinstance(wanted, str | int):  # bool is an int
            raise ApiError(400, "Format error in JSON body: match.value must be a string, an integer or a bool")
        return lambda p: any(_same(v, wanted) for v in _values(p, key))
    if set(match) == {"any"}:
        options = match["any"]
        if not isinstance(options, list) or not (all(isinstance(o, str) for o in options)
                                                 or all(type(o) is int for o in options)):
            raise ApiError(400, "Format error in JSON body: match.any must be a list of strings or of integers")
        return lambda p: any(_same(v, o) for v in _values(p, key) for o in options)
    raise _refuse(f"match {', '.join(sorted(match))}")


def _range(key: str, bounds: Any) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(bounds, dict) or set(bounds) - {"gt", "gte", "lt", "lte"}:
        raise _refuse("this range (only gt/gte/lt/lte over numbers)")
    tests: list[Callable[[float], bool]] = []
    for op, bound in bounds.items():
        if bound is None:
            continue
        if not _number(bound):
            raise ApiError(400, f"Format error in JSON body: range.{op} must be a number")
        b = float(bound)
        tests.append({"gt": lambda x, b=b: x > b, "gte": lambda x, b=b: x >= b,
                      "lt": lambda x, b=b: x < b, "lte": lambda x, b=b: x <= b}[op])
    return lambda p: any(_number(v) and all(t(float(v)) for t in tests) for v in _values(p, key))


def _key(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, "Format error in JSON body: a condition needs a key")
    if any(c in raw for c in ".[]"):
        raise _refuse(f"the payload path {raw!r}")
    return raw


def _condition(cond: Any) -> Predicate:
    if not isinstance(cond, dict):
        raise ApiError(400, "Format error in JSON body: a condition must be an object")
    cond = {k: v for k, v in cond.items() if v is not None}
    if {"must", "should", "must_not", "min_should"} & set(cond) or not cond:
        return compile_filter(cond) or (lambda _k, _p: True)
    if "is_empty" in cond:
        key = _key((cond["is_empty"] or {}).get("key"))
        return lambda _k, p: p.get(key) is None or p.get(key) == []
    if "is_null" in cond:
        key = _key((cond["is_null"] or {}).get("key"))
        return lambda _k, p: key in p and p[key] is None
    if "has_id" in cond:
        wanted = {point_key(i) for i in cond["has_id"]}
        return lambda k, _p: k in wanted
    key = _key(cond.get("key"))
    rest = set(cond) - {"key"}
    if rest == {"match"}:
        test = _match(key, cond["match"])
    elif rest == {"range"}:
        test = _range(key, cond["range"])
    else:
        raise _refuse(f"the condition {', '.join(sorted(rest)) or 'without match or range'}")
    return lambda _k, p: test(p)


def compile_filter(raw: Any) -> Predicate | None:
    """The predicate of a request's ``filter`` (None: no filter)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ApiError(400, "Format error in JSON body: filter must be an object")
    raw = {k: v for k, v in raw.items() if v is not None}
    if "min_should" in raw:
        raise _refuse("min_should")
    unknown = set(raw) - {"must", "should", "must_not"}
    if unknown:
        raise ApiError(400, f"Format error in JSON body: unknown filter field(s) {', '.join(sorted(unknown))}")

    def parts(name: str) -> list[Predicate]:
        value = raw.get(name) or []
        return [_condition(c) for c in (value if isinstance(value, list) else [value])]

    must, should, must_not = parts("must"), parts("should"), parts("must_not")
    return lambda k, p: (all(c(k, p) for c in must) and (not should or any(c(k, p) for c in should))
                         and not any(c(k, p) for c in must_not))
