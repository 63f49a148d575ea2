"""Strategy parallel-run on the memory store: a recorded query log replayed against both sides,
the gate deciding the cutover, the report kept in state, and the spec's refusals."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.memory import SOURCE, TARGET, Harness, StopAfter, capture_context
from vecmig.errors import Interrupted, SpecError, StalePlanError, ValidationFailed
from vecmig.providers.memory import store as memory
from vecmig.quality.report import render_markdown
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text

DIM = 8


def write_log(path: Path, n: int = 12, k: int = 5, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        q: dict[str, Any] = {"id": f"q{i}", "vector": [round(float(x), 4) for x in rng.standard_normal(DIM)], "k": k}
        if i % 4 == 3:
            q["filter"] = {"lang": "en"}
        lines.append(json.dumps(q))
    path.write_text("\n".join(lines) + "\n")


def spec_text(replay: str, gate: str = "{min_overlap: 0.9, max_error_rate: 0}", *, target: str = "",
              extra: str = "") -> str:
    conn = {"name": TARGET}
    if target:
        conn.update(json.loads(target))
    return textwrap.dedent(f"""\
        version: 1
        name: prun
        state: {{path: state.db}}
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target:
          provider: memory
          connection: {json.dumps(conn)}
          collection: docs_v2
          alias: docs_live
        strategy:
          type: parallel-run
          batch_size: 100
          concurrency: 1
          replay: {replay}
          gate: {gate}
        """) + extra


def load(h: Harness, text: str) -> Spec:
    return load_spec_text(text, file="spec.yaml", base_dir=h.tmp)


@pytest.fixture
def logged(h: Harness) -> Harness:
    h.seed(400)
    write_log(h.tmp / "queries.jsonl")
    return h


def replay_row(h: Harness, spec: Spec) -> dict[str, Any]:
    state = h.state(spec, create=False)
    assert state is not None
    row = next(a for a in state.all_actions() if a["kind"] == "replay_queries")
    return {"status": row["status"], "result": json.loads(row["result_json"] or "null"), "error": row["error"]}


def test_plan_freezes_the_replay_and_gates_the_cutover(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 30, concurrency: 2, rate: 500}"))
    plan = h.plan(spec)
    kinds = [a.kind for a in plan.actions]
    assert kinds[-2:] == ["replay_queries", "cutover"]
    replay = plan.actions[-2]
    sha = __import__("hashlib").sha256((h.tmp / "queries.jsonl").read_bytes()).hexdigest()
    assert replay.params == {"file": "queries.jsonl", "sha256": sha, "log_queries": 12, "duration": None,
                             "queries": 30, "workers": 2, "concurrency": 1, "rate": 500.0, "k": 10, "exact": False,
                             "metric": "cosine", "dimension": DIM,
                             "gate": {"min_overlap": 0.9, "max_error_rate": 0.0}}
    assert replay.depends_on == (plan.actions[-3].id,)
    assert "replay.queries" in plan.actions[-1].depends_on
    assert "measured whole" in replay.reason and "replays it again from the start" in replay.reason
    assert replay.reverse == "nothing to undo (read-only)" and replay.reversible


def test_good_target_passes_the_gate_and_switches(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 30, concurrency: 2}"))
    notes = StopAfter(10 ** 9)
    h.apply(spec, reporter=notes)
    assert memory.get(TARGET).aliases["docs_live"] == "docs_v2"
    row = replay_row(h, spec)
    assert row["status"] == "done"
    result = row["result"]
    assert result["failures"] == [] and result["queries"] == 30
    agg = result["report"]["aggregate"]
    assert agg["queries"] == 30 and agg["overlap"] == 1.0 and agg["error_rate_target"] == 0.0
    assert agg["latency_source"]["p95"] is not None and agg["latency_target"]["p95"] is not None
    # The log (12 queries) was cycled: the second pass is named apart.
    names = [q["name"] for q in result["report"]["queries"]]
    assert len(names) == len(set(names))
    assert any(n.endswith("#2") for n in names) or result["report"]["queries_total"] == 30
    # The running comparison was shown at least once (the last line always).
    assert any(n.startswith("replay.queries: 30 queries · overlap@5 1.000 · p95") for n in notes.notes)
    md = render_markdown(result["report"], title=result["title"], failures=result["failures"])
    assert "**Gate: passed**" in md and "Parallel run: memory:docs → memory:docs_v2" in md
    # In the audit log too.
    state = h.state(spec, create=False)
    assert state is not None
    events = [e for e in state.audit_events() if "replay.queries" in (e["data_json"] or "")]
    assert any('"failures": []' in e["data_json"] for e in events)


def test_poor_target_fails_the_gate_and_nothing_switches(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 24, concurrency: 2}", target='{"search_noise": 0.4}'))
    with pytest.raises(ValidationFailed, match=r"parallel-run gate failed: overlap@5 0\.60 < 0\.9"):
        h.apply(spec)
    assert "docs_live" not in memory.get(TARGET).aliases
    row = replay_row(h, spec)
    assert row["status"] == "failed" and row["result"]["failures"]
    md = render_markdown(row["result"]["report"], title=row["result"]["title"], failures=row["result"]["failures"])
    assert "**Gate: failed**" in md and "overlap@5 0.60 < 0.9" in md
    statuses = h.statuses(spec)
    assert statuses["cutover.alias"] == "pending"
    # The failed round rolls back like any other: the replay's inverse has nothing to undo.
    h.rollback(spec)
    assert "docs_v2" not in memory.get(TARGET).collections


def test_recall_against_exact_search(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 12, exact: true}", "{min_recall: 0.95}",
                             target='{"search_noise": 0.2}'))
    with pytest.raises(ValidationFailed, match=r"recall@5 0\.80 < 0\.95 on target"):
        h.apply(spec)
    agg = replay_row(h, spec)["result"]["report"]["aggregate"]
    assert agg["recall_source"] == 1.0 and agg["recall_target"] == pytest.approx(0.8)


def test_duration_window_through_apply(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, duration: 0.2s, concurrency: 1, rate: 100}"))
    h.apply(spec)
    result = replay_row(h, spec)["result"]
    assert result["queries"] >= 1 and result["failures"] == []


def test_window_paces_and_cycles_the_log(logged: Harness) -> None:
    """The replay loop on a clock that only moves when it sleeps: paced at 100 queries/s, a 0.3 s
    window sends batches of 4 while it lasts (36 queries: three passes over the 12-query log)."""
    h = logged
    from vecmig.quality.querylog import read_log
    from vecmig.quality.replay import Window, replay

    log = read_log(h.tmp / "queries.jsonl", shown="queries.jsonl", key="k", default_k=5, dimension=DIM).queries
    spec = load(h, spec_text("{file: queries.jsonl, queries: 1}"))
    from vecmig.actions.base import RunContext

    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    state = h.state(spec, create=True)
    assert state is not None
    ctx = RunContext(spec=spec, state=state, round=1)
    out = replay(ctx.source, ctx.source, log, Window(duration=0.3, concurrency=1, rate=100.0),
                 clock=lambda: now[0], sleep=sleep)
    names = [q.name for q in out.report.queries]
    assert len(names) == 36 and names[12] == "q0#2" and names[24] == "q0#3" and len(set(names)) == 36
    assert out.report.aggregate["overlap"] == 1.0 and not out.stopped


def test_log_changed_since_the_plan_is_refused(logged: Harness) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 12}"))
    state = h.state(spec, create=True)
    assert state is not None
    from vecmig.executor import apply_plan
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh

    plan = make_plan(spec, state, refresh(spec))
    write_log(h.tmp / "queries.jsonl", seed=8)
    with pytest.raises(StalePlanError, match=r"query log queries\.jsonl changed since the plan was made"):
        apply_plan(spec, plan, state, approval="auto-approve")
    assert "docs_live" not in memory.get(TARGET).aliases


def test_interrupted_replay_runs_again_whole(logged: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = logged
    spec = load(h, spec_text("{file: queries.jsonl, queries: 200, concurrency: 1}"))

    class StopInReplay(StopAfter):
        def advance(self, action: Any, records: int) -> None:
            if action.kind == "replay_queries" and self.ctx is not None:
                self.ctx.stop.set()

    stopper = StopInReplay(0)
    with capture_context(monkeypatch, stopper), pytest.raises(Interrupted, match="measured whole"):
        h.apply(spec, reporter=stopper)
    assert "docs_live" not in memory.get(TARGET).aliases
    assert h.statuses(spec)["replay.queries"] == "running"
    plan = h.plan(spec)
    assert [a.id for a in plan.actions] == ["replay.queries", "cutover.alias"]
    h.apply(spec)
    assert replay_row(h, spec)["result"]["queries"] == 200
    assert memory.get(TARGET).aliases["docs_live"] == "docs_v2"


@pytest.mark.parametrize(("strategy", "message"), [
    ("{type: parallel-run}", "strategy parallel-run needs strategy.replay"),
    ("{type: parallel-run, replay: {file: q.jsonl}}", "strategy.replay needs duration or queries"),
    ("{type: parallel-run, replay: {file: q.jsonl, duration: soon}}", "'soon' is not a duration"),
    ("{type: big-bang, replay: {file: q.jsonl, queries: 3}}", "strategy.replay applies only to parallel-run"),
    ("{type: big-bang, gate: {min_overlap: 0.9}}", "strategy.gate applies only to parallel-run"),
    ("{type: parallel-run, replay: {file: q.jsonl, queries: 3}, gate: {min_recall: 0.9}}",
     "strategy.gate.min_recall needs recall against exact search"),
    ("{type: parallel-run, replay: {file: q.jsonl, queries: 3}, gate: {min_overlap: 2}}", "/strategy/gate/min_overlap"),
    ("{type: parallel-run, replay: {file: q.jsonl, queries: 3, speed: 2}}", "speed"),
])
def test_spec_refusals_name_the_key(tmp_path: Path, strategy: str, message: str) -> None:
    text = textwrap.dedent(f"""\
        version: 1
        name: prun
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target: {{provider: memory, connection: {{name: {TARGET}}}, collection: docs_v2}}
        strategy: {strategy}
        """)
    with pytest.raises(SpecError) as e:
        load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    assert message in e.value.one_line()
    assert "spec.yaml:" in e.value.one_line()


def test_bad_log_line_is_one_line_at_plan(logged: Harness) -> None:
    h = logged
    (h.tmp / "queries.jsonl").write_text('{"vector": [1, 2, 3]}\n')
    spec = load(h, spec_text("{file: queries.jsonl, queries: 3}"))
    with pytest.raises(SpecError, match=r"queries.jsonl:1: vector has 3 dimensions; the collection has 8"):
        h.plan(spec)


def test_a_gated_measure_nobody_answered_fails_the_gate() -> None:
    from vecmig.actions.replay import unmeasured
    from vecmig.quality import Query, compare
    from vecmig.quality.runner import Answer

    qs = [Query("a", (1.0, 0.0), 3), Query("b", (0.0, 1.0), 3)]
    ok = [Answer(hits=[], seconds=0.01), Answer(hits=[], seconds=0.01)]
    broken = [Answer(error="collection 'x' does not exist"), Answer(error="collection 'x' does not exist")]
    report = compare(qs, ok, broken)
    failed = unmeasured({"min_overlap": 0.9, "max_latency_ratio": 2.0}, report.aggregate, report)
    assert failed == [
        "min_overlap could not be measured: no query was answered by both sides (first error: collection 'x' does "
        "not exist)",
        "max_latency_ratio could not be measured: no query was answered by both sides (first error: collection 'x' "
        "does not exist)"]
    assert unmeasured({"min_overlap": 0.9}, compare(qs, ok, ok).aggregate, compare(qs, ok, ok)) == []


def test_a_store_without_search_is_refused_at_plan(logged: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace as dc_replace

    from vecmig.errors import PlanError
    from vecmig.providers.memory.provider import MemoryProvider

    monkeypatch.setattr(MemoryProvider, "capabilities", dc_replace(MemoryProvider.capabilities, search="none"))
    with pytest.raises(PlanError, match="source provider memory cannot answer nearest-neighbour queries"):
        logged.plan(load(logged, spec_text("{file: queries.jsonl, queries: 3}")))


def test_plan_with_replay_and_watch_matches_the_plan_schema(logged: Harness) -> None:
    import jsonschema

    from vecmig.schemas import load as load_schema

    ro = "rollback_on: {min_overlap: 0.9, queries: {file: queries.jsonl}, watch: 1m}\n"
    plan = logged.plan(load(logged, spec_text("{file: queries.jsonl, queries: 3}", extra=ro)))
    assert [a.kind for a in plan.actions][-3:] == ["replay_queries", "cutover", "watch"]
    watch = plan.actions[-1].params
    assert watch["file"] == "queries.jsonl" and len(watch["sha256"]) == 64 and watch["duration"] == 60.0
    jsonschema.validate(json.loads(plan.to_json_text()), load_schema("plan.v1"))
