"""The true top-k of every query: every record scored, nothing approximated.

One pass over the records (any iterable of batches: a provider's scan) scores all queries at
once (a (queries × batch) matrix in float64) and keeps the best ``k`` of each, so memory is
bounded by the batch and the queries, not the collection. Filters are applied with
:func:`vecmig.filters.matches`, the reference semantics every store's translation is tested
against. Recall of each side is measured against this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from vecmig.filters import matches
from vecmig.quality.queries import Query
from vecmig.records import Batch
from vecmig.search import Hit, merge, similarities, top_k


def exact_answers(batches: Iterable[Batch], queries: Sequence[Query], metric: str) -> list[list[Hit]]:
    """For each query, its ``k`` best records by ``metric``, best first (ties in scan order)."""
    best: list[list[Hit]] = [[] for _ in queries]
    if not queries:
        return best
    matrix = np.stack([q.array() for q in queries])
    groups: dict[str, list[int]] = {}  # queries sharing a filter share its mask
    for qi, q in enumerate(queries):
        groups.setdefault(repr(sorted((q.filter or {}).items(), key=str)), []).append(qi)
    for batch in batches:
        if not len(batch):
            continue
        scores = similarities(metric, batch.vectors, matrix)
        for members in groups.values():
            flt = queries[members[0]].filter
            if flt:
                keep = [i for i, m in enumerate(batch.metadata) if matches(m, flt)]
                if not keep:
                    continue
                ids = [batch.ids[i] for i in keep]
                sub = scores[:, keep]
            else:
                ids, sub = batch.ids, scores
            rows = sub[members]
            n, kmax = len(ids), max(queries[qi].k for qi in members)
            # Only candidates are sorted: every score at least the row's kmax-th largest (ties
            # included, so equal scores keep the records' order, as top_k over all would).
            floor = np.partition(rows, n - kmax, axis=1)[:, n - kmax] if n > 4 * kmax else None
            for row, qi in enumerate(members):
                k = queries[qi].k
                if floor is None:
                    hits = top_k(rows[row], ids, k)
                else:
                    cand = np.flatnonzero(rows[row] >= floor[row])
                    hits = top_k(rows[row][cand], [ids[i] for i in cand], k)
                best[qi] = merge(best[qi], hits, k)
    return best
