"""Search: ``client.search`` over the configured partition(s), with vecmig's filters as a Milvus
boolean expression over where the collection keeps metadata (the JSON field ``metadata``, or
dynamic fields: :mod:`layout`).

Milvus' expressions read a JSON key unlike vecmig in places (measured on Milvus Lite 3.2):
a missing key makes a comparison null, and ``not`` of null is still not true, so ``$ne`` is
``not exists k or not (...)``; a list never equals a value, its elements are reached with
``json_contains_any``; and booleans compare as the numbers 0 and 1 (``k == 1`` holds for ``true``,
``k >= 1`` too, ``k != 1`` drops ``true``). So the expression is built to match a SUPERSET of
what the filter matches (a ``$ne``/``$nin`` of 0, 1, true or false is left to the check below),
and every hit is checked with :func:`vecmig.filters.matches` on its metadata: when a hit is
dropped and the page was full, the search is asked again for twice as many, until ``k`` hits
pass or the store has no more. The answer is then exactly the filter's top k.

Scores: L2 is the SQUARED distance (converted to the negated plain one); IP and COSINE are
similarities. Query-time settings are Milvus' defaults, as a reader who sets none gets them:
HNSW searches with ``ef`` = the limit, IVF with ``nprobe`` 8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import Filter, conditions, matches
from vecmig.providers.milvus import layout as lay
from vecmig.search import Hit

MAX_LIMIT = 16_384  # Milvus' largest topk
DEFAULT_NPROBE = 8  # IVF's nprobe when a search names none
Expr = str | bool  # True: no condition; False: nothing matches


def to_similarity(metric: str, distance: float) -> float:
    return -math.sqrt(max(float(distance), 0.0)) if metric == "euclidean" else float(distance)


def _value(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return repr(x).replace("e+", "e")
    return lay.literal(str(x), False)


def _all(parts: list[Expr]) -> Expr:
    if any(p is False for p in parts):
        return False
    kept = [p for p in parts if p is not True]
    return True if not kept else kept[0] if len(kept) == 1 else "(" + " and ".join(map(str, kept)) + ")"


def _any(parts: list[Expr]) -> Expr:
    if any(p is True for p in parts):
        return True
    kept = [p for p in parts if p is not False]
    return False if not kept else kept[0] if len(kept) == 1 else "(" + " or ".join(map(str, kept)) + ")"


def _forms(x: Any) -> list[Any]:
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**63:
        return [x, int(x)]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) < 2**53:
        return [x, float(x)]
    return [x]


def _eq(ref: str, x: Any) -> Expr:
    # json_contains takes no negative literal (Milvus Lite 3.2's parser); json_contains_any's list does
    elements = ", ".join(_value(f) for f in _forms(x))
    return f"({ref} == {_value(x)} or json_contains_any({ref}, [{elements}]))"


def _ne(ref: str, x: Any) -> Expr:
    if isinstance(x, bool) or (isinstance(x, int | float) and x in (0, 1)):
        return True  # booleans and 0/1 are one to Milvus: left to the check of every hit
    return f"(not exists {ref} or not {_eq(ref, x)})"


def _condition(ref: str, op: str, arg: Any) -> Expr:
    if op == "$eq":
        return _eq(ref, arg)
    if op == "$ne":
        return _ne(ref, arg)
    if op == "$in":
        return _any([_eq(ref, x) for x in arg])
    if op == "$nin":
        return _all([_ne(ref, x) for x in arg])
    if op == "$exists":
        return f"exists {ref}" if arg else f"not exists {ref}"
    sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    return f"{ref} {sign} {_value(arg)}"


def reference(layout: lay.Layout, key: str) -> str:
    """Where metadata key ``key`` lives: a key of the JSON field, else a dynamic field."""
    if key in layout.scalars or key in (layout.pk, layout.vector, layout.text):
        raise TerminalError(f"cannot filter Milvus queries on '{key}': it is a field of its own in this collection, "
                            "which vecmig's search filters do not address yet",
                            hint="filter on keys of the JSON field 'metadata'")
    if layout.metadata is not None and layout.dynamic:
        raise TerminalError(f"cannot filter on '{key}': this collection keeps metadata both in the JSON field "
                            f"'{layout.metadata}' and in dynamic fields, so the key has two places",
                            hint="filter a collection that keeps metadata in one of them")
    quoted = lay.literal(key, False)
    if layout.metadata is not None:
        return f"{layout.metadata}[{quoted}]"
    if layout.dynamic:
        return f"$meta[{quoted}]"
    raise TerminalError(f"cannot filter on '{key}': the collection has no JSON field 'metadata' and no dynamic fields",
                        hint="leave the filter out")


def expression(flt: Filter, layout: lay.Layout) -> Expr:
    """A Milvus expression matching at least what ``flt`` matches (see the module's docs)."""
    parts: list[Expr] = []
    for key, value in flt.items():
        if key == "$and":
            parts.append(_all([expression(p, layout) for p in value]))
        elif key == "$or":
            parts.append(_any([expression(p, layout) for p in value]))
        else:
            ref = reference(layout, key)
            parts.extend(_condition(ref, op, arg) for op, arg in conditions({key: value})[key].items())
    return _all(parts)


def _metadata(layout: lay.Layout, entity: dict[str, Any]) -> dict[str, Any]:
    meta = dict(entity.get(layout.metadata) or {}) if layout.metadata else {}
    meta.update({k: v for k, v in entity.items() if k not in (layout.pk, layout.metadata, "$meta")})
    return meta


def search(run: Callable[[int, Expr, list[str]], list[dict[str, Any]]], layout: lay.Layout, k: int,
           flt: Filter | None, metric: str) -> list[Hit]:
    """``run(limit, expression, output_fields)`` is one retried ``client.search``; see the
    module's docs for why a filtered search may ask more than once."""
    if k > MAX_LIMIT:
        raise TerminalError(f"Milvus answers at most {MAX_LIMIT} results per search, not k={k}",
                            hint=f"ask for k <= {MAX_LIMIT}")
    expr = expression(flt, layout) if flt else True
    if k <= 0 or expr is False:
        return []
    if not flt:
        return [Hit(h["id"], to_similarity(metric, h["distance"])) for h in run(k, True, [])]
    fields = [f for f in (layout.metadata, *layout.scalars) if f] + (["$meta"] if layout.dynamic else [])
    limit = k
    while True:
        got = run(limit, expr, fields)
        hits = [Hit(h["id"], to_similarity(metric, h["distance"])) for h in got
                if matches(_metadata(layout, h.get("entity") or {}), flt)]
        if len(hits) >= k or len(got) < limit:  # k passed, or Milvus has no more
            return hits[:k]
        if limit >= MAX_LIMIT:
            raise TerminalError(f"Milvus' {MAX_LIMIT} results per search left fewer than k={k} records passing the "
                                "filter (some matched only as Milvus reads booleans and numbers)",
                                hint="ask for a smaller k, or filter without $ne/$nin of 0, 1, true or false")
        limit = min(2 * limit, MAX_LIMIT)


def search_params(index: dict[str, Any] | None, metric_type: str, limit: int = 0) -> dict[str, Any]:
    """What a search passes: the query-time setting vecmig recorded with the index
    (``ef_search``/``probes``, milvus.indexsettings) where it did, else Milvus' defaults; ``ef``
    is raised to the limit, which Milvus requires."""
    params: dict[str, Any] = {"metric_type": metric_type}
    if index and index.get("type") == "ivfflat":
        params["params"] = {"nprobe": int(index.get("probes") or DEFAULT_NPROBE)}
    elif index and index.get("type") == "hnsw" and isinstance(index.get("ef_search"), int):
        params["params"] = {"ef": max(int(index["ef_search"]), limit)}
    return params


def settings(index: dict[str, Any] | None, metric: str | None) -> dict[str, Any]:
    if index is None:
        return {"index_type": "none", "metric": metric}
    out: dict[str, Any] = {"index_type": index.get("type"), "metric": metric, **dict(index.get("params") or {})}
    if index.get("type") == "hnsw" and isinstance(index.get("ef_search"), int):
        out["ef_search"] = index["ef_search"]  # recorded by vecmig with the index: its searches pass it
    elif index.get("type") == "hnsw":
        out["ef_search"] = None  # Milvus' default: ef = the search's limit
        out["ef_search_default"] = "limit"
    elif index.get("type") == "ivfflat":
        out["nprobe"] = int(index.get("probes") or DEFAULT_NPROBE)
    return out


def query_vector(vector: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(vector, dtype=np.float32).reshape(-1)]
