"""validate_queries: the same queries on source and target, gated before anything switches.

The queries are the plan's: a sample of source records' vectors (by seed) and/or the query
file, which must be byte for byte the file the plan hashed. The exact top-k of every query is
computed over the *source* in one scan: this runs after the copy and completeness, so the
target holds the same records, and the source is the reference either way (a target that lost
records must not lower the bar it is measured against). Both sides then answer every query
at the plan's concurrency (one provider per worker thread), the target with filters in its own
field names. :func:`vecmig.quality.compare` measures the answers; the gate's failures name the
target's search settings (``ivfflat lists=1000 probes=1``) and what to change.

A failed gate raises :class:`ValidationFailed` carrying the report: the executor keeps it in
state and the audit log, and the cutover after this action does not run. Its message never
says "completeness check failed", so the next apply resumes the round and runs the gate again
(after the target was fixed) instead of re-copying records that are fine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import Interrupted, ValidationFailed
from vecmig.filters import matches, rename
from vecmig.model import Action
from vecmig.providers.base import Provider
from vecmig.quality import Gate, Query, compare, load_queries, run_queries, sample_queries
from vecmig.quality.compare import Report
from vecmig.quality.exact import exact_answers
from vecmig.quality.frozen_file import check_frozen
from vecmig.quality.params import QueryGateParams
from vecmig.quality.runner import Answer, Call
from vecmig.spec import StoreSpec
from vecmig.state.rows import ActionRow

TITLE = "Query parity (validate.queries)"
PER_QUERY = 50  # queries kept per report in state: the worst by overlap and recall


def query_file(ctx: RunContext, written: str) -> Path:
    """The plan's query file (as written, ``${env:...}`` already resolved), relative to the spec."""
    p = Path(written).expanduser()
    return p if p.is_absolute() else ctx.spec.source.base_dir / p


def summarise_report(result: dict[str, Any]) -> str:
    """" · overlap 1.00 · target recall 0.98" from a comparison report result."""
    a = (result.get("report") or {}).get("aggregate") or {}
    return "".join(f" · {label} {a[key]:.2f}" for key, label in (
        ("overlap", "overlap"), ("recall_target", "target recall")) if isinstance(a.get(key), float | int))


def _kept(q: Query, restrict: dict[str, Any] | None) -> Query:
    """The query kept to a wave's records: its own filter and the wave's, both."""
    if not restrict:
        return q
    return replace(q, filter={"$and": [restrict, q.filter]} if q.filter else dict(restrict))


def _opener(ctx: RunContext, store: StoreSpec, namespace: str | None) -> Callable[[], Provider]:
    """Opens ``store`` (in ``namespace``, a wave's, when given): one provider per caller."""
    if namespace is None:
        return lambda: ctx.provider(store)
    within = replace(store, namespace=namespace)
    return lambda: ctx.provider(within)


# What each threshold needs measured: a gated measure no query could give fails the gate.
NEEDS = {"min_overlap": ("overlap",), "min_recall": ("recall_target",),
         "max_recall_drop": ("recall_source", "recall_target"), "max_latency_ratio": ("latency_ratio",)}


def gate_failures(gate: Gate, report: Report, target_settings: dict[str, Any]) -> list[str]:
    """The gate's failures, and those it cannot see: the source is the reference, so its failed
    queries compared nothing (a JSONL source with no metric failed every query; overlap and the
    recall drop were then None, skipped, and the gate passed), and a gated measure that no query
    gave is a failure, never a pass."""
    out = gate.check(report, target_settings)
    a = report.aggregate
    es = a.get("error_rate_source") or 0.0
    if gate.max_error_rate is not None and es > gate.max_error_rate:
        first = next((q.error_source for q in report.queries if q.error_source), "")
        out.append(f"{es:.1%} of source queries failed (at most {gate.max_error_rate:.1%}), so their parity was "
                   f"not measured; first: {first}")
    if report.queries:
        thresholds = gate.to_json()
        for key, measures in NEEDS.items():
            missing = [m for m in measures if a.get(m) is None]
            if key in thresholds and missing:
                err = next((q.error_source or q.error_target for q in report.queries
                            if q.error_source or q.error_target), None)
                out.append(f"{key} could not be measured ({missing[0]}: no query answered)"
                           + (f"; first error: {err}" if err else ""))
    return out


def all_empty(queries: list[Query], source: list[Answer], target: list[Answer]) -> list[str]:
    """Every query answered by nothing on both sides compares nothing (two empty answers "agree"):
    a filter on a field no record holds ({"lang": ...} when the source calls it "language")
    passed every gate with overlap 1.00."""
    if queries and all(s.error is None and t.error is None and not s.hits and not t.hits
                       for s, t in zip(source, target, strict=True)):
        where = next((f" (filter {q.filter})" for q in queries if q.filter), "")
        return [f"all {len(queries)} queries found no record on either side{where}, so nothing was compared; "
                "check the filter's field names (the source's) and values"]
    return []


