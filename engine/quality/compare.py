"""Both sides' answers to the same queries, measured against exact search and each other.

:func:`compare` builds the :class:`Report` (per query and in aggregate: overlap@k of target
with source, recall@k of each side against the exact top-k and against labelled ``expected``
ids, rank correlation, score differences, latency percentiles, error rates); :meth:`Gate.check`
says which thresholds it misses, each failure one sentence that says why (the target's search
settings are named: "ivfflat probes=1") and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vecmig.quality import metrics
from vecmig.quality.queries import Query
from vecmig.quality.runner import Answer
from vecmig.quality.settings import advice, settings_phrase
from vecmig.search import Hit


@dataclass(frozen=True)
class Gate:
    """Thresholds that must hold before anything switches (None: not gated)."""

    min_overlap: float | None = None  # mean overlap@k of target with source
    min_recall: float | None = None  # mean recall@k of the target against exact search
    max_recall_drop: float | None = None  # target recall may be at most this below the source's
    max_latency_ratio: float | None = None  # target p95 / source p95
    max_score_diff: float | None = None  # largest score difference on a shared id
    max_error_rate: float | None = None  # share of target queries that failed

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gate:
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})

    def check(self, report: Report, target_settings: Mapping[str, Any] | None = None) -> list[str]:
        """One sentence per threshold missed; empty when the gate passes."""
        a = report.aggregate
        k = report.k_label
        why = settings_phrase(target_settings or {})
        fix = advice(target_settings or {})
        out: list[str] = []
        if self.min_overlap is not None and a["overlap"] is not None and a["overlap"] < self.min_overlap:
            worst = ", ".join(f"{q.name} {q.overlap:.2f}" for q in report.worst("overlap", 3))
            out.append(f"overlap@{k} {a['overlap']:.2f} < {self.min_overlap:g} (worst: {worst})"
                       + (f"; target: {why}" if why else "") + (f"; {fix}" if fix else ""))
        tr = a["recall_target"]
        if self.min_recall is not None and tr is not None and tr < self.min_recall:
            out.append(f"recall@{k} {tr:.2f} < {self.min_recall:g} on target"
                       + (f": {why}" if why else "") + (f"; {fix}" if fix else "")
                       + (f" (source: {a['recall_source']:.2f})" if a["recall_source"] is not None else ""))
        sr = a["recall_source"]
        if self.max_recall_drop is not None and tr is not None and sr is not None and sr - tr > self.max_recall_drop:
            out.append(f"target recall@{k} {tr:.2f} is {sr - tr:.2f} below the source's {sr:.2f} "
                       f"(at most {self.max_recall_drop:g} allowed)" + (f"; target: {why}" if why else ""))
        ratio = a["latency_ratio"]
        if self.max_latency_ratio is not None and ratio is not None and ratio > self.max_latency_ratio:
            out.append(f"target p95 latency {a['latency_target']['p95']:.1f} ms is {ratio:.2f}× the source's "
                       f"{a['latency_source']['p95']:.1f} ms (at most {self.max_latency_ratio:g}× allowed)")
        sd = a["score_diff"]
        if self.max_score_diff is not None and sd is not None and sd > self.max_score_diff:
            out.append(f"scores differ by up to {sd:.4g} on the same record (at most {self.max_score_diff:g}): "
                       "the metric or the vectors changed")
        er = a["error_rate_target"]
        if self.max_error_rate is not None and er > self.max_error_rate:
            first = next((q.error_target for q in report.queries if q.error_target), "")
            out.append(f"{er:.1%} of target queries failed (at most {self.max_error_rate:.1%}); first: {first}")
        return out


@dataclass(frozen=True)
class QueryResult:
    name: str
    k: int
    overlap: float | None
    recall_source: float | None  # against the exact top-k (None: no exact answer computed)
    recall_target: float | None
    expected_recall_source: float | None  # against the query's labelled ids
    expected_recall_target: float | None
    rank_correlation: float | None
    score_diff: float | None
    ms_source: float | None
    ms_target: float | None
    error_source: str | None = None
    error_target: str | None = None
    filter: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Report:
    k: int
    queries: tuple[QueryResult, ...]
    aggregate: dict[str, Any] = field(default_factory=dict)
    k_min: int = 0  # the smallest k of a query (a file's query may set its own)

    @property
    def k_label(self) -> str:
        """What "@k" reads: "10", or "3–5" when the queries' k differ (never the largest alone)."""
        return k_label(self.k, self.k_min)

    def worst(self, measure: str, n: int) -> list[QueryResult]:
        scored = [q for q in self.queries if getattr(q, measure) is not None]
        return sorted(scored, key=lambda q: (getattr(q, measure), q.name))[:n]

    def to_json(self, *, per_query: int | None = None) -> dict[str, Any]:
        """The aggregate and the queries (all, or the ``per_query`` worst by overlap and recall)."""
        qs = list(self.queries)
        if per_query is not None and len(qs) > per_query:
            keep: list[str] = []
            for q in [*self.worst("overlap", per_query), *self.worst("recall_target", per_query), *qs]:
                if len(keep) >= per_query:
                    break
                if q.name not in keep:
                    keep.append(q.name)
            qs = [q for q in qs if q.name in set(keep)]
        return {"k": self.k, **({"k_min": self.k_min} if self.k_min and self.k_min != self.k else {}),
                "aggregate": self.aggregate, "queries": [q.to_json() for q in qs],
                "queries_shown": len(qs), "queries_total": len(self.queries)}


