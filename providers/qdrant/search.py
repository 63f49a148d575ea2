"""Search: ``query_points`` with vecmig's filters built as Qdrant ``Filter`` objects.

How each condition is put, so that Qdrant's answer is :func:`vecmig.filters.matches`'s:

* equality and membership of numbers go through ``Range(gte=x, lte=x)``: ``MatchValue`` of
  an int skips a float payload (1.0), and there is no float ``MatchValue``; strings and
  booleans use ``MatchValue``/``MatchAny`` (a list payload matches when an element does, as
  in vecmig);
* ``$ne``/``$nin`` are ``must_not`` of the equality: a point without the field, or with null,
  passes, as vecmig has it (``MatchExcept`` would not say that);
* ``$exists: false`` is ``IsEmpty`` (missing, null or ``[]``); ``$exists: true`` is sent as no
  condition at all, since ``not IsEmpty`` would drop ``[]``, which vecmig counts as present;
* ranges compare numbers only (a string bound is refused by operator), and a list payload
  is in range when an element is, where vecmig's ranges never match a list;
* so what Qdrant is sent matches a SUPERSET of the filter's records: every hit is checked with
  :func:`vecmig.filters.matches` on the payload keys the filter reads, and when one is dropped
  from a full page the search is asked again for twice as many, until ``k`` pass or Qdrant has
  no more. The answer is exactly the filter's top k;
* keys are payload paths to Qdrant, so a field name with ``.`` or ``[`` is refused, as are the
  text key and the key that holds mapped ids.

Scores: Cosine and Dot are similarities; Euclid is the plain L2 distance, lower is closer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from qdrant_client import models

from vecmig.errors import TerminalError
from vecmig.filters import Filter, conditions, fields, matches
from vecmig.providers.qdrant import ids
from vecmig.search import Hit

Built = models.Filter | bool  # True: no condition; False: matches nothing
Condition = Any  # the union qdrant-client accepts in must/should/must_not


def to_similarity(metric: str, score: float) -> float:
    if metric == "euclidean":
        return -float(score)
    if metric in ("cosine", "dotproduct"):
        return float(score)
    raise TerminalError(f"vecmig cannot compare {metric} scores", hint="search a cosine, dot or euclid collection")


def _f(must: list[Condition] | None = None, should: list[Condition] | None = None,
       must_not: list[Condition] | None = None) -> models.Filter:
    return models.Filter(must=must, should=should, must_not=must_not)


def _all(parts: list[Built]) -> Built:
    if any(p is False for p in parts):
        return False
    kept = [p for p in parts if p is not True]
    return True if not kept else kept[0] if len(kept) == 1 else _f(must=kept)


def _any(parts: list[Built]) -> Built:
    if any(p is True for p in parts):
        return True
    kept = [p for p in parts if p is not False]
    return False if not kept else kept[0] if len(kept) == 1 else _f(should=kept)


def _not(part: Built) -> Built:
    return not part if isinstance(part, bool) else _f(must_not=[part])


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _in(key: str, values: list[Any]) -> Built:
    """``key`` equal to (a list: holding) one of ``values``."""
    parts: list[Built] = []
    strings = [v for v in values if isinstance(v, str)]
    if len(strings) == 1:
        parts.append(_f(must=[models.FieldCondition(key=key, match=models.MatchValue(value=strings[0]))]))
    elif strings:
        parts.append(_f(must=[models.FieldCondition(key=key, match=models.MatchAny(any=strings))]))
    for v in values:
        if isinstance(v, bool):
            parts.append(_f(must=[models.FieldCondition(key=key, match=models.MatchValue(value=v))]))
        elif _number(v):
            if not math.isfinite(v):
                continue  # vecmig's JSON has no NaN/Infinity: nothing equals one
            parts.append(_f(must=[models.FieldCondition(key=key, range=models.Range(gte=v, lte=v))]))
    return _any(parts)


def _condition(key: str, op: str, arg: Any) -> Built:
    if op == "$eq":
        return _in(key, [arg])
    if op == "$ne":
        return _not(_in(key, [arg]))
    if op == "$in":
        return _in(key, list(arg))
    if op == "$nin":
        return _not(_in(key, list(arg)))
    if op == "$exists":
        if arg:
            return True  # checked on every hit (see the module's docs)
        return _f(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=key))])
    if not _number(arg):
        raise TerminalError(f"Qdrant cannot filter '{key}' with {op} on {arg!r}: its ranges compare numbers only",
                            hint="use $eq/$in for strings, or store the field as a number")
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[op]
    return _f(must=[models.FieldCondition(key=key, range=models.Range(**{bound: arg}))])


def _check_key(key: str, reserved: tuple[str, ...]) -> None:
    if any(c in key for c in ".[]"):
        raise TerminalError(f"cannot filter Qdrant queries on '{key}': Qdrant reads '.' and '[]' in a key as a "
                            "path into nested payload", hint="rename the field (mapping.rename) to a plain name")
    if key in reserved:
        raise TerminalError(f"cannot filter Qdrant queries on '{key}': that payload key holds the record's "
                            "text or original id, not metadata", hint="filter on a metadata field")


def build(flt: Filter, reserved: tuple[str, ...] = ()) -> Built:
    """``flt`` (checked already) as a Qdrant ``Filter``, True (no filter) or False (nothing)."""
    parts: list[Built] = []
    for key, value in flt.items():
        if key == "$and":
            parts.append(_all([build(p, reserved) for p in value]))
        elif key == "$or":
            parts.append(_any([build(p, reserved) for p in value]))
        else:
            _check_key(key, reserved)
            parts.extend(_condition(key, op, arg) for op, arg in conditions({key: value})[key].items())
    return _all(parts)


def settings(info: models.CollectionInfo, metric: str) -> dict[str, Any]:
    """The collection's HNSW graph and the ef its searches use (Qdrant's default: ef_construct)."""
    hnsw = info.config.hnsw_config
    return {"index_type": "hnsw", "metric": metric, "m": hnsw.m, "ef_construct": hnsw.ef_construct,
            "ef_search": hnsw.ef_construct, "full_scan_threshold": hnsw.full_scan_threshold,
            "indexed_vectors": info.indexed_vectors_count, "points": info.points_count}


def query(call: Any, collection: str, using: str | None, vector: Any, k: int, flt: Filter | None,
          metric: str, text_key: str) -> list[Hit]:
    """The ``k`` nearest points, ids mapped back as scan maps them (``ids.record_id``).
    ``call(doing, fn)`` is the provider's retried request."""
    built = build(flt, (text_key, ids.ID_KEY)) if flt else True
    if k <= 0 or built is False:
        return []
    values = [float(x) for x in np.asarray(vector, dtype=np.float32).reshape(-1)]
    keys = [ids.ID_KEY, *sorted(fields(flt))] if flt else [ids.ID_KEY]
    limit = k
    while True:
        response = call(f"querying collection '{collection}'", lambda c, limit=limit: c.query_points(
            collection, query=values, using=using, query_filter=None if built is True else built, limit=limit,
            with_payload=keys, with_vectors=False))
        hits: list[Hit] = []
        for p in response.points:
            payload = dict(p.payload or {})
            rid = ids.record_id(p.id, payload, collection)  # takes the mapped id out of the payload
            if matches(payload, flt):
                hits.append(Hit(rid, to_similarity(metric, p.score)))
        if len(hits) >= k or len(response.points) < limit:
            return hits[:k]
        limit *= 2
