"""Per-query measures of one answer against another, and latency percentiles.

Ids are compared by their text (``7`` in pgvector and ``"7"`` in Pinecone are one record):
stores disagree on id types, and a migration that changed an id's type is caught by the
completeness check, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vecmig.records import RecordId
from vecmig.search import Hit


def keys(hits: Sequence[Hit] | Sequence[RecordId], k: int) -> list[str]:
    return [str(h.id) if isinstance(h, Hit) else str(h) for h in list(hits)[:k]]


def overlap(a: Sequence[Hit], b: Sequence[Hit], k: int) -> float:
    """|top-k of a ∩ top-k of b| / k, with k capped at what either side could return.

    Two empty answers agree (1.0): a filter matching nothing on both sides is parity.
    """
    ka, kb = keys(a, k), keys(b, k)
    n = max(len(ka), len(kb))
    if n == 0:
        return 1.0
    return len(set(ka) & set(kb)) / n


def recall(got: Sequence[Hit], truth: Sequence[Hit] | Sequence[RecordId], k: int) -> float:
    """Share of the true top-k (or the labelled relevant ids) that ``got``'s top-k holds."""
    want = list(dict.fromkeys(keys(truth, len(truth))))[:k]  # an id labelled twice is one relevant record
    if not want:
        return 1.0
    return len(set(keys(got, k)) & set(want)) / len(want)


def rank_correlation(a: Sequence[Hit], b: Sequence[Hit], k: int) -> float | None:
    """Spearman's rho of the ranks of the ids both top-k share; None under two shared ids."""
    ka, kb = keys(a, k), keys(b, k)
    common = [x for x in ka if x in set(kb)]
    n = len(common)
    if n < 2:
        return None
    ra = {x: i for i, x in enumerate(x for x in ka if x in set(common))}
    rb = {x: i for i, x in enumerate(x for x in kb if x in set(common))}
    d2 = sum((ra[x] - rb[x]) ** 2 for x in common)
    return 1.0 - 6.0 * d2 / (n * (n * n - 1))


def score_difference(a: Sequence[Hit], b: Sequence[Hit], k: int) -> float | None:
    """The largest |score| difference over ids both top-k share (same convention both sides)."""
    sa = {str(h.id): h.score for h in list(a)[:k]}
    diffs = [abs(sa[str(h.id)] - h.score) for h in list(b)[:k] if str(h.id) in sa]
    return max(diffs) if diffs else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 and mean, in milliseconds."""
    ms = [v * 1000.0 for v in values]
    return {"p50": _r(percentile(ms, 50)), "p95": _r(percentile(ms, 95)), "p99": _r(percentile(ms, 99)),
            "mean": _r(sum(ms) / len(ms)) if ms else None}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
