"""The ``validate.queries`` step of the copy pipeline: query parity before anything switches.

Everything apply needs is frozen into the action's parameters (sample size, seed, k,
concurrency, filters for each side, the thresholds, the query file as written and its sha256),
so apply never re-reads the live spec and refuses a query file changed since the plan.

The estimate: one source scan to draw the sample (when ``sample`` is set), one more for the
exact answers, and every query sent to both sides at the spec's concurrency. A query to a
store that scores every record (``Capabilities.search == "exact"``) costs a read of the
collection at the store's read rate; to an indexed store, :data:`INDEXED_QUERY_S` (an HNSW or
IVF search over a local or regional server answers in single-digit milliseconds; the round trip
dominates). Metered stores add their cost hooks' ``"query"`` line (Pinecone's read units per
query, by the size of the namespace searched) and the two source scans.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from vecmig import estimate
from vecmig.errors import PlanError, SpecError
from vecmig.model import Action, Estimate
from vecmig.providers import stores_that
from vecmig.providers.base import Throughput
from vecmig.quality import Gate
from vecmig.quality.params import QueryGateParams
from vecmig.quality.queries import load_queries
from vecmig.spec import QueriesSpec, Spec, StoreSpec
from vecmig.state.reader import StateReader
from vecmig.strategies.context import PlanContext

KIND = "validate_queries"
ACTION_ID = "validate.queries"
# Seconds one query takes on an indexed store, as planned (see the module's docstring).
INDEXED_QUERY_S = 0.005
AT = "/validate/queries"
# File stores whose file records no metric: their queries use connection.metric or fail.
FILES_WITHOUT_METRIC = ("jsonl", "parquet", "csv")

# How the plan's one line names each threshold.
PHRASES = {
    "min_overlap": "overlap ≥ {v:g}",
    "min_recall": "recall ≥ {v:g}",
    "max_recall_drop": "recall drop ≤ {v:g}",
    "max_latency_ratio": "p95 latency ≤ {v:g}× source",
    "max_score_diff": "score diff ≤ {v:g}",
    "max_error_rate": "errors ≤ {v:.0%}",
}


def gate_of(q: QueriesSpec) -> Gate:
    return Gate(min_overlap=q.min_overlap, min_recall=q.min_recall, max_recall_drop=q.max_recall_drop,
                max_latency_ratio=q.max_latency_ratio, max_score_diff=q.max_score_diff,
                max_error_rate=q.max_error_rate)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(sample: int, from_file: int, k: int, gate: dict[str, float]) -> str:
    """"200 sampled + 35 file queries, k=10: overlap ≥ 0.95, recall ≥ 0.9"."""
    parts = [f"{sample:,} sampled" if sample else "", f"{from_file:,} file" if from_file else ""]
    what = " + ".join(p for p in parts if p) + " queries"
    checks = ", ".join(PHRASES[key].format(v=value) for key, value in gate.items() if key in PHRASES)
    return f"{what}, k={k}: {checks or 'measured, nothing gated'}"


def validate_queries(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    q = ctx.spec.validate.queries
    if q is None:
        return []
    for side, store, cls in (("source", ctx.spec.source, ctx.source_cls), ("target", ctx.spec.target, ctx.target_cls)):
        _check_searchable(ctx, side, store, cls.capabilities.search, cls.capabilities.search_filters)
    written = ((ctx.spec.public.get("validate") or {}).get("queries") or {}).get("file")
    from_file = _file_queries(ctx, q)
    renames = dict(ctx.spec.mapping.rename)
    gate = gate_of(q).to_json()
    params = QueryGateParams(
        k=q.k, metric=ctx.source.metric or ctx.schema.metric, sample=q.sample, seed=q.seed,
        concurrency=q.concurrency, filter=q.filter, renames=renames, gate=gate, batch_size=ctx.copy_batch,
        file=written, sha256=file_digest(q.path) if q.path is not None else None, file_queries=from_file,
    ).to_json()
    # A sample larger than the source is every record: say so, and estimate that many queries
    # (the plan said "100,000 sampled" of a 30-record source and timed 100,000 queries).
    sampled = q.sample
    if q.sample and ctx.source.count_exact and ctx.source.count is not None and ctx.source.count < q.sample:
        sampled = ctx.source.count
    n_queries = sampled + from_file
    reason = summary(sampled, from_file, q.k, gate)
    if sampled != q.sample:
        reason += f" (sample: {q.sample:,}; the source holds {sampled:,} records, all sampled)"
    return [Action(
        id=ACTION_ID,
        kind=KIND,
        reason=reason,
        depends_on=after,
        params=params,
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=_estimate(ctx, q, n_queries),
    )]


def _check_searchable(ctx: PlanContext, side: str, store: StoreSpec, search: str, filters: bool) -> None:
    if search == "none":
        raise PlanError(f"{side} {store.label} cannot answer nearest-neighbour queries ({store.provider} has no "
                        "search in vecmig), so validate.queries cannot compare it",
                        where=ctx.spec.where(AT),
                        hint="remove validate.queries, or use stores with search "
                             f"({stores_that(lambda c: c.capabilities.search != 'none')})")
    if store.provider in FILES_WITHOUT_METRIC and not (store.connection or {}).get("metric"):
        # Caught here, before the copy: every query of such a file fails ("records no metric").
        raise PlanError(f"{side} {store.label} records no metric, so validate.queries cannot search it",
                        where=ctx.spec.where(f"/{side}/connection"),
                        hint=f"declare the metric its readers use: {side}.connection.metric: cosine "
                             "(or euclidean, dotproduct)")
    q = ctx.spec.validate.queries
    uses_filter = q is not None and (q.filter is not None or _file_filters(q))
    if uses_filter and not filters:
        raise PlanError(f"{side} {store.label} cannot filter queries by metadata, and validate.queries has filters",
                        where=ctx.spec.where(AT),
                        hint="remove the filters, or use stores that filter "
                             f"({stores_that(lambda c: c.capabilities.search_filters)})")


def _file_filters(q: QueriesSpec) -> bool:
    if q.path is None:
        return False
    return any(x.filter for x in load_queries(q.path, shown=str(q.file), default_k=q.k, dimension=None))


def _file_queries(ctx: PlanContext, q: QueriesSpec) -> int:
    """How many queries the file holds, checked against the collection's dimension."""
    if q.path is None:
        return 0
    try:
        return len(load_queries(q.path, shown=str(q.file), default_k=q.k, dimension=ctx.schema.dimension,
                                default_filter=q.filter))
    except SpecError as e:
        raise PlanError(e.message, where=ctx.spec.where(f"{AT}/file"), hint=e.hint) from None


