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

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import Interrupted, StalePlanError, ValidationFailed
from vecmig.model import Action
from vecmig.quality import Gate, Query, compare, load_queries, run_queries, sample_queries
from vecmig.quality.exact import exact_answers
from vecmig.quality.runner import Answer, Call
from vecmig.state.rows import ActionRow
from vecmig.strategies.queries import target_filter

TITLE = "Query parity (validate.queries)"
PER_QUERY = 50  # queries kept per report in state: the worst by overlap and recall


def query_file(ctx: RunContext, written: str) -> Path:
    """The plan's query file (as written, ``${env:...}`` already resolved), relative to the spec."""
    p = Path(written).expanduser()
    return p if p.is_absolute() else ctx.spec.source.base_dir / p


class ValidateQueries(ActionKind):
    kind = "validate_queries"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = action.params
        k, flt = int(p["k"]), p.get("filter")
        queries = self._file_queries(ctx, p)
        src = ctx.source()
        try:
            batch = int(p.get("batch_size") or 1000)
            if p.get("sample"):
                queries = sample_queries(src.scan(None, None, batch), int(p["sample"]), seed=int(p.get("seed", 0)),
                                         k=k, flt=flt) + queries
            ctx.reporter.start(action, 2 * len(queries), 0)
            exact = exact_answers(src.scan(None, None, batch), queries, str(p["metric"]))
            source_settings = src.search_settings()
        finally:
            src.close()
        renames = dict(p.get("renames") or {})
        ans_s, wall_s = self._ask(ctx, action, ctx.source, [Call(q.array(), q.k, q.filter) for q in queries], p)
        ans_t, wall_t = self._ask(ctx, action, ctx.target,
                                  [Call(q.array(), q.k, target_filter(q.filter, renames)) for q in queries], p)
        if ctx.stop.is_set():
            raise Interrupted("interrupted during validate.queries (read-only: it runs again from its start)",
                              hint="run `vecmig apply` again to resume")
        tgt = ctx.target()
        try:
            target_settings = tgt.search_settings()
        finally:
            tgt.close()
        report = compare(queries, ans_s, ans_t, exact, wall_source=wall_s, wall_target=wall_t)
        gate = Gate.from_json(p.get("gate") or {})
        failures = gate.check(report, target_settings)
        result: dict[str, Any] = {
            "title": TITLE,
            "ok": not failures,
            "report": report.to_json(per_query=PER_QUERY),
            "failures": failures,
            "gate": gate.to_json(),
            "search_settings": {"source": source_settings, "target": target_settings},
            "queries": {"sample": sum(1 for q in queries if q.source_id is not None),
                        "file": sum(1 for q in queries if q.source_id is None), "k": k},
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

    def _file_queries(self, ctx: RunContext, p: dict[str, Any]) -> list[Query]:
        written = p.get("file")
        if not written:
            return []
        path = query_file(ctx, str(written))
        try:
            data = path.read_bytes()
        except OSError as e:
            raise StalePlanError(f"query file {written} planned for validate.queries cannot be read now: "
                                 f"{e.strerror or e}", hint="restore it, or plan again") from None
        now = hashlib.sha256(data).hexdigest()
        if now != p.get("sha256"):
            raise StalePlanError(f"query file {written} changed since the plan (sha256 {str(p.get('sha256'))[:12]}… "
                                 f"planned, {now[:12]}… now)",
                                 hint="run `vecmig plan`/`vecmig apply SPEC` again: the gate runs the queries it "
                                      "was planned with or none")
        return load_queries(path, shown=str(written), default_k=int(p["k"]), dimension=None,
                            default_filter=p.get("filter"))

    def _ask(self, ctx: RunContext, action: Action, open_provider: Any, calls: list[Call],
             p: dict[str, Any]) -> tuple[list[Answer], float]:
        lock = threading.Lock()

        def seen(_: int, __: Answer) -> None:
            with lock:
                ctx.reporter.advance(action, 1)

        started = time.perf_counter()
        answers = run_queries(open_provider, calls, concurrency=int(p.get("concurrency") or 1), stop=ctx.stop,
                              on_answer=seen)
        return answers, time.perf_counter() - started

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        return None  # read-only
