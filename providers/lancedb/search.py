"""LanceDB's own search: ``table.search(q).distance_type(...).where(filter, prefilter=True).limit(k)``.

The query is what a reader writes, with LanceDB's defaults for the query-time knobs (nprobes,
refine_factor, ef) unless vecmig recorded ``ef``/``nprobes`` with an index it built
(``indexsettings``, the source's settings carried over): its vector index when the table has
one (IVF_HNSW_SQ / IVF_FLAT), else an exhaustive scan, which is exact. ``_distance`` becomes a
:mod:`vecmig.search` similarity:
LanceDB's ``l2`` is the *squared* distance (similarity ``-sqrt(d)``), ``cosine`` is ``1 - cos``
and ``dot`` is ``1 - x·q`` (both: similarity ``1 - d``); measured on lancedb 0.40.

Filters over typed columns (int, float64, bool, string) become a SQL ``where`` with literals
quoted here (strings single-quoted, quotes doubled; ints in int64 range; floats by their exact
shortest text), written so that they hold for the records :func:`vecmig.filters.matches`
passes: a NULL is absent, NaN fails every comparison, an int column compared with a fraction
compares with its floor, a float column with an int float64 cannot hold by the floats around
it. What SQL here cannot say with those semantics (a JSON document column, a list column's
nested values, a float32 column, an infinite argument) is evaluated by ``matches`` over the
table's metadata columns and passed to the same search as an id prefilter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from vecmig.errors import TerminalError
from vecmig.filters import Filter, matches
from vecmig.providers.files.parquet import Layout
from vecmig.providers.floatcmp import bracket
from vecmig.providers.lancedb import indexing, indexsettings
from vecmig.providers.lancedb.errors import classify, in_list, literal, quote_column
from vecmig.search import Hit
from vecmig.spec import StoreSpec

_INT64 = (-(2**63), 2**63 - 1)
_METRIC = b"vecmig.metric"  # the schema mark of a table vecmig created (provider.py)
_SQL_OP = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class Untranslatable(Exception):
    """The filter needs :func:`matches` itself (see the module's docstring)."""


def similarity(distance_type: str, d: float) -> float:
    if distance_type == "l2":
        return -math.sqrt(max(d, 0.0))
    return 1.0 - d  # cosine: 1 - cos; dot: 1 - x·q


def column_kind(layout: Layout, name: str) -> str:
    if layout.meta_mode != "typed":
        raise Untranslatable(name)
    if name not in layout.meta_columns:
        return "absent"
    if name in layout.json_columns:
        raise Untranslatable(name)
    t = layout.schema.field(name).type
    if pa.types.is_signed_integer(t) or t in (pa.uint8(), pa.uint16(), pa.uint32()):
        return "int"
    if pa.types.is_float64(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    raise Untranslatable(name)


def where(layout: Layout, flt: Filter) -> str:
    parts: list[str] = []
    for key, value in flt.items():
        if key in ("$and", "$or"):
            parts.append("(" + f" {key[1:].upper()} ".join(where(layout, p) for p in value) + ")")
            continue
        cond = value if isinstance(value, Mapping) else {"$eq": value}
        kind = column_kind(layout, key)
        col = quote_column(key)
        parts.extend(_condition(kind, col, op, arg) for op, arg in cond.items())
    return " AND ".join(parts) if parts else "true"


def _sure(pred: str) -> str:
    return f"coalesce(({pred}), false)"


def _condition(kind: str, col: str, op: str, arg: Any) -> str:
    present = "false" if kind == "absent" else f"({col} IS NOT NULL)"
    if op == "$exists":
        return present if arg else f"(NOT {present})"
    if op in ("$eq", "$in"):
        return _member(kind, col, [arg] if op == "$eq" else list(arg))
    if op in ("$ne", "$nin"):
        return f"(NOT {_member(kind, col, [arg] if op == '$ne' else list(arg))})"
    return _order(kind, col, _SQL_OP[op], arg, present)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _float_text(x: float) -> str:
    if not math.isfinite(x):
        raise Untranslatable(repr(x))
    return repr(x)


def _member(kind: str, col: str, options: list[Any]) -> str:
    items: list[str] = []
    if kind == "int":
        for o in options:
            if _number(o) and (isinstance(o, int) or (math.isfinite(o) and o.is_integer())) \
                    and _INT64[0] <= int(o) <= _INT64[1]:
                items.append(literal(int(o)))
        guard = ""
    elif kind == "float":
        for o in options:
            if not _number(o) or (isinstance(o, float) and math.isnan(o)):
                continue
            near = bracket(o) if isinstance(o, int) else o
            if isinstance(near, float):
                items.append(_float_text(near))
        guard = f" AND NOT isnan({col})"
    elif kind == "bool":
        items = [("true" if o else "false") for o in dict.fromkeys(o for o in options if isinstance(o, bool))]
        guard = ""
    elif kind == "text":
        items = [literal(o) for o in dict.fromkeys(o for o in options if isinstance(o, str))]
        guard = ""
    else:
        return "false"
    if not items:
        return "false"
    return _sure(f"{col} IS NOT NULL{guard} AND {col} IN ({', '.join(dict.fromkeys(items))})")


def _order(kind: str, col: str, op: str, arg: Any, present: str) -> str:
    if kind == "text" and isinstance(arg, str):
        return _sure(f"{col} IS NOT NULL AND {col} {op} {literal(arg)}")
    if not _number(arg) or kind not in ("int", "float"):
        return "false"
    if isinstance(arg, float) and math.isnan(arg):
        return "false"
    upward = op in (">", ">=")
    if kind == "int":
        if isinstance(arg, float):
            if math.isinf(arg):
                return present if upward == (arg < 0) else "false"
            if not arg.is_integer():  # x > 2.5 is x > 2; x < 2.5 is x <= 2
                arg, op = math.floor(arg), (">" if upward else "<=")
            arg = int(arg)
        if arg > _INT64[1]:
            return "false" if upward else present
        if arg < _INT64[0]:
            return present if upward else "false"
        return _sure(f"{col} IS NOT NULL AND {col} {op} {literal(arg)}")
    not_nan = f"{col} IS NOT NULL AND NOT isnan({col})"
    if isinstance(arg, float):
        return _sure(f"{not_nan} AND {col} {op} {_float_text(arg)}")
    near = bracket(arg)
    if isinstance(near, float):
        return _sure(f"{not_nan} AND {col} {op} {_float_text(near)}")
    below, above = near
    return _sure(f"{not_nan} AND {col} >= {_float_text(above)}") if upward \
        else _sure(f"{not_nan} AND {col} <= {_float_text(below)}")


def matching_ids(table: Any, layout: Layout, flt: Filter) -> list[Any]:
    """The ids whose metadata :func:`matches` ``flt``: read from the id and metadata columns."""
    ids: list[Any] = []
    data = table.search().select([layout.id, *layout.meta_columns]).limit(None).to_arrow()
    for rb in data.to_batches():
        for rid, meta in zip(rb.column(layout.id).to_pylist(), layout.metadata(rb, 0), strict=True):
            if matches(meta, flt):
                ids.append(rid)
    return ids


def knobs(table: Any, layout: Layout, index: dict[str, Any] | None) -> dict[str, int]:
    """The query-time setting vecmig recorded with the index it built (``indexsettings``):
    ``{"ef": n}`` or ``{"nprobes": n}``; {} where it recorded none (LanceDB's defaults)."""
    if index is None:
        return {}
    kept = indexsettings.recorded(table, layout.vector)
    if kept.get("type") != index.get("type"):
        return {}
    if kept["type"] == "hnsw" and isinstance(kept.get("ef_search"), int):
        return {"ef": int(kept["ef_search"])}
    if kept["type"] == "ivfflat" and isinstance(kept.get("probes"), int):
        return {"nprobes": int(kept["probes"])}
    return {}


def run(table: Any, layout: Layout, distance_type: str, vector: np.ndarray, k: int, condition: str | None,
        settings: dict[str, int] | None = None) -> list[Hit]:
    q = np.asarray(vector, dtype=np.float32).reshape(-1)
    query = (table.search(q, vector_column_name=layout.vector).distance_type(distance_type)
             .select([layout.id, "_distance"]).limit(k))
    for knob, value in (settings or {}).items():  # .ef(n) / .nprobes(n)
        query = getattr(query, knob)(value)
    if condition is not None:
        query = query.where(condition, prefilter=True)
    result = query.to_arrow()
    return [Hit(rid, similarity(distance_type, float(d)))
            for rid, d in zip(result.column(layout.id).to_pylist(), result.column("_distance").to_pylist(),
                              strict=True)]


def metric_of(table: Any, layout: Layout, store: StoreSpec, what: str) -> tuple[str, dict[str, Any] | None]:
    """The metric queries use, and the vector index: the index's distance type, else the one
    vecmig marked the table with, else ``connection.metric``; a clash, or none, is refused."""
    index = next((i for i in table.list_indices() if layout.vector in list(i.columns)), None)
    meta = table.schema.metadata or {}
    recorded = (indexing.index_metric(table, index.name) if index is not None else None) or (
        meta[_METRIC].decode() if _METRIC in meta else None)
    declared = store.connection.get("metric")
    at = f"{store.pointer}/connection/metric" if store.pointer else None
    if recorded and declared and recorded != declared:
        raise TerminalError(f"LanceDB table '{what}' is searched by {recorded}, but connection.metric says "
                            f"{declared}", where=at, hint=f"remove connection.metric, or set it to {recorded}")
    metric = recorded or declared
    if metric not in indexing.DISTANCE:
        role = store.pointer[1:] or "source"
        raise TerminalError(f"LanceDB table '{what}' records no metric and has no vector index, so which distance "
                            "its readers search by is unknown", where=at,
                            hint=f"declare it: {role}.connection.metric: cosine (or euclidean, dotproduct)")
    info = None if index is None else {"name": index.name, "type": indexing.spec_type(str(index.index_type))}
    return str(metric), info


def query(table: Any, layout: Layout, store: StoreSpec, what: str, vector: np.ndarray, k: int,
          flt: Filter | None) -> list[Hit]:
    if k <= 0:
        return []
    metric, index = metric_of(table, layout, store, what)
    try:
        condition: str | None = None
        if flt:
            try:
                condition = where(layout, flt)
            except Untranslatable:
                ids = matching_ids(table, layout, flt)
                if not ids:
                    return []
                condition = in_list(layout.id, ids)
        return run(table, layout, indexing.distance(metric), vector, k, condition, knobs(table, layout, index))
    except TerminalError:
        raise
    except Exception as exc:  # the core's errors carry no common base
        raise classify(exc, doing="searching it", table=str(store.collection)) from None


def settings(table: Any, layout: Layout, store: StoreSpec, what: str) -> dict[str, Any]:
    """One flat mapping in the store-neutral words of the query-parity report: ``type`` (hnsw,
    ivfflat, none), ``name``, ``metric``, the rows the index covers, and the query-time knobs,
    which LanceDB does not store: None means its default, as readers who set none get it."""
    metric, index = metric_of(table, layout, store, what)
    out: dict[str, Any] = {"type": "none", "metric": metric}
    if index is not None:
        out.update(index)
        stats = table.index_stats(index["name"])
        for key in ("num_indexed_rows", "num_unindexed_rows"):
            if getattr(stats, key, None) is not None:
                out[key] = int(getattr(stats, key))
    return {**out, "nprobes": None, "refine_factor": None, "ef": None, **knobs(table, layout, index)}