def per_query_seconds(search: str, model: Throughput, records: int) -> float:
    if search == "exact":
        return records / model.read_records_per_s if model.read_records_per_s > 0 else INDEXED_QUERY_S
    return INDEXED_QUERY_S


def _estimate(ctx: PlanContext, q: QueriesSpec, n_queries: int) -> Estimate:
    n = ctx.total_records or (ctx.source.count or 0)
    nbytes = n * ctx.bytes_per_record
    passes = 2 if q.sample else 1
    scans = estimate.scan_estimate(n, nbytes, ctx.read_model, passes=passes)
    centre = math.sqrt(scans.seconds_low * scans.seconds_high) if scans.seconds_low > 0 else 0.0
    workers = max(1, min(q.concurrency, n_queries or 1))
    for cls, model in ((ctx.source_cls, ctx.read_model), (ctx.target_cls, ctx.write_model)):
        centre += n_queries * per_query_seconds(cls.capabilities.search, model, n) / workers
    est = estimate.around(centre)
    cost = [ctx.cost(side, "query", n_queries, nbytes=nbytes) for side in ("source", "target")]
    cost += [ctx.cost("source", "scan", n) for _ in range(passes)]
    return estimate.with_cost(Estimate(seconds_low=est.seconds_low,
                                       seconds_high=est.seconds_high), *cost)


def query_file_changed(spec: Spec, state: StateReader, round_no: int) -> str | None:
    """Why an open round cannot resume its gate: the query file it froze changed since (its
    sha256 differs, or it is gone). The round is then planned afresh with the file as it is."""
    q = spec.validate.queries
    for row in state.actions(round_no):
        if row["kind"] != KIND or row["status"] == "done":
            continue
        planned = json.loads(row["params_json"]).get("params", {}).get("sha256")
        if planned is None:
            continue
        now = file_digest(q.path) if q is not None and q.path is not None and q.path.is_file() else None
        if now != planned:
            return "the query file of validate.queries changed since it started"
    return None