class ValidateQueries(ActionKind):
    kind = "validate_queries"
    # Read-only: it may run beside other readers (declared for the scheduler that reads it).
    effect = "read"
    runs_beside_others = True

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = QueryGateParams.from_json(action.params)
        queries = [_kept(q, p.restrict) for q in self._file_queries(ctx, p)]
        seconds: dict[str, float] = {}
        open_source = _opener(ctx, ctx.spec.source, p.namespace)
        open_target = _opener(ctx, ctx.spec.target, p.namespace)
        src = open_source()
        try:
            started = time.perf_counter()
            if p.sample:
                records = (b.take([i for i, m in enumerate(b.metadata) if matches(m, p.restrict)]) if p.restrict
                           else b for b in src.scan(None, None, p.batch_size))
                sampled = sample_queries(records, p.sample, seed=p.seed, k=p.k, flt=p.filter)
                queries = [_kept(q, p.restrict) for q in sampled] + queries
            seconds["sample"] = time.perf_counter() - started
            ctx.reporter.start(action, 2 * len(queries), 0)
            started = time.perf_counter()
            exact = exact_answers(src.scan(None, None, p.batch_size), queries, p.metric)
            seconds["exact"] = time.perf_counter() - started
            source_settings = src.search_settings()
        finally:
            src.close()
        ans_s, wall_s = self._ask(ctx, action, open_source, [Call(q.array(), q.k, q.filter) for q in queries],
                                  p.concurrency)
        ans_t, wall_t = self._ask(ctx, action, open_target,
                                  [Call(q.array(), q.k, rename(q.filter, p.renames) if q.filter else None)
                                   for q in queries],
                                  p.concurrency)
        if ctx.stop.is_set():
            raise Interrupted("interrupted during validate.queries (read-only: it runs again from its start)",
                              hint="run `vecmig apply` again to resume")
        tgt = open_target()
        try:
            target_settings = tgt.search_settings()
        finally:
            tgt.close()
        report = compare(queries, ans_s, ans_t, exact, wall_source=wall_s, wall_target=wall_t)
        gate = Gate.from_json(p.gate)
        failures = gate_failures(gate, report, target_settings)
        failures += all_empty(queries, ans_s, ans_t)
        result: dict[str, Any] = {
            "title": TITLE,
            "ok": not failures,
            "report": report.to_json(per_query=PER_QUERY),
            "failures": failures,
            "gate": gate.to_json(),
            "search_settings": {"source": source_settings, "target": target_settings},
            "queries": {"sample": sum(1 for q in queries if q.source_id is not None),
                        "file": sum(1 for q in queries if q.source_id is None), "k": p.k},
            # Where the gate's time went: the sample's scan, the exact answers' scan and scoring,
            # each side's queries (wall time at the plan's concurrency).
            "seconds": {k: round(v, 3) for k, v in {**seconds, "source_queries": wall_s,
                                                    "target_queries": wall_t}.items()},
        }
        sm, tm = source_settings.get("metric"), target_settings.get("metric")
        if sm and tm and str(sm) != str(tm):
            result["notes"] = [f"the target searches by {tm}, the source by {sm}"]
        if failures:
            raise ValidationFailed(
                "query parity failed: " + "; ".join(failures + result.get("notes", [])), result=result,
                hint="nothing was switched; fix the target's search settings and run `vecmig apply` again "
                     "(`vecmig report SPEC` shows every measure)")
        return result

    def summarise(self, result: dict[str, Any]) -> str:
        return summarise_report(result)

    def _file_queries(self, ctx: RunContext, p: QueryGateParams) -> list[Query]:
        if not p.file:
            return []
        path = query_file(ctx, p.file)
        check_frozen(path, shown=p.file, planned_sha256=str(p.sha256), noun="query file", key="validate.queries",
                     measures="the gate runs the queries it was planned with or none")
        return load_queries(path, shown=p.file, default_k=p.k, dimension=None, default_filter=p.filter)

    def _ask(self, ctx: RunContext, action: Action, open_provider: Any, calls: list[Call],
             concurrency: int) -> tuple[list[Answer], float]:
        lock = threading.Lock()

        def seen(_: int, __: Answer) -> None:
            with lock:
                ctx.reporter.advance(action, 1)

        started = time.perf_counter()
        answers = run_queries(open_provider, calls, concurrency=concurrency, stop=ctx.stop, on_answer=seen)
        return answers, time.perf_counter() - started

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        return None  # read-only
