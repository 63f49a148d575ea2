"""The data model of the local Qdrant server: collections of points, kept as Qdrant keeps them.

Written from the shapes of ``qdrant_client.http.models`` (the OpenAPI models) and Qdrant's
documented behaviour, because the rules are what a client meets:

* point ids are unsigned 64-bit integers or UUIDs; a UUID comes back in its canonical
  lowercase hyphenated form, whatever form it was sent in;
* points are ordered by id: every integer id before every UUID, UUIDs by their 128-bit value
  (which is the order of their canonical text); ``scroll``'s ``offset`` is inclusive and
  ``next_page_offset`` is the id of the first point of the next page;
* vectors are float32; a ``Cosine`` collection stores vectors normalised to unit length;
* payloads are JSON objects kept with their number types (serde_json without arbitrary
  precision: an integer outside [-2**63, 2**64) becomes a double);
* errors carry Qdrant's words (``Not found: Collection `x` doesn't exist!``, ``Wrong input:
  ...``) and status (404, 409, 400), raised as :class:`ApiError` for the HTTP layer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
UNNAMED = ""  # the key of a collection's single unnamed vector
U64_MAX = 2**64 - 1
I64_MIN = -(2**63)

PointKey = tuple[int, int]  # (0, int id) | (1, uuid as int): Qdrant's order of ids


class ApiError(Exception):
    """An error response: HTTP ``status`` and Qdrant's ``status.error`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def point_key(raw: Any) -> PointKey:
    """The key of a point id as the JSON body gave it; 400 for anything Qdrant refuses."""
    if type(raw) is int and 0 <= raw <= U64_MAX:
        return (0, raw)
    if isinstance(raw, str):
        try:
            return (1, uuid.UUID(raw).int)
        except ValueError:
            pass
    raise ApiError(400, f"Format error in JSON body: value {raw} is not a valid point ID, "
                        "valid values are either an unsigned integer or a UUID")


def point_id(key: PointKey) -> int | str:
    return key[1] if key[0] == 0 else str(uuid.UUID(int=key[1]))


def json_number(value: Any) -> Any:
    """A payload value as serde_json keeps it: integers past 64 bits turn into doubles."""
    if type(value) is int and not I64_MIN <= value <= U64_MAX:
        return float(value)
    if isinstance(value, dict):
        return {k: json_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_number(v) for v in value]
    return value


@dataclass(frozen=True)
class VectorParams:
    size: int
    distance: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "distance": self.distance}


@dataclass
class Point:
    vectors: dict[str, np.ndarray]  # name ("" when unnamed) -> float32 vector
    payload: dict[str, Any]
    version: int


@dataclass
class Collection:
    name: str
    vectors: dict[str, VectorParams]  # {"": params} for a single unnamed vector
    points: dict[PointKey, Point] = field(default_factory=dict)
    # Sparse vector names are kept and reported (a client must see them), but no sparse
    # values are served: an upsert carrying some is refused.
    sparse_config: dict[str, Any] = field(default_factory=dict)
    operations: int = 0
    _order: list[PointKey] | None = None

    @property
    def named(self) -> bool:
        return UNNAMED not in self.vectors

    def order(self) -> list[PointKey]:
        if self._order is None:
            self._order = sorted(self.points)
        return self._order

    def touched(self) -> int:
        self._order = None
        self.operations += 1
        return self.operations

    def vectors_json(self) -> dict[str, Any]:
        if not self.named:
            return self.vectors[UNNAMED].to_json()
        return {name: p.to_json() for name, p in self.vectors.items()}


def parse_vector_params(body: Any) -> dict[str, VectorParams]:
    """``vectors`` of a CreateCollection body: one VectorParams, or a map of named ones."""
    if not isinstance(body, dict):
        raise ApiError(400, "Format error in JSON body: missing field `vectors`")
    if "size" in body or "distance" in body:
        return {UNNAMED: _one_params(body)}
    if not body:
        raise ApiError(400, "Wrong input: a collection needs at least one vector (sparse vectors are not served)")
    return {str(name): _one_params(p) for name, p in body.items()}


