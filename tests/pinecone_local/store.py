"""In-memory index state: records per namespace, metadata filters, and scoring.

Callers hold the backend lock around every method here; nothing in this module
locks on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.pinecone_local.errors import bad_request

DEFAULT_NAMESPACE_ALIAS = "__default__"

_Predicate = Callable[[dict[str, Any] | None], bool]
_MISSING = object()


def canonical_namespace(name: Any) -> str:
    """Map both spellings of the default namespace ("" and "__default__") to ""."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise bad_request("namespace must be a string")
    return "" if name == DEFAULT_NAMESPACE_ALIAS else name


def f32_shortest(values: np.ndarray) -> list[float]:
    """Render float32 values the way Pinecone's gateway prints them.

    The gateway writes each float32 with the fewest digits that still round-trip
    as float32 (``0.1``, not ``0.10000000149011612``). Both forms parse back to
    the same float32, but a client that compares against the float64 it sent
    sees the difference, so the fake matches the real output.
    """
    return [float(str(v)) for v in values]


@dataclass
class Record:
    values: np.ndarray | None
    sparse_indices: np.ndarray | None
    sparse_values: np.ndarray | None
    metadata: dict[str, Any] | None
    # Rendering float32s is the slow part of a read, so each record renders once.
    _values_json: list[float] | None = None
    _sparse_json: dict[str, Any] | None = None

    def values_json(self) -> list[float]:
        if self.values is None:
            return []
        if self._values_json is None:
            self._values_json = f32_shortest(self.values)
        return self._values_json

    def sparse_json(self) -> dict[str, Any] | None:
        if self.sparse_indices is None or self.sparse_values is None:
            return None
        if self._sparse_json is None:
            self._sparse_json = {
                "indices": [int(i) for i in self.sparse_indices],
                "values": f32_shortest(self.sparse_values),
            }
        return self._sparse_json

    def sparse_map(self) -> dict[int, float]:
        if self.sparse_indices is None or self.sparse_values is None:
            return {}
        return dict(zip(self.sparse_indices.tolist(), self.sparse_values.tolist(), strict=True))


@dataclass
class DenseView:
    """A namespace's dense vectors as one matrix, rebuilt only after a write."""

    ids: list[str]
    matrix: np.ndarray
    norms: np.ndarray
    rows: dict[str, int]


