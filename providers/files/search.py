"""Exact search over a file (JSONL, Parquet, CSV, VDF): every record is scored.

A file has no index: the answer to a query is the exact top-k, found by scanning the file in
batches, scoring each with :func:`vecmig.search.similarities`, and keeping the best k seen so
far (:func:`vecmig.search.merge`). Memory is one batch plus k hits, whatever the file's size.
Filters are :func:`vecmig.filters.matches` itself (the reference semantics).

JSONL, Parquet and CSV files record no metric, so a query needs one declared:
``connection.metric`` (what the store that reads the file uses). A VDF index records it in
its ``VDF_META.json``; ``connection.metric`` fills in where that says nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import Filter, matches
from vecmig.records import Batch
from vecmig.search import METRICS, Hit, merge, similarities, top_k
from vecmig.spec import StoreSpec

BATCH = 4096  # records scored at a time: bounded memory, few numpy calls

def declared_metric(store: StoreSpec) -> str | None:
    value = (store.connection or {}).get("metric")
    if value is None:
        return None
    if value not in METRICS:
        raise TerminalError(f"{store.pointer[1:] or store.provider}.connection.metric is {value!r}",
                            where=f"{store.pointer}/connection/metric" if store.pointer else None,
                            hint=f"one of {', '.join(METRICS)}")
    return str(value)


def file_metric(store: StoreSpec, recorded: str | None, what: str) -> str:
    """The metric queries use: the one the file records, else the one the spec declares."""
    declared = declared_metric(store)
    if recorded and declared and recorded != declared:
        raise TerminalError(f"{what} records metric {recorded}, but connection.metric says {declared}",
                            where=f"{store.pointer}/connection/metric" if store.pointer else None,
                            hint=f"remove connection.metric, or set it to {recorded}")
    metric = recorded or declared
    if metric is None:
        role = store.pointer[1:] or "source"
        raise TerminalError(f"{what} records no metric, so it cannot be searched",
                            where=f"{store.pointer}/connection" if store.pointer else None,
                            hint=f"declare the metric its readers use: {role}.connection.metric: cosine "
                                 "(or euclidean, dotproduct)")
    return metric


def exact_query(scan: Callable[[], Iterator[Batch]], metric: str, vector: np.ndarray, k: int,
                flt: Filter | None) -> list[Hit]:
    """The exact top-``k`` of the records ``scan`` yields, ties in file order."""
    best: list[Hit] = []
    if k <= 0:
        return best
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    for batch in scan():
        if flt:
            batch = batch.take([i for i, m in enumerate(batch.metadata) if matches(m, flt)])
        if not len(batch):
            continue
        scores = similarities(metric, batch.vectors, query)[0]
        best = merge(best, top_k(scores, batch.ids, k), k)
    return best


def settings(metric: str | None) -> dict[str, Any]:
    return {"type": "exact", "metric": metric}  # every record scored: no index, no knobs
