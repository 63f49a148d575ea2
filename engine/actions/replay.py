"""replay_queries: a parallel-run's window, a query log replayed against both stores, and its gate.

Everything the replay needs is frozen in the plan (:class:`ReplayParams`): the log as the
spec names it and the sha256 of its bytes (a log changed since the plan is refused), the
window, the concurrency and rate, the gate's thresholds. The comparison is shown live
through the reporter's notes; the report is the action's result (state and audit log) in the
shape `vecmig report` renders: ``{"report", "failures", "title"}``. A failed gate raises
:class:`ValidationFailed` with that result, before anything switches.

Read-only: nothing to undo. Interrupted, it stops after the queries in flight and the next
apply replays the window again from the start (a window is measured whole).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import Interrupted, ValidationFailed, VecmigError
from vecmig.model import Action
from vecmig.quality.compare import Gate, Report
from vecmig.quality.exact import exact_answers
from vecmig.quality.querylog import read_planned
from vecmig.quality.replay import Running, Window, replay

NOTE_EVERY_S = 2.0
PER_QUERY_KEPT = 20  # the worst queries kept in the report (the aggregate covers all)
SCAN_BATCH = 1000


@dataclass(frozen=True)
class ReplayParams:
    file: str  # as the spec wrote it (relative to the spec file)
    sha256: str
    log_queries: int
    duration: float | None
    queries: int | None
    workers: int  # queries in flight to each side (replay.concurrency)
    concurrency: int  # actions the plan lets run at once beside it (strategy.concurrency)
    rate: float | None
    k: int
    exact: bool
    metric: str
    dimension: int | None
    gate: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "log_queries": self.log_queries, "duration": self.duration,
                "queries": self.queries, "workers": self.workers, "concurrency": self.concurrency, "rate": self.rate,
                "k": self.k, "exact": self.exact, "metric": self.metric, "dimension": self.dimension,
                "gate": dict(self.gate)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReplayParams:
        return cls(file=str(d["file"]), sha256=str(d["sha256"]), log_queries=int(d.get("log_queries", 0)),
                   duration=float(d["duration"]) if d.get("duration") is not None else None,
                   queries=int(d["queries"]) if d.get("queries") is not None else None,
                   workers=int(d.get("workers", 4)), concurrency=int(d.get("concurrency", 4)),
                   rate=float(d["rate"]) if d.get("rate") is not None else None, k=int(d.get("k", 10)),
                   exact=bool(d.get("exact", False)), metric=str(d.get("metric") or "cosine"),
                   dimension=int(d["dimension"]) if d.get("dimension") is not None else None,
                   gate={str(k): float(v) for k, v in (d.get("gate") or {}).items()})


# A gated measure the replay could not measure fails the gate rather than passing it unseen
# (every query failed on one side: no overlap, no latency to compare).
MEASURED_BY = {"min_overlap": "overlap", "min_recall": "recall_target", "max_recall_drop": "recall_target",
               "max_latency_ratio": "latency_ratio"}


def unmeasured(gate: dict[str, float], aggregate: dict[str, Any], report: Report) -> list[str]:
    out = []
    for key, measure in MEASURED_BY.items():
        if key in gate and report.queries and aggregate.get(measure) is None:
            first = next((q.error_target or q.error_source for q in report.queries
                          if q.error_target or q.error_source), None)
            out.append(f"{key} could not be measured: no query was answered by both sides"
                       + (f" (first error: {first})" if first else ""))
    return out


class ReplayQueries(ActionKind):
    kind = "replay_queries"
    # Read-only, so an executor that schedules by depends_on may run it beside the catch-up.
    effect = "read"
    runs_beside_others = True

    def summarise(self, result: dict[str, Any]) -> str:
        a = (result.get("report") or {}).get("aggregate") or {}
        if not a:
            return ""
        ov = a.get("overlap")
        return (f" · {a.get('queries', 0):,} queries · overlap {ov:.3f}" if ov is not None else "") + (
            " · gate passed" if not result.get("failures") else " · gate failed")

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = ReplayParams.from_json(action.params)
        log = read_planned(ctx.spec.source.path(p.file), shown=p.file, key="strategy.replay.file", default_k=p.k,
                           dimension=p.dimension, sha256=p.sha256).queries
        ctx.reporter.start(action, p.queries or 0, 0)
        exact = None
        if p.exact:
            ctx.reporter.note(f"{action.id}: exact answers for the log's {len(log):,} queries over a source scan")
            src = ctx.source()
            try:
                exact = exact_answers(src.scan(None, None, SCAN_BATCH), log, p.metric)
            finally:
                src.close()
        noted = [0.0]
        shown = [0]

        def progress(r: Running) -> None:
            ctx.reporter.advance(action, r.done - shown[0])
            shown[0] = r.done
            now = time.monotonic()
            if now - noted[0] >= NOTE_EVERY_S:
                noted[0] = now
                ctx.reporter.note(f"{action.id}: {r.line()}")

        window = Window(duration=p.duration, queries=p.queries, concurrency=p.workers, rate=p.rate)
        out = replay(ctx.source, ctx.target, log, window, exact=exact, stop=ctx.stop, on_batch=progress)
        if out.stopped:
            raise Interrupted(f"interrupted: {action.id} stopped after the queries in flight "
                              f"({out.running.done:,} compared); a replay window is measured whole",
                              hint="run `vecmig apply` again: the replay starts over")
        ctx.reporter.note(f"{action.id}: {out.running.line()}")
        report = out.report
        failures = unmeasured(p.gate, report.aggregate, report) + Gate.from_json(p.gate).check(
            report, self._settings(ctx))
        if not report.queries:
            failures.insert(0, "the replay window ended before any query was answered")
        labels = f"{ctx.spec.source.label} → {ctx.spec.target.label}"
        result: dict[str, Any] = {
            "title": f"Parallel run: {labels}",
            "report": report.to_json(per_query=PER_QUERY_KEPT),
            "failures": failures,
            "gate": dict(p.gate),
            "log": {"file": p.file, "sha256": p.sha256, "queries": p.log_queries},
            "queries": len(report.queries),
            "seconds": round(out.running.seconds, 3),
            "queries_per_s": round(len(report.queries) / out.running.seconds, 1) if out.running.seconds else None,
        }
        if failures:
            raise ValidationFailed(f"parallel-run gate failed: {'; '.join(failures)}", result=result,
                                   hint="nothing was switched; fix the target's index or settings, then run "
                                        "`vecmig apply` again to replay the window")
        return result

    def _settings(self, ctx: RunContext) -> dict[str, Any]:
        """The target's search settings, named beside a failure; none when it cannot say."""
        try:
            tgt = ctx.target()
        except VecmigError:
            return {}
        try:
            return tgt.search_settings()
        except VecmigError:
            return {}
        finally:
            tgt.close()
