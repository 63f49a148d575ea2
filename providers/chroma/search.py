"""Search: ``collection.query`` with vecmig's filters translated to Chroma's ``where``.

Chroma's where language looks like vecmig's but reads differently in places, each measured
against chromadb 1.5.9's server (``tests/test_chroma_search.py`` checks the translation on
random metadata and filters against :func:`vecmig.filters.matches`):

* one key per object and one operator per condition; ``$and``/``$or`` need two parts or more;
  ``$in``/``$nin`` need a non-empty list of one type;
* a list field never equals a value (``$eq``/``$in`` skip it, ``$ne``/``$nin`` keep it): list
  elements are reached with ``$contains``/``$not_contains``, which match an int element only
  with an int and a float element only with a float;
* an int field is compared with a float bound cut to an integer (``n >= 1.5`` holds for 1):
  a bound with a fraction is exact only inside the open interval between its integers, which
  holds no int, so the translation splits there;
* range operators take numbers only; there is no ``$exists``. What it cannot say is refused
  naming the operator, never filtered otherwise.

Distances: cosine = 1 - similarity, l2 = SQUARED distance, ip = 1 - dot product.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import Filter, conditions
from vecmig.providers.chroma import codec
from vecmig.search import Hit

# A translated filter: a Chroma where clause, or True/False for one that holds always/never.
Where = dict[str, Any] | bool
I64 = 2**63


def to_similarity(space: str, distance: float) -> float:
    if space == "l2":
        return -math.sqrt(max(float(distance), 0.0))
    return 1.0 - float(distance)  # cosine and ip


def _all(parts: list[Where]) -> Where:
    if any(p is False for p in parts):
        return False
    kept = [p for p in parts if p is not True]
    return True if not kept else kept[0] if len(kept) == 1 else {"$and": kept}


def _any(parts: list[Where]) -> Where:
    if any(p is True for p in parts):
        return True
    kept = [p for p in parts if p is not False]
    return False if not kept else kept[0] if len(kept) == 1 else {"$or": kept}


def _integral(x: float | int) -> bool:
    return isinstance(x, int) or (math.isfinite(x) and x == int(x))


def _forms(x: Any) -> list[Any]:
    """The values a list element equal to ``x`` may be stored as (``$contains`` is typed)."""
    if isinstance(x, (bool, str)):
        return [x]
    if _integral(x) and abs(x) < I64:
        return [int(x), float(x)]
    return [float(x)]


def _eq(name: str, x: Any) -> Where:
    if isinstance(x, float) and not _integral(x):
        lo, hi = math.floor(x), math.ceil(x)  # no int lies strictly between: compared exactly there
        scalar: Where = {"$and": [{name: {"$eq": x}}, {name: {"$gt": lo}}, {name: {"$lt": hi}}]}
    else:
        scalar = {name: {"$eq": x}}
    return _any([scalar, *({name: {"$contains": f}} for f in _forms(x))])


def _ne(name: str, x: Any) -> Where:
    if isinstance(x, float) and not _integral(x):
        # $ne 1.5 also drops the int 1 (cut bound): add it back.
        scalar: Where = {"$or": [{name: {"$ne": x}}, {name: {"$eq": int(x)}}]}
    else:
        scalar = {name: {"$ne": x}}
    return _all([scalar, *({name: {"$not_contains": f}} for f in _forms(x))])


def _range(name: str, op: str, x: Any) -> Where:
    if isinstance(x, str | bool):
        raise TerminalError(f"Chroma cannot filter '{name}' with {op} on {x!r}: its range operators compare "
                            "numbers only", hint="use $eq/$in for strings, or store the field as a number")
    if _integral(x):
        return {name: {op: x}}
    lo, hi = math.floor(x), math.ceil(x)
    outside = {name: {"$gte": hi}} if op in ("$gt", "$gte") else {name: {"$lte": lo}}
    inside = {"$and": [{name: {op: x}}, {name: {"$gt": lo}}, {name: {"$lt": hi}}]}
    return {"$or": [outside, inside]}


def _condition(name: str, op: str, arg: Any) -> Where:
    if op == "$eq":
        return _eq(name, arg)
    if op == "$ne":
        return _ne(name, arg)
    if op == "$in":
        return _any([_eq(name, x) for x in arg])
    if op == "$nin":
        return _all([_ne(name, x) for x in arg])
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _range(name, op, arg)
    raise TerminalError(f"Chroma cannot filter '{name}' with {op}: its where language has no such operator",
                        hint="leave the condition out of the filter, or validate against a store that has it")


def where(flt: Filter) -> Where:
    """``flt`` (checked already) as a Chroma where clause, True (no filter) or False (nothing)."""
    parts: list[Where] = []
    for key, value in flt.items():
        if key == "$and":
            parts.append(_all([where(p) for p in value]))
        elif key == "$or":
            parts.append(_any([where(p) for p in value]))
        else:
            parts.extend(_condition(key, op, arg) for op, arg in conditions({key: value})[key].items())
    return _all(parts)


def query(coll: Any, call: Callable[[str, Callable[[], Any]], Any], vector: np.ndarray, k: int,
          flt: Filter | None, space: str, id_type: str | None) -> list[Hit]:
    """The ``k`` nearest records of ``coll`` (its HNSW index, as Chroma's readers search it)."""
    clause = where(flt) if flt else True
    if k <= 0 or clause is False:
        return []
    # n_results above the collection's count is answered with every record (chromadb 1.5)
    args: dict[str, Any] = {"query_embeddings": [np.asarray(vector, dtype=np.float32).reshape(-1).tolist()],
                            "n_results": k, "include": ["distances"]}
    if clause is not True:
        args["where"] = clause
    got = call("querying", lambda: coll.query(**args))
    ids, distances = got["ids"][0], got["distances"][0]
    return [Hit(codec.read_id(str(i), id_type), to_similarity(space, d)) for i, d in zip(ids, distances, strict=True)]


def settings(coll: Any) -> dict[str, Any]:
    """The collection's HNSW configuration: what its search answers with."""
    config = getattr(coll, "configuration_json", None) or {}
    hnsw = config.get("hnsw") or {}
    if hnsw:
        return {"index_type": "hnsw", "space": hnsw.get("space"), "ef_search": hnsw.get("ef_search"),
                "ef_construction": hnsw.get("ef_construction"), "m": hnsw.get("max_neighbors")}
    spann = config.get("spann") or {}
    return {"index_type": "spann", **{k: v for k, v in spann.items() if v is not None}} if spann else {}
