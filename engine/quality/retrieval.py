"""Retrieval quality of two embeddings on one evaluation set: recall@k, nDCG@k and MRR, side by side.

The measures (each query's top-k against the ids labelled relevant to it):

* recall@k = |relevant ∩ top-k| / min(|relevant|, k): a query with more relevant ids than k can
  still reach 1;
* nDCG@k = DCG@k / IDCG@k with linear gains (the grade) and the standard log2(rank + 1)
  discount, the ideal ranking being the relevant set sorted by grade (Järvelin & Kekäläinen;
  trec_eval and scikit-learn's ``ndcg_score`` do the same);
* MRR: 1 / the rank of the first relevant id in the top-k, 0 when none is.

:func:`measure` builds the :class:`RetrievalReport` from both sides' answers (the "old" side: the
source searched with the old model's query vectors; the "new" side: the target searched with the
new model's); :meth:`RetrievalGate.check` says which thresholds it misses, one sentence each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vecmig.quality.compare import k_label
from vecmig.quality.evalset import EvalQuery
from vecmig.quality.runner import Answer
from vecmig.records import same_record_key

MEASURES = ("recall", "ndcg", "mrr")
LABELS = {"recall": "recall", "ndcg": "nDCG", "mrr": "MRR"}


def top_ids(ranked: Sequence[Any], k: int) -> list[str]:
    """The first ``k`` ids as the house compares them (an id twice counts at its first rank)."""
    return list(dict.fromkeys(same_record_key(x) for x in ranked))[:k]


def recall_at_k(ranked: Sequence[Any], grades: Mapping[str, float], k: int) -> float:
    relevant = [rid for rid, g in grades.items() if g > 0]
    if not relevant:
        return 0.0
    return len(set(top_ids(ranked, k)) & set(relevant)) / min(len(relevant), k)


def dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[Any], grades: Mapping[str, float], k: int) -> float:
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(rid, 0.0) for rid in top_ids(ranked, k)]) / ideal


def mrr_at_k(ranked: Sequence[Any], grades: Mapping[str, float], k: int) -> float:
    for rank, rid in enumerate(top_ids(ranked, k), 1):
        if grades.get(rid, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def scores(ranked: Sequence[Any], grades: Mapping[str, float], k: int) -> dict[str, float]:
    return {"recall": recall_at_k(ranked, grades, k), "ndcg": ndcg_at_k(ranked, grades, k),
            "mrr": mrr_at_k(ranked, grades, k)}


@dataclass(frozen=True)
class QueryScores:
    name: str
    k: int
    relevant: int
    old: dict[str, float] | None  # None: the query failed on that side
    new: dict[str, float] | None
    old_ids: tuple[str, ...] = ()
    new_ids: tuple[str, ...] = ()
    error_old: str | None = None
    error_new: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "k": self.k, "relevant": self.relevant}
        for side in ("old", "new"):
            s = getattr(self, side)
            if s is not None:
                out.update({f"{m}_{side}": round(s[m], 6) for m in MEASURES})
            out[f"{side}_ids"] = list(getattr(self, f"{side}_ids"))
            if getattr(self, f"error_{side}"):
                out[f"error_{side}"] = getattr(self, f"error_{side}")
        return out


@dataclass(frozen=True)
class RetrievalReport:
    k: int
    k_min: int
    queries: tuple[QueryScores, ...]
    aggregate: dict[str, Any] = field(default_factory=dict)

    @property
    def k_label(self) -> str:
        return k_label(self.k, self.k_min)

    def to_json(self, *, per_query: int | None = None) -> dict[str, Any]:
        """The aggregate and the queries (all, or the ``per_query`` that lost most recall)."""
        qs = list(self.queries)
        if per_query is not None and len(qs) > per_query:
            def loss(q: QueryScores) -> float:
                if q.old is None or q.new is None:
                    return math.inf  # a failed query first: it is what needs looking at
                return q.old["recall"] - q.new["recall"] + (q.old["ndcg"] - q.new["ndcg"]) / 10
            keep = {q.name for q in sorted(qs, key=lambda q: (-loss(q), q.name))[:per_query]}
            qs = [q for q in qs if q.name in keep]
        return {"kind": "retrieval", "k": self.k, **({"k_min": self.k_min} if self.k_min != self.k else {}),
                "aggregate": self.aggregate, "queries": [q.to_json() for q in qs],
                "queries_shown": len(qs), "queries_total": len(self.queries)}


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def measure(queries: Sequence[EvalQuery], old: Sequence[Answer], new: Sequence[Answer]) -> RetrievalReport:
    rows: list[QueryScores] = []
    for q, a, b in zip(queries, old, new, strict=True):
        grades = q.grades
        a_ids = top_ids([h.id for h in a.hits], q.k) if a.error is None else []
        b_ids = top_ids([h.id for h in b.hits], q.k) if b.error is None else []
        rows.append(QueryScores(
            name=q.name, k=q.k, relevant=len(grades),
            old=scores(a_ids, grades, q.k) if a.error is None else None,
            new=scores(b_ids, grades, q.k) if b.error is None else None,
            old_ids=tuple(a_ids), new_ids=tuple(b_ids), error_old=a.error, error_new=b.error))
    aggregate: dict[str, Any] = {"queries": len(rows)}
    for side in ("old", "new"):
        answered = [getattr(r, side) for r in rows if getattr(r, side) is not None]
        for m in MEASURES:
            aggregate[f"{m}_{side}"] = _mean([s[m] for s in answered])
        aggregate[f"errors_{side}"] = len(rows) - len(answered)
    for m in MEASURES:
        o, n = aggregate[f"{m}_old"], aggregate[f"{m}_new"]
        aggregate[f"{m}_change"] = None if o is None or n is None else round(n - o, 6)
    return RetrievalReport(k=max((q.k for q in queries), default=0), k_min=min((q.k for q in queries), default=0),
                           queries=tuple(rows), aggregate=aggregate)


@dataclass(frozen=True)
class RetrievalGate:
    """Thresholds on the new side (``min_*``) and on old − new (``max_*_drop``); None: not gated."""

    min_recall: float | None = None
    min_ndcg: float | None = None
    max_recall_drop: float | None = None
    max_ndcg_drop: float | None = None

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrievalGate:
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})

    def check(self, report: RetrievalReport, *, new_name: str, old_name: str) -> list[str]:
        """One sentence per threshold missed, or per side whose queries failed; empty: passed.

        ``new_name`` names the new side ("all-MiniLM-L6-v2", "the target"), ``old_name`` the old
        one as a possessive ("the old model's", "the source's")."""
        a, k = report.aggregate, report.k_label
        out: list[str] = []
        for side, who in (("old", old_name), ("new", new_name)):
            errors = int(a.get(f"errors_{side}") or 0)
            if errors:
                first = next(getattr(q, f"error_{side}") for q in report.queries if getattr(q, f"error_{side}"))
                whose = who if side == "old" else f"{who}'s"
                out.append(f"{errors} of {a['queries']} queries failed on {whose} side, so they were not "
                           f"measured; first: {first}")
        for m, floor, drop in (("recall", self.min_recall, self.max_recall_drop),
                               ("ndcg", self.min_ndcg, self.max_ndcg_drop)):
            new, old = a.get(f"{m}_new"), a.get(f"{m}_old")
            label = f"{LABELS[m]}@{k}"
            if floor is not None and new is not None and new < floor:
                out.append(f"{label} of {new_name} {new:.2f} is below min_{m} {floor:g}"
                           + (f" ({old_name} {old:.2f})" if old is not None else ""))
            # Rounded as the report shows them: 0.80 − 0.75 is 0.05000000000000004 in floats.
            if drop is not None and new is not None and old is not None and round(old - new, 6) > drop:
                out.append(f"{label} of {new_name} {new:.2f} is {old - new:.2f} below {old_name} {old:.2f} "
                           f"(max drop {drop:g})")
        return out
