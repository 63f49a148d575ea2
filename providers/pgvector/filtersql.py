"""Query filters (:mod:`vecmig.filters`) as SQL over the layout the provider reads.

A record's metadata is what ``read.py`` decodes: one typed column per field (NULL = absent),
or one json/jsonb document (its keys are the fields). The SQL here must hold for exactly the
records :func:`vecmig.filters.matches` passes, so each condition is written against the value
*as Python reads it back*:

* an int column is a Python int, compared exactly (as ``numeric``, never through float8);
* a float column is a Python float (``float8``): compared with an int argument that float8
  cannot hold by the two floats around it (``x > 2**53 + 1`` is ``x >= 2**53 + 2``), and NaN
  (which PostgreSQL sorts above everything) fails every comparison, as in Python;
* a jsonb number is read as an int when its text has no decimal point (``scale = 0``), else as
  the float its text parses to; strings compare by code point (``COLLATE "C"``: UTF-8 bytes
  order as code points do), booleans are never numbers, a string is never a number;
* a list (``text[]``, a jsonb array, nested arrays too) matches ``$eq``/``$in`` when any
  element does, and never an order comparison.

Every condition is wrapped in ``coalesce(..., false)``, so NULLs never reach ``NOT`` (``$ne``,
``$nin``) or ``OR``: SQL's three-valued logic would otherwise drop records Python keeps. Values
are psycopg ``sql.Literal`` s, never formatted into the text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.providers.floatcmp import bracket
from vecmig.providers.pgvector.sql import Layout

TRUE = sql.SQL("true")
FALSE = sql.SQL("false")
# Decimal text at or beyond which float parsing gives ±inf (half way between the largest float
# and 2**1024, ties to even), and at or below which it gives 0.0 (half the smallest subnormal).
_OVERFLOW = sql.SQL("CAST({} AS numeric)").format(sql.Literal(str(2**1024 - 2**970)))
with localcontext(prec=1200):
    _UNDERFLOW = sql.SQL("CAST({} AS numeric)").format(sql.Literal(format(Decimal(1) / Decimal(2**1075), "f")))
_SQL_OP = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


@dataclass(frozen=True)
class Value:
    """How one metadata field reads: its kind as Python sees it, and the SQL expression."""

    kind: str  # int float bool text text[] json absent
    expr: sql.Composable


def field_value(layout: Layout, name: str, alias: str = "t") -> Value:
    doc = layout.json_column
    if doc is not None:
        col: sql.Composable = sql.Identifier(alias, doc.name)
        if doc.typname == "json":
            col = sql.SQL("{}::jsonb").format(col)
        if name == doc.name:  # a document that is not an object reads as {column: document}
            return Value("json", sql.SQL("(CASE WHEN jsonb_typeof({0}) = 'object' THEN {0} -> {1} ELSE {0} END)")
                         .format(col, sql.Literal(name)))
        return Value("json", sql.SQL("({} -> {})").format(col, sql.Literal(name)))
    column = next((c for c in layout.metadata if c.name == name), None)
    if column is None:
        return Value("absent", sql.SQL("NULL"))
    ident = sql.Identifier(alias, column.name)
    if column.logical == "int":
        return Value("int", sql.SQL("({}::numeric)").format(ident))
    if column.logical == "float":
        return Value("float", sql.SQL("({}::float8)").format(ident))
    if column.logical == "bool":
        return Value("bool", ident)
    if column.logical == "text":
        return Value("text", sql.SQL("({}::text)").format(ident))
    if column.logical == "text[]":
        return Value("text[]", sql.SQL("({}::text[])").format(ident))
    if column.logical == "json":
        if column.typname in ("json", "jsonb"):
            return Value("json", sql.SQL("({}::jsonb)").format(ident))
        return Value("json", sql.SQL("to_jsonb({})").format(ident))
    raise TerminalError(f"metadata column '{column.name}' of '{layout.relation.name}' is {column.sqltype}: "
                        "a filter cannot compare it", hint="leave that field out of the query filters")


def where(layout: Layout, flt: Filter | None, alias: str = "t") -> sql.Composable:
    """The SQL condition of ``flt`` (checked already) over ``layout``; ``true`` for no filter."""
    if not flt:
        return TRUE
    parts: list[sql.Composable] = []
    for key, value in flt.items():
        if key == "$and":
            parts.append(_join([where(layout, p, alias) for p in value], "AND"))
        elif key == "$or":
            parts.append(_join([where(layout, p, alias) for p in value], "OR"))
        else:
            cond = value if isinstance(value, Mapping) else {"$eq": value}
            field = field_value(layout, key, alias)
            parts.extend(_condition(field, op, arg) for op, arg in cond.items())
    return _join(parts, "AND")


def _join(parts: list[sql.Composable], how: str) -> sql.Composable:
    if not parts:
        return TRUE
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("(") + sql.SQL(f" {how} ").join(parts) + sql.SQL(")")


def _sure(pred: sql.Composable) -> sql.Composable:
    """True or false, never NULL."""
    return sql.SQL("coalesce(({}), false)").format(pred)


def _condition(v: Value, op: str, arg: Any) -> sql.Composable:
    if op == "$exists":
        return _present(v) if arg else sql.SQL("(NOT {})").format(_present(v))
    if op in ("$eq", "$in"):
        return _member(v, [arg] if op == "$eq" else list(arg))
    if op in ("$ne", "$nin"):
        return sql.SQL("(NOT {})").format(_member(v, [arg] if op == "$ne" else list(arg)))
    return _order(v, _SQL_OP[op], arg)


def _present(v: Value) -> sql.Composable:
    if v.kind == "absent":
        return FALSE
    if v.kind == "json":
        return _sure(sql.SQL("{0} IS NOT NULL AND jsonb_typeof({0}) <> 'null'").format(v.expr))
    return _sure(sql.SQL("{} IS NOT NULL").format(v.expr))


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _member(v: Value, options: list[Any]) -> sql.Composable:
    """``present and _member(value, options)`` of :mod:`vecmig.filters` (``$eq`` and ``$in``)."""
    strings = [o for o in options if isinstance(o, str)]
    bools = [o for o in options if isinstance(o, bool)]
    numbers = [o for o in options if _is_number(o)]
    if v.kind == "int":
        return _any([_exact(v.expr, "=", n) for n in numbers])
    if v.kind == "float":
        return _any([_float(v.expr, "=", n) for n in numbers])
    if v.kind == "bool":
        return _in(v.expr, [sql.Literal(b) for b in dict.fromkeys(bools)])
    if v.kind == "text":
        return _in(sql.SQL('{} COLLATE "C"').format(v.expr), [sql.Literal(s) for s in dict.fromkeys(strings)])
    if v.kind == "text[]":
        if not strings:
            return FALSE
        items = sql.SQL(", ").join(sql.Literal(s) for s in dict.fromkeys(strings))
        return _sure(sql.SQL("{} && ARRAY[{}]::text[]").format(v.expr, items))
    if v.kind == "json":
        return _sure(sql.SQL(
            "CASE WHEN jsonb_typeof({0}) = 'array' THEN EXISTS ("
            "WITH RECURSIVE _e(x) AS (SELECT {0} UNION ALL SELECT c.x FROM _e, jsonb_array_elements("
            "CASE WHEN jsonb_typeof(_e.x) = 'array' THEN _e.x ELSE '[]'::jsonb END) AS c(x)) "
            "SELECT 1 FROM _e WHERE {1}) ELSE {2} END").format(
                v.expr, _json_leaf(sql.SQL("_e.x"), strings, bools, numbers),
                _json_leaf(v.expr, strings, bools, numbers)))
    return FALSE


def _json_leaf(x: sql.Composable, strings: list[str], bools: list[bool], numbers: list[int | float]) \
        -> sql.Composable:
    """A jsonb scalar equal to one of the options (jsonb equality is typed: "5" is not 5)."""
    parts: list[sql.Composable] = []
    same = [sql.SQL("to_jsonb(CAST({} AS text))").format(sql.Literal(s)) for s in dict.fromkeys(strings)]
    same += [sql.SQL("CAST({} AS jsonb)").format(sql.Literal("true" if b else "false")) for b in dict.fromkeys(bools)]
    if same:
        parts.append(_in(x, same))
    if numbers:
        parts.append(_json_number(x, "=", numbers))
    return _any(parts)


def _order(v: Value, op: str, arg: Any) -> sql.Composable:
    """``$gt``... : present, not a list, the same kind, and ordered so."""
    if isinstance(arg, bool):
        return FALSE
    if v.kind == "int" and _is_number(arg):
        return _exact(v.expr, op, arg)
    if v.kind == "float" and _is_number(arg):
        return _float(v.expr, op, arg)
    if v.kind == "text" and isinstance(arg, str):
        return _sure(sql.SQL('{} COLLATE "C" ' + op + " {}").format(v.expr, sql.Literal(arg)))
    if v.kind == "json" and isinstance(arg, str):
        return _sure(sql.SQL("CASE WHEN jsonb_typeof({0}) = 'string' THEN ({0} #>> '{{}}') COLLATE \"C\" "
                             + op + " {1} ELSE false END").format(v.expr, sql.Literal(arg)))
    if v.kind == "json" and _is_number(arg):
        return _json_number(v.expr, op, [arg])
    return FALSE


def _json_number(x: sql.Composable, op: str, numbers: list[int | float]) -> sql.Composable:
    """A jsonb number compared as Python reads it: an int when written without a decimal point,
    else the float its text parses to (``numeric::float8`` parses the same text)."""
    n = sql.SQL("({}::numeric)").format(x)
    exact = _any([_exact(n, op, a) for a in numbers])
    # Python parses text beyond float8's range as ±inf or 0.0; PostgreSQL's cast raises instead.
    parsed = sql.SQL("(CASE WHEN abs({0}) >= {1} THEN CASE WHEN {0} > 0 THEN CAST('Infinity' AS float8) "
                     "ELSE CAST('-Infinity' AS float8) END WHEN abs({0}) <= {2} THEN CAST(0 AS float8) "
                     "ELSE {0}::float8 END)").format(n, _OVERFLOW, _UNDERFLOW)
    near = _any([_float(parsed, op, a) for a in numbers])
    return _sure(sql.SQL("CASE WHEN jsonb_typeof({0}) <> 'number' THEN false WHEN scale({1}) = 0 THEN {2} "
                         "ELSE {3} END").format(x, n, exact, near))


def _exact(n: sql.Composable, op: str, arg: int | float) -> sql.Composable:
    """An exact number (a Python int) against ``arg``: both as ``numeric``, no rounding."""
    if isinstance(arg, float):
        if math.isnan(arg):
            return FALSE
        if math.isinf(arg):  # an int is below +inf and above -inf
            below = arg > 0
            return _sure(sql.SQL("{} IS NOT NULL").format(n)) if (op in ("<", "<=")) == below and op != "=" \
                else FALSE
    literal = sql.SQL("CAST({} AS numeric)").format(sql.Literal(str(Decimal(arg))))
    return _sure(sql.SQL("{} " + op + " {}").format(n, literal))


def _float_literal(x: float) -> sql.Composable:
    text = "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else repr(x)
    return sql.SQL("CAST({} AS float8)").format(sql.Literal(text))


def _float(f: sql.Composable, op: str, arg: int | float) -> sql.Composable:
    """A float8 value (a Python float) against ``arg`` with Python's exact int/float comparison."""
    if isinstance(arg, float) and math.isnan(arg):
        return FALSE
    not_nan = sql.SQL("{} <> CAST('NaN' AS float8)").format(f)
    if isinstance(arg, float):
        return _sure(sql.SQL("{} AND {} " + op + " {}").format(not_nan, f, _float_literal(arg)))
    around = bracket(arg)
    if isinstance(around, float):
        return _sure(sql.SQL("{} AND {} " + op + " {}").format(not_nan, f, _float_literal(around)))
    below, above = around  # no float equals n: the comparison is one against its neighbours
    if op == "=":
        return FALSE
    if op in (">", ">="):
        return _sure(sql.SQL("{} AND {} >= {}").format(not_nan, f, _float_literal(above)))
    return _sure(sql.SQL("{} AND {} <= {}").format(not_nan, f, _float_literal(below)))


def _in(x: sql.Composable, items: Sequence[sql.Composable]) -> sql.Composable:
    if not items:
        return FALSE
    return _sure(sql.SQL("{} IN ({})").format(x, sql.SQL(", ").join(items)))


def _any(parts: list[sql.Composable]) -> sql.Composable:
    real = [p for p in parts if p is not FALSE]
    if not real:
        return FALSE
    return real[0] if len(real) == 1 else sql.SQL("(") + sql.SQL(" OR ").join(real) + sql.SQL(")")