def k_label(k: Any, k_min: Any = None) -> str:
    if not k:
        return "k"
    return f"{k_min}–{k}" if k_min and k_min != k else str(k)


def _mean(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(sum(vs) / len(vs), 6) if vs else None


def compare(queries: Sequence[Query], source: Sequence[Answer], target: Sequence[Answer],
            exact: Sequence[Sequence[Hit]] | None = None, *, wall_source: float = 0.0,
            wall_target: float = 0.0) -> Report:
    """Measure ``target``'s answers against ``source``'s (and both against ``exact``)."""
    rows: list[QueryResult] = []
    for i, q in enumerate(queries):
        s, t = source[i], target[i]
        both = s.error is None and t.error is None
        truth = exact[i] if exact is not None else None
        rows.append(QueryResult(
            name=q.name, k=q.k, filter=q.filter,
            overlap=metrics.overlap(s.hits, t.hits, q.k) if both else None,
            recall_source=metrics.recall(s.hits, truth, q.k) if truth is not None and s.error is None else None,
            recall_target=metrics.recall(t.hits, truth, q.k) if truth is not None and t.error is None else None,
            expected_recall_source=(metrics.recall(s.hits, q.expected, q.k)
                                    if q.expected is not None and s.error is None else None),
            expected_recall_target=(metrics.recall(t.hits, q.expected, q.k)
                                    if q.expected is not None and t.error is None else None),
            rank_correlation=metrics.rank_correlation(s.hits, t.hits, q.k) if both else None,
            score_diff=metrics.score_difference(s.hits, t.hits, q.k) if both else None,
            ms_source=round(s.seconds * 1000, 3) if s.error is None else None,
            ms_target=round(t.seconds * 1000, 3) if t.error is None else None,
            error_source=s.error, error_target=t.error,
        ))
    n = len(rows)
    lat_s = metrics.latency([a.seconds for a in source if a.error is None])
    lat_t = metrics.latency([a.seconds for a in target if a.error is None])
    diffs = [r.score_diff for r in rows if r.score_diff is not None]
    aggregate: dict[str, Any] = {
        "queries": n,
        "overlap": _mean([r.overlap for r in rows]),
        "overlap_min": min((r.overlap for r in rows if r.overlap is not None), default=None),
        "recall_source": _mean([r.recall_source for r in rows]),
        "recall_target": _mean([r.recall_target for r in rows]),
        "expected_recall_source": _mean([r.expected_recall_source for r in rows]),
        "expected_recall_target": _mean([r.expected_recall_target for r in rows]),
        "rank_correlation": _mean([r.rank_correlation for r in rows]),
        "score_diff": round(max(diffs), 6) if diffs else None,
        "latency_source": lat_s,
        "latency_target": lat_t,
        "latency_ratio": (round(lat_t["p95"] / lat_s["p95"], 3)
                          if lat_s["p95"] and lat_t["p95"] is not None else None),
        "error_rate_source": round(sum(1 for r in rows if r.error_source) / n, 6) if n else 0.0,
        "error_rate_target": round(sum(1 for r in rows if r.error_target) / n, 6) if n else 0.0,
        "qps_source": round(n / wall_source, 1) if wall_source > 0 else None,
        "qps_target": round(n / wall_target, 1) if wall_target > 0 else None,
    }
    return Report(k=max((q.k for q in queries), default=0), queries=tuple(rows), aggregate=aggregate,
                  k_min=min((q.k for q in queries), default=0))