def _one_params(body: Any) -> VectorParams:
    if not isinstance(body, dict) or type(body.get("size")) is not int or body.get("distance") not in DISTANCES:
        raise ApiError(400, "Format error in JSON body: vectors need `size` (a positive integer) and `distance` "
                            f"(one of {', '.join(DISTANCES)})")
    if not 1 <= body["size"] <= 65536:
        raise ApiError(422, "Validation error in JSON body: [vectors.size: value 0 invalid, must be from 1 to 65536]"
                       .replace("0 invalid", f"{body['size']} invalid"))
    return VectorParams(int(body["size"]), str(body["distance"]))


def as_f32(raw: Any, params: VectorParams, name: str) -> np.ndarray:
    if not isinstance(raw, list) or not all(type(x) in (int, float) for x in raw):
        raise ApiError(400, "Format error in JSON body: a dense vector must be a list of numbers")
    if len(raw) != params.size:
        raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {params.size}, got {len(raw)}")
    vec = np.asarray(raw, dtype=np.float64).astype(np.float32)
    if params.distance == "Cosine":
        # Qdrant normalises on write, so that cosine becomes a dot product at search time.
        norm = np.float32(np.sqrt(np.sum(vec * vec, dtype=np.float32)))
        if norm > np.finfo(np.float32).eps:
            vec = (vec / norm).astype(np.float32)
    return vec