class Namespace:
    """Records of one namespace, with a dense matrix cached between writes."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self._dense: DenseView | None = None

    def invalidate(self) -> None:
        self._dense = None

    def put(self, vid: str, record: Record) -> None:
        self.records[vid] = record
        self.invalidate()

    def remove(self, vid: str) -> bool:
        existed = self.records.pop(vid, None) is not None
        if existed:
            self.invalidate()
        return existed

    def dense(self, dimension: int) -> DenseView:
        if self._dense is None:
            ids = list(self.records)
            if ids:
                matrix = np.stack([self.records[i].values for i in ids]).astype(np.float32)  # type: ignore[misc]
            else:
                matrix = np.zeros((0, dimension), dtype=np.float32)
            self._dense = DenseView(
                ids=ids,
                matrix=matrix,
                norms=np.linalg.norm(matrix, axis=1).astype(np.float32),
                rows={vid: row for row, vid in enumerate(ids)},
            )
        return self._dense


@dataclass
class IndexState:
    name: str
    dimension: int | None
    metric: str
    has_sparse: bool
    schema: dict[str, Any]
    deployment: dict[str, Any]
    deletion_protection: str
    tags: dict[str, str] | None
    read_capacity: dict[str, Any] | None
    ready_at: float
    host: str = ""
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    # Log sequence number: bumped by every write so read-your-writes code that
    # compares x-pinecone-request-lsn with x-pinecone-max-indexed-lsn works.
    lsn: int = 0

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at

    @property
    def vector_type(self) -> str:
        return "sparse" if self.dimension is None else "dense"

    def namespace(self, name: str, *, create: bool = False) -> Namespace | None:
        ns = self.namespaces.get(name)
        if ns is None and create:
            ns = self.namespaces[name] = Namespace()
        return ns

    def drop_empty(self, name: str) -> None:
        # Serverless namespaces exist only while they hold records.
        ns = self.namespaces.get(name)
        if ns is not None and not ns.records:
            del self.namespaces[name]

    def total(self) -> int:
        return sum(len(ns.records) for ns in self.namespaces.values())


# ---------------------------------------------------------------------------
# Metadata filters
# ---------------------------------------------------------------------------

_SCALAR_OPS = ("$eq", "$ne")
_RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
_SET_OPS = ("$in", "$nin")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def _same(a: Any, b: Any) -> bool:
    # bool is an int subclass, so True == 1.0 in Python; Pinecone keeps them apart.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return isinstance(a, str) and isinstance(b, str) and a == b


def _eq(stored: Any, wanted: Any) -> bool:
    if stored is _MISSING:
        return False
    if isinstance(stored, list):
        return any(_same(item, wanted) for item in stored)
    return _same(stored, wanted)


def _compile_field(name: str, cond: Any) -> _Predicate:
    if not isinstance(cond, dict):
        if not _is_scalar(cond):
            raise bad_request(
                f"Invalid filter for field {name!r}: expected a string, number, boolean or an operator object"
            )
        cond = {"$eq": cond}
    if not cond:
        raise bad_request(f"Invalid filter for field {name!r}: empty operator object")
    checks: list[Callable[[Any], bool]] = []
    for op, operand in cond.items():
        if op in _SCALAR_OPS:
            if not _is_scalar(operand):
                raise bad_request(f"{op} operand for field {name!r} must be a string, number or boolean")
            if op == "$eq":
                checks.append(lambda v, x=operand: _eq(v, x))
            else:
                checks.append(lambda v, x=operand: not _eq(v, x))
        elif op in _RANGE_OPS:
            if not _is_number(operand):
                raise bad_request(f"{op} operand for field {name!r} must be a number")
            bound = float(operand)
            compare = {
                "$gt": lambda a, b: a > b,
                "$gte": lambda a, b: a >= b,
                "$lt": lambda a, b: a < b,
                "$lte": lambda a, b: a <= b,
            }[op]
            checks.append(lambda v, b=bound, c=compare: _is_number(v) and bool(c(float(v), b)))
        elif op in _SET_OPS:
            if not isinstance(operand, list) or not all(_is_scalar(x) for x in operand):
                raise bad_request(f"{op} operand for field {name!r} must be a list of scalars")
            if op == "$in":
                checks.append(lambda v, xs=operand: any(_eq(v, x) for x in xs))
            else:
                checks.append(lambda v, xs=operand: not any(_eq(v, x) for x in xs))
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise bad_request(f"$exists operand for field {name!r} must be a boolean")
            checks.append(lambda v, want=operand: (v is not _MISSING) == want)
        else:
            raise bad_request(f"Invalid filter operator {op!r} for field {name!r}")

    def predicate(metadata: dict[str, Any] | None) -> bool:
        value = _MISSING if metadata is None else metadata.get(name, _MISSING)
        return all(check(value) for check in checks)

    return predicate


def compile_filter(raw: Any) -> _Predicate | None:
    """Compile a Pinecone metadata filter, raising 400 on anything malformed.

    ``None`` and ``{}`` mean "no filter". Supported: implicit equality,
    ``$eq $ne $gt $gte $lt $lte $in $nin $exists``, and ``$and``/``$or``.
    A list-of-strings metadata value matches ``$eq``/``$in`` when any element does.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("filter must be a JSON object")
    if not raw:
        return None
    parts: list[_Predicate] = []
    for key, value in raw.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise bad_request(f"{key} operand must be a non-empty list of filters")
            subs = [compile_filter(sub) or (lambda _m: True) for sub in value]
            if key == "$and":
                parts.append(lambda m, s=subs: all(p(m) for p in s))
            else:
                parts.append(lambda m, s=subs: any(p(m) for p in s))
        elif key.startswith("$"):
            raise bad_request(f"Invalid filter operator {key!r} at the top level")
        else:
            parts.append(_compile_field(key, value))
    return lambda m: all(p(m) for p in parts)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def score_dense(metric: str, matrix: np.ndarray, norms: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Scores as Pinecone reports them: higher is better except for euclidean.

    Euclidean scores are squared distances (lower is closer), which is what
    Pinecone returns rather than the square root.
    """
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    if metric == "euclidean":
        diff = matrix - query
        return np.einsum("ij,ij->i", diff, diff)
    dots = matrix @ query
    if metric == "dotproduct":
        return dots
    denom = norms * np.linalg.norm(query)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, dots / denom, 0.0).astype(np.float32)


def score_sparse(records: list[Record], query: dict[int, float]) -> np.ndarray:
    out = np.zeros(len(records), dtype=np.float32)
    for row, record in enumerate(records):
        stored = record.sparse_map()
        out[row] = sum(value * stored.get(idx, 0.0) for idx, value in query.items())
    return out


def top_k_order(ids: list[str], scores: np.ndarray, k: int, ascending: bool) -> list[int]:
    """Row positions of the best *k*, ties broken by id so results are deterministic."""
    if not ids:
        return []
    keys = scores if ascending else -scores
    order = np.lexsort((np.asarray(ids), keys))
    return [int(i) for i in order[:k]]
