"""The vector index: the spec's index settings as LanceDB index configs, and when not to build one.

``hnsw`` becomes LanceDB's IVF_HNSW_SQ (HNSW graphs inside IVF partitions, scalar-quantized
vectors: ``m`` and ``ef_construction`` carry over); ``ivfflat`` becomes IVF_FLAT with
``lists`` partitions. Both are trained on the table's rows (k-means for the partitions), so a
table with few rows gets no index: below :data:`MIN_INDEX_ROWS` an exhaustive search is exact
and as fast, and LanceDB would train fewer partitions than asked without failing. The plan
says so (LD001) and ``build_index`` builds nothing then. An ivfflat index asking for more
``lists`` than the table has rows gets one partition per row (what LanceDB trains anyway);
the plan cannot tell in advance, as it samples only the first 200 records.
"""

from __future__ import annotations

from typing import Any, Literal

from vecmig.providers.base import LintFinding
from vecmig.spec import IndexSpec

MIN_INDEX_ROWS = 200
# vecmig's metric names -> LanceDB's distance types.
Distance = Literal["cosine", "l2", "dot"]
DISTANCE: dict[str, Distance] = {"cosine": "cosine", "euclidean": "l2", "dotproduct": "dot"}
INDEX_NAME = "vector_idx"  # LanceDB names a vector index "<column>_idx"; vecmig keeps to it


def distance(metric: str) -> Distance:
    return DISTANCE.get(metric, "cosine")


def config(index: IndexSpec, metric: str, rows: int) -> Any:
    """The LanceDB index config for ``index`` over ``rows`` rows (imports lancedb)."""
    from lancedb.index import HnswSq, IvfFlat

    kind = distance(metric)
    if index.type == "ivfflat":
        # LanceDB would train min(lists, rows) partitions anyway; asking for that is explicit.
        return IvfFlat(distance_type=kind, num_partitions=max(1, min(int(index.lists), rows)))
    return HnswSq(distance_type=kind, m=int(index.m), ef_construction=int(index.ef_construction))


def too_few(rows: int) -> bool:
    return rows < MIN_INDEX_ROWS


def small_table_finding(index: IndexSpec, rows: int) -> LintFinding | None:
    """LD001 when the copy will hold fewer rows than an index is trained on."""
    if index.type == "none":
        return None
    if too_few(rows):
        return LintFinding(
            "LD001", "warning",
            f"the source holds only {rows:,} record(s), fewer than the {MIN_INDEX_ROWS} a LanceDB {index.type} "
            "index is trained on: no index is built, and searches scan the table exhaustively (exact)",
            "nothing to do at this size; create the index later (table.create_index) once the table has grown, "
            "or set target.create.index.type: none to say so in the spec")
    return None


def spec_type(lance_type: str) -> str:
    """LanceDB's index type name as the spec's (IVF_HNSW_SQ -> hnsw), else as LanceDB says it."""
    text = lance_type.lower()
    if "hnsw" in text:
        return "hnsw"
    if "flat" in text:
        return "ivfflat"
    return text


def index_metric(table: Any, name: str) -> str | None:
    """The metric a vector index was built for, in vecmig's words (None when LanceDB does not say)."""
    try:
        stats = table.index_stats(name)
    except Exception:
        return None
    kind = str(getattr(stats, "distance_type", "") or "").lower()
    back: dict[str, str] = {v: k for k, v in DISTANCE.items()}
    return back.get(kind)