class Store:
    """Every collection of one server, behind one lock (requests come from many threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}  # alias -> collection; data requests may name either
        self.stats: dict[str, int] = {"upsert_requests": 0, "points_upserted": 0}

    def reset(self) -> None:
        with self.lock:
            self.collections.clear()
            self.aliases.clear()
            self.stats = {"upsert_requests": 0, "points_upserted": 0}

    def get(self, name: str) -> Collection:
        coll = self.collections.get(name) or self.collections.get(self.aliases.get(name, ""))
        if coll is None:
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
        return coll

    def create(self, name: str, body: dict[str, Any]) -> None:
        if not name or len(name) > 255 or any(c in name for c in '/\\:*?"<>|\0'):
            raise ApiError(422, f"Validation error in path parameters: [collection_name: invalid name {name!r}]")
        vectors = parse_vector_params(body.get("vectors"))
        sparse = body.get("sparse_vectors") or {}
        if not isinstance(sparse, dict) or not all(isinstance(v, dict) for v in sparse.values()):
            raise ApiError(400, "Format error in JSON body: sparse_vectors must map names to SparseVectorParams")
        if name in self.collections:
            raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
        if name in self.aliases:
            raise ApiError(400, f"Wrong input: Alias `{name}` already exists!")
        self.collections[name] = Collection(name, vectors, sparse_config=dict(sparse))

    def drop(self, name: str) -> bool:
        """Deleting a collection deletes its aliases; a missing one is no error (``false``)."""
        if self.collections.pop(name, None) is None:
            return False
        self.aliases = {a: c for a, c in self.aliases.items() if c != name}
        return True

    def change_aliases(self, actions: list[Any]) -> None:
        """All actions or none (Qdrant applies one request atomically): a switch is
        ``delete_alias`` + ``create_alias`` in one request, and readers never see no alias."""
        aliases = dict(self.aliases)
        for action in actions:
            op, args = next(iter(action.items())) if isinstance(action, dict) and len(action) == 1 else ("", {})
            if op == "create_alias":
                alias, target = args.get("alias_name"), args.get("collection_name")
                self.get(str(target))
                if alias in self.collections:
                    raise ApiError(409, f"Wrong input: Collection `{alias}` already exists!")
                aliases[str(alias)] = str(target)
            elif op == "delete_alias":
                aliases.pop(str(args.get("alias_name")), None)
            elif op == "rename_alias":
                old, new = str(args.get("old_alias_name")), str(args.get("new_alias_name"))
                if old not in aliases:
                    raise ApiError(404, f"Not found: Alias `{old}` doesn't exist!")
                aliases[new] = aliases.pop(old)
            else:
                raise ApiError(400, "Format error in JSON body: unknown alias operation")
        self.aliases = aliases

    def point_vectors(self, coll: Collection, raw: Any) -> dict[str, np.ndarray]:
        """A point's ``vector``: a list for the unnamed vector, an object for named ones."""
        if isinstance(raw, list):
            if coll.named:
                raise ApiError(400, "Wrong input: Not existing vector name error: ")
            return {UNNAMED: as_f32(raw, coll.vectors[UNNAMED], UNNAMED)}
        if isinstance(raw, dict):
            out = {}
            for name, vec in raw.items():
                if name in coll.sparse_config:
                    raise ApiError(400, "Wrong input: sparse vector values are not served by this local server")
                params = coll.vectors.get(name)
                if params is None:
                    raise ApiError(400, f"Wrong input: Not existing vector name error: {name}")
                out[name] = as_f32(vec, params, name)
            return out
        raise ApiError(400, "Format error in JSON body: missing field `vector`")

    def upsert(self, coll: Collection, points: list[tuple[Any, Any, Any]]) -> int:
        """All points are checked before any is written: a refused request changes nothing."""
        staged: list[tuple[PointKey, dict[str, np.ndarray], dict[str, Any]]] = []
        for raw_id, raw_vec, payload in points:
            key = point_key(raw_id)
            if payload is not None and not isinstance(payload, dict):
                raise ApiError(400, "Format error in JSON body: payload must be a JSON object")
            staged.append((key, self.point_vectors(coll, raw_vec), json_number(payload or {})))
        version = coll.touched()
        for key, vectors, payload in staged:
            coll.points[key] = Point(vectors, payload, version)
        self.stats["upsert_requests"] += 1
        self.stats["points_upserted"] += len(staged)
        return version

    def delete(self, coll: Collection, ids: list[Any]) -> int:
        keys = [point_key(i) for i in ids]
        version = coll.touched()
        for key in keys:
            coll.points.pop(key, None)
        return version

    def scroll(self, coll: Collection, offset: Any, limit: int) -> tuple[list[PointKey], int | str | None]:
        import bisect

        order = coll.order()
        start = 0 if offset is None else bisect.bisect_left(order, point_key(offset))
        page = order[start:start + limit]
        rest = start + limit
        return page, (point_id(order[rest]) if rest < len(order) else None)

    def query(self, coll: Collection, vector: np.ndarray, using: str, limit: int, offset: int,
              predicate: Callable[[PointKey, dict[str, Any]], bool] | None = None) -> list[tuple[PointKey, float]]:
        """Exact nearest neighbours among the points ``predicate`` (the request's filter) keeps:
        brute force over every point (fine at test sizes)."""
        params = coll.vectors.get(using)
        if params is None:
            raise ApiError(400, f"Wrong input: Not existing vector name error: {using}")
        keys = [k for k in coll.order() if using in coll.points[k].vectors
                and (predicate is None or predicate(k, coll.points[k].payload))]
        if not keys:
            return []
        matrix = np.stack([coll.points[k].vectors[using] for k in keys]).astype(np.float64)
        q = vector.astype(np.float64)
        if params.distance in ("Cosine", "Dot"):
            scores = matrix @ q
            ranked = np.argsort(-scores, kind="stable")
        elif params.distance == "Euclid":
            scores = np.sqrt(((matrix - q) ** 2).sum(axis=1))
            ranked = np.argsort(scores, kind="stable")
        else:
            scores = np.abs(matrix - q).sum(axis=1)
            ranked = np.argsort(scores, kind="stable")
        chosen = ranked[offset:offset + limit]
        return [(keys[i], float(np.float32(scores[i]))) for i in chosen]
