"""Nearest-neighbour search as vecmig compares it across stores.

Every store answers a query with its own score convention (pgvector distances, Pinecone
similarities, squared or plain L2). Providers convert to one: :class:`Hit` carries a
*similarity*, higher is closer — the cosine similarity, the dot product, or the negated
Euclidean (L2, not squared) distance. Score differences between two stores are then
comparable, and :func:`exact_top_k` (numpy over the records: the ground truth that recall
is measured against) speaks the same convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vecmig.records import RecordId

METRICS = ("cosine", "euclidean", "dotproduct")


@dataclass(frozen=True)
class Hit:
    id: RecordId
    score: float  # similarity: higher is closer (see the module's docstring)


def similarities(metric: str, vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Scores of every query (rows of ``queries``) against every vector: shape (q, n), float64.

    Computed in float64 from the float32 values, so two stores' rounding is what differs,
    never this.
    """
    v = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim == 1:
        q = q[None, :]
    if metric == "dotproduct":
        return q @ v.T
    if metric == "cosine":
        vn = np.linalg.norm(v, axis=1)
        qn = np.linalg.norm(q, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (q @ v.T) / np.outer(qn, vn)
        cosine: np.ndarray = np.nan_to_num(out, nan=0.0)  # a zero vector is similar to nothing
        return cosine
    if metric == "euclidean":
        d2 = (q * q).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2.0 * (q @ v.T)
        dist: np.ndarray = np.sqrt(np.maximum(d2, 0.0))
        return -dist
    raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")


def top_k(scores: np.ndarray, ids: list[RecordId], k: int) -> list[Hit]:
    """The ``k`` best of one query's ``scores`` over ``ids``, best first; ties by position."""
    n = len(ids)
    if n == 0 or k <= 0:
        return []
    k = min(k, n)
    # Stable order: a lexsort on (position, -score) keeps equal scores in record order.
    order = np.lexsort((np.arange(n), -scores))[:k]
    return [Hit(ids[i], float(scores[i])) for i in order]


def merge(a: list[Hit], b: list[Hit], k: int) -> list[Hit]:
    """The ``k`` best of two result lists (exact search over chunks); ``a`` wins ties."""
    both = sorted(enumerate([*a, *b]), key=lambda p: (-p[1].score, p[0]))
    return [h for _, h in both[:k]]
