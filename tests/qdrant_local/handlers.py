"""The REST endpoints of the local Qdrant server: request bodies in, ``result`` values out.

Bodies follow ``qdrant_client.http.models`` (CreateCollection, PointsList / PointsBatch,
ScrollRequest, PointRequest, PointIdsList, CountRequest, QueryRequest); defaults are
Qdrant's (scroll: limit 10, payload on, vectors off; query: limit 10, neither). What this
server does not implement (filters outside ``query``, order_by, sparse vector values) is refused with a 400 that says
so, never ignored: a test must not pass on a request the server half understood.

Vectors are written out as float32's shortest decimal, as Qdrant's serde_json does, so the
wire carries what the real server sends and a client must widen them itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.qdrant_local.filters import compile_filter
from tests.qdrant_local.store import UNNAMED, ApiError, Collection, PointKey, Store, as_f32, point_id, point_key

VERSION = "1.20.0"
Handler = Callable[[Store, list[str], dict[str, str], Any], Any]


class Raw(str):
    """A result already rendered as JSON (points with their vectors)."""


class Bare(dict[str, Any]):
    """An answer sent as it is, without the ``result`` envelope (``GET /``)."""


def _unsupported(body: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if body.get(key) is not None:
            raise ApiError(400, f"Wrong input: `{key}` is not served by this local Qdrant server")


def _vec_json(vec: np.ndarray) -> str:
    return "[" + ",".join(vec.astype(str).tolist()) + "]"


def _payload(payload: dict[str, Any], selector: Any) -> dict[str, Any] | None:
    if selector is False or selector is None:
        return None
    if selector is True:
        return payload
    if isinstance(selector, list):
        return {k: v for k, v in payload.items() if k in selector}
    if isinstance(selector, dict) and "include" in selector:
        return {k: v for k, v in payload.items() if k in selector["include"]}
    if isinstance(selector, dict) and "exclude" in selector:
        return {k: v for k, v in payload.items() if k not in selector["exclude"]}
    raise ApiError(400, "Format error in JSON body: with_payload must be a bool, a list of keys or include/exclude")


def _vectors(coll: Collection, key: PointKey, selector: Any) -> str | None:
    if selector is False or selector is None:
        return None
    vectors = coll.points[key].vectors
    names = list(vectors) if selector is True else [n for n in vectors if n in selector]
    if not coll.named:
        return _vec_json(vectors[UNNAMED]) if UNNAMED in names else None
    return "{" + ",".join(f"{json.dumps(n)}:{_vec_json(vectors[n])}" for n in names) + "}"


def render_point(coll: Collection, key: PointKey, with_payload: Any, with_vector: Any,
                 score: float | None = None) -> str:
    point = coll.points[key]
    parts = [f'"id":{json.dumps(point_id(key))}']
    if score is not None:
        parts.append(f'"version":{point.version},"score":{json.dumps(score)}')
    payload = _payload(point.payload, with_payload)
    parts.append(f'"payload":{json.dumps(payload, ensure_ascii=False)}')
    vec = _vectors(coll, key, with_vector)
    parts.append(f'"vector":{vec if vec is not None else "null"}')
    parts.append('"shard_key":null,"order_value":null')
    return "{" + ",".join(parts) + "}"


def _limit(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    value = default if value is None else value
    if type(value) is not int or value < (1 if key == "limit" else 0):
        raise ApiError(422, f"Validation error in JSON body: [{key}: value {value} invalid]")
    return value


def _update_result(version: int, params: dict[str, str]) -> dict[str, Any]:
    done = params.get("wait", "false").lower() == "true"
    return {"operation_id": version, "status": "completed" if done else "acknowledged"}


# ---- collections ---------------------------------------------------------------------------------


def root(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    return Bare(title="qdrant - vector search engine", version=VERSION, commit="local")


def list_collections(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    return {"collections": [{"name": n} for n in sorted(store.collections)]}


def create_collection(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    store.create(args[0], body or {})
    return True


def delete_collection(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    return store.drop(args[0])


def update_aliases(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    actions = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(actions, list):
        raise ApiError(400, "Format error in JSON body: missing field `actions`")
    store.change_aliases(actions)
    return True


def list_aliases(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    wanted = args[0] if args else None
    if wanted is not None:
        store.get(wanted)
    return {"aliases": [{"alias_name": a, "collection_name": c} for a, c in sorted(store.aliases.items())
                        if wanted is None or c == wanted]}


def collection_exists(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    return {"exists": args[0] in store.collections or args[0] in store.aliases}


def collection_info(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    return {
        "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
        "points_count": len(coll.points), "segments_count": 1,
        "config": {
            "params": {"vectors": coll.vectors_json(), "sparse_vectors": coll.sparse_config or None,
                       "shard_number": 1, "replication_factor": 1,
                       "write_consistency_factor": 1, "on_disk_payload": True},
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                            "max_indexing_threads": 0, "on_disk": False},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "max_segment_size": None, "memmap_threshold": None,
                                 "indexing_threshold": 10000, "flush_interval_sec": 5,
                                 "max_optimization_threads": None},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
        },
        "payload_schema": {},
    }


# ---- points ------------------------------------------------------------------------------------


def upsert(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    body = body if isinstance(body, dict) else {}
    _unsupported(body, "update_filter", "shard_key")
    if isinstance(body.get("points"), list):
        rows = [(p.get("id"), p.get("vector"), p.get("payload")) if isinstance(p, dict) else (None, None, None)
                for p in body["points"]]
    elif isinstance(body.get("batch"), dict):
        batch = body["batch"]
        ids, vectors, payloads = batch.get("ids") or [], batch.get("vectors"), batch.get("payloads")
        if isinstance(vectors, dict):  # named: {name: [vector per point]}
            per_point: list[Any] = [{n: v[i] for n, v in vectors.items()} for i in range(len(ids))]
        else:
            per_point = list(vectors or [])
        payloads = payloads if payloads is not None else [None] * len(ids)
        if not len(per_point) == len(payloads) == len(ids):
            raise ApiError(400, "Wrong input: ids, vectors and payloads of a batch differ in length")
        rows = list(zip(ids, per_point, payloads, strict=True))
    else:
        raise ApiError(400, "Format error in JSON body: expected `points` or `batch`")
    return _update_result(store.upsert(coll, rows), params)


def delete_points(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    body = body if isinstance(body, dict) else {}
    _unsupported(body, "filter", "shard_key")
    if not isinstance(body.get("points"), list):
        raise ApiError(400, "Format error in JSON body: expected `points` (a list of ids)")
    return _update_result(store.delete(coll, body["points"]), params)


def retrieve(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    body = body if isinstance(body, dict) else {}
    _unsupported(body, "shard_key")
    if not isinstance(body.get("ids"), list):
        raise ApiError(400, "Format error in JSON body: missing field `ids`")
    keys = list(dict.fromkeys(point_key(i) for i in body["ids"]))
    found = [k for k in keys if k in coll.points]
    with_payload, with_vector = body.get("with_payload", True), body.get("with_vector", False)
    return Raw("[" + ",".join(render_point(coll, k, with_payload, with_vector) for k in found) + "]")


def get_point(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    raw: int | str = int(args[1]) if args[1].isdigit() else args[1]
    key = point_key(raw)
    if key not in coll.points:
        raise ApiError(404, f"Not found: No point with id {args[1]} found")
    return Raw(render_point(coll, key, True, True))


def scroll(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    body = body if isinstance(body, dict) else {}
    _unsupported(body, "filter", "order_by", "shard_key")
    limit = _limit(body, "limit", 10)
    page, next_offset = store.scroll(coll, body.get("offset"), limit)
    with_payload, with_vector = body.get("with_payload", True), body.get("with_vector", False)
    points = ",".join(render_point(coll, k, with_payload, with_vector) for k in page)
    return Raw(f'{{"points":[{points}],"next_page_offset":{json.dumps(next_offset)}}}')


def count(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    _unsupported(body if isinstance(body, dict) else {}, "filter", "shard_key")
    return {"count": len(coll.points)}


def query(store: Store, args: list[str], params: dict[str, str], body: Any) -> Any:
    coll = store.get(args[0])
    body = body if isinstance(body, dict) else {}
    _unsupported(body, "prefetch", "lookup_from", "shard_key")
    predicate = compile_filter(body.get("filter"))
    using = body.get("using") or UNNAMED
    if using == UNNAMED and coll.named:
        raise ApiError(400, "Wrong input: Not existing vector name error: ")
    raw = body.get("query")
    if isinstance(raw, dict) and "nearest" in raw:
        raw = raw["nearest"]
    if isinstance(raw, list):
        vector = as_f32(raw, coll.vectors[using], using) if using in coll.vectors else np.zeros(0, np.float32)
    elif isinstance(raw, int | str):  # a point id: search by that point's vector
        key = point_key(raw)
        if key not in coll.points:
            raise ApiError(404, f"Not found: No point with id {raw} found")
        vector = coll.points[key].vectors[using]
    else:
        raise ApiError(400, "Wrong input: `query` must be a vector, {nearest: vector} or a point id here")
    hits = store.query(coll, vector, using, _limit(body, "limit", 10), _limit(body, "offset", 0), predicate)
    threshold = body.get("score_threshold")
    with_payload, with_vector = body.get("with_payload", False), body.get("with_vector", False)
    rendered = [render_point(coll, k, with_payload, with_vector, score) for k, score in hits
                if threshold is None or score >= threshold]
    return Raw('{"points":[' + ",".join(rendered) + "]}")


ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", (), root),
    ("GET", ("collections",), list_collections),
    ("PUT", ("collections", "*"), create_collection),
    ("GET", ("collections", "*"), collection_info),
    ("DELETE", ("collections", "*"), delete_collection),
    ("GET", ("collections", "*", "exists"), collection_exists),
    ("POST", ("collections", "aliases"), update_aliases),
    ("GET", ("aliases",), list_aliases),
    ("GET", ("collections", "*", "aliases"), list_aliases),
    ("PUT", ("collections", "*", "points"), upsert),
    ("POST", ("collections", "*", "points"), retrieve),
    ("GET", ("collections", "*", "points", "*"), get_point),
    ("POST", ("collections", "*", "points", "scroll"), scroll),
    ("POST", ("collections", "*", "points", "delete"), delete_points),
    ("POST", ("collections", "*", "points", "count"), count),
    ("POST", ("collections", "*", "points", "query"), query),
]


def route(method: str, parts: list[str]) -> tuple[Handler, list[str]] | None:
    """The handler for a path and its ``*`` arguments; literal segments win over ``*``."""
    best: tuple[int, Handler, list[str]] | None = None
    for verb, pattern, handler in ROUTES:
        if verb != method or len(pattern) != len(parts):
            continue
        if all(p in ("*", s) for p, s in zip(pattern, parts, strict=True)):
            literal = sum(p != "*" for p in pattern)
            if best is None or literal > best[0]:
                best = (literal, handler, [s for p, s in zip(pattern, parts, strict=True) if p == "*"])
    return (best[1], best[2]) if best else None
