"""Metadata filters of queries: one small language every store translates to its own.

The language is the one Pinecone, Chroma and MongoDB share, so a query log written for
either needs no rewrite::

    {"genre": "drama"}                                   # equality
    {"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}
    {"$or": [{"genre": "drama"}, {"rating": {"$gt": 4.5}}]}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists``, combined with ``$and`` / ``$or``;
several keys in one object mean "and". Values are strings, numbers, booleans (and lists of
them for ``$in``/``$nin``). :func:`check` refuses anything else with a message that says what
and where, so a typo never turns into "no filter". :func:`matches` is the reference
semantics: exact search, the stores without a filter language of their own, and the tests
of every store's translation use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Filter = Mapping[str, Any]

COMPARE = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
MEMBERSHIP = ("$in", "$nin")
OPERATORS = (*COMPARE, *MEMBERSHIP, "$exists")
COMBINERS = ("$and", "$or")


class FilterError(ValueError):
    """A filter the language does not have; ``path`` says where in the filter (``$or/1/year``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.path = path


def _scalar(v: Any) -> bool:
    # NaN (YAML's .nan, Python json's NaN) is refused: it compares false with everything, so a
    # filter holding one matched nothing on any store and every comparison of it "agreed".
    # Infinity is a value (a double column holds it) and a bound that means something.
    if isinstance(v, float) and math.isnan(v):
        return False
    return isinstance(v, str | bool | int | float) and v is not None


def check(flt: Any, path: str = "") -> None:
    """Raise :class:`FilterError` unless ``flt`` is a filter of the language."""
    if not isinstance(flt, Mapping):
        raise FilterError(f"a filter is an object like {{\"genre\": \"drama\"}}, not {type(flt).__name__}", path)
    for key, value in flt.items():
        here = f"{path}/{key}" if path else str(key)
        if not isinstance(key, str) or not key:
            raise FilterError("a filter key is a non-empty field name or $and/$or", here)
        if key in COMBINERS:
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of filters", here)
            for i, part in enumerate(value):
                check(part, f"{here}/{i}")
            continue
        if key.startswith("$"):
            raise FilterError(f"unknown operator {key}: at the top of a filter only $and and $or may stand; "
                              f"write {{\"field\": {{\"{key}\": ...}}}}", here)
        _check_condition(value, here)


def _check_condition(value: Any, path: str) -> None:
    if _scalar(value):
        return
    if isinstance(value, float):
        raise FilterError(f"a number in a filter must be finite, not {value}", path)
    if not isinstance(value, Mapping) or not value:
        raise FilterError("a condition is a string, number or boolean, or an object of operators "
                          f"({', '.join(OPERATORS)})", path)
    for op, arg in value.items():
        where = f"{path}/{op}"
        if op in COMPARE:
            if not _scalar(arg):
                raise FilterError(f"{op} takes a string, number or boolean", where)
            if op not in ("$eq", "$ne") and isinstance(arg, bool):
                raise FilterError(f"{op} compares numbers or strings, not booleans", where)
        elif op in MEMBERSHIP:
            if not isinstance(arg, list) or not all(_scalar(x) for x in arg):
                raise FilterError(f"{op} takes a list of strings, numbers or booleans", where)
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise FilterError("$exists takes true or false", where)
        else:
            raise FilterError(f"unknown operator {op}; the language has {', '.join(OPERATORS)}", where)


def conditions(flt: Filter) -> dict[str, Any]:
    """A condition in its long form: ``"drama"`` → ``{"$eq": "drama"}``."""
    return {k: v if isinstance(v, Mapping) else {"$eq": v} for k, v in flt.items()}


def fields(flt: Filter) -> set[str]:
    """Every metadata field the filter reads."""
    out: set[str] = set()
    for key, value in flt.items():
        if key in COMBINERS:
            for part in value:
                out |= fields(part)
        else:
            out.add(key)
    return out


def rename(flt: Filter, renames: Mapping[str, str]) -> dict[str, Any]:
    """The same filter over renamed fields (``mapping.rename``: a target's names)."""
    out: dict[str, Any] = {}
    for key, value in flt.items():
        if key in COMBINERS:
            out[key] = [rename(part, renames) for part in value]
        else:
            out[renames.get(key, key)] = value
    return out


def _same_kind(a: Any, b: Any) -> bool:
    """Numbers compare with numbers (bool is not a number here), strings with strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def _member(value: Any, options: list[Any]) -> bool:
    if isinstance(value, list):  # a list field matches when any element does (Pinecone, Mongo)
        return any(_member(v, options) for v in value)
    return any(_equal(value, o) for o in options)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


def _holds(metadata: Mapping[str, Any], field: str, op: str, arg: Any) -> bool:
    present = field in metadata and metadata[field] is not None
    value = metadata.get(field)
    if op == "$exists":
        return present is arg
    if op == "$eq":
        return present and (_member(value, [arg]) if isinstance(value, list) else _equal(value, arg))
    if op == "$ne":
        return not (present and (_member(value, [arg]) if isinstance(value, list) else _equal(value, arg)))
    if op == "$in":
        return present and _member(value, arg)
    if op == "$nin":
        return not (present and _member(value, arg))
    if not present or isinstance(value, list) or not _same_kind(value, arg):
        return False
    return _ORDER[op](value, arg)


def matches(metadata: Mapping[str, Any] | None, flt: Filter | None) -> bool:
    """Whether a record with ``metadata`` passes ``flt`` (None passes everything).

    A missing field fails every condition but ``$ne``, ``$nin`` and ``$exists: false``;
    numbers compare with numbers only (``"5"`` is not 5, ``true`` is not 1).
    """
    if not flt:
        return True
    md = metadata or {}
    for key, value in flt.items():
        if key == "$and":
            if not all(matches(md, part) for part in value):
                return False
        elif key == "$or":
            if not any(matches(md, part) for part in value):
                return False
        else:
            cond = value if isinstance(value, Mapping) else {"$eq": value}
            if not all(_holds(md, key, op, arg) for op, arg in cond.items()):
                return False
    return True
