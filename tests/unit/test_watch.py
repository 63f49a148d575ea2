"""Rollback triggers on the memory store: `vecmig watch` after a cutover (healthy: passes its
window; degraded: switches readers back, says why in the audit log, exits 3), nothing to watch,
the watch step of apply, and the spec's refusals."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.memory import SOURCE, Harness
from tests.unit.test_operations import RecordingUi
from vecmig import watch as core
from vecmig.errors import SpecError, VecmigError
from vecmig.operations.watch import WatchRequest, watch
from vecmig.providers.memory import store as memory
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.spec_runs import QuerySourceSpec
from vecmig.watch import EXIT_TRIGGERED, RollbackTriggered

TRIGGERS = "{min_overlap: 0.9, max_error_rate: 0, queries: {sample: 20, k: 10}, interval: 0.05s}"


def spec_text(rollback_on: str | None = TRIGGERS, *, noise: float = 0.0) -> str:
    """Blue-green inside one memory store: readers of docs_live move from docs to docs_v2."""
    conn: dict[str, Any] = {"name": SOURCE}
    if noise:
        conn["search_noise"] = noise
    return textwrap.dedent(f"""\
        version: 1
        name: watched
        state: {{path: state.db}}
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target:
          provider: memory
          connection: {json.dumps(conn)}
          collection: docs_v2
          alias: docs_live
        strategy: {{type: blue-green, batch_size: 200, concurrency: 1}}
        """) + (f"rollback_on: {rollback_on}\n" if rollback_on else "")


def write(h: Harness, name: str, text: str) -> Path:
    path = h.tmp / name
    path.write_text(text)
    return path


def load(h: Harness, text: str) -> Spec:
    return load_spec_text(text, file="spec.yaml", base_dir=h.tmp)


@pytest.fixture
def cut_over(h: Harness) -> Harness:
    """400 records in docs, readers on docs; applied: readers on docs_v2."""
    h.seed(400)
    memory.get(SOURCE).aliases["docs_live"] = "docs"
    h.apply(load(h, spec_text()))
    assert memory.get(SOURCE).aliases["docs_live"] == "docs_v2"
    return h


def audit(h: Harness) -> list[tuple[str, dict[str, Any]]]:
    state = h.state(load(h, spec_text()), create=False)
    assert state is not None
    return [(e["event"], json.loads(e["data_json"] or "{}")) for e in state.audit_events()]


def test_healthy_target_passes_its_window(cut_over: Harness) -> None:
    h = cut_over
    ui = RecordingUi()
    result = watch(WatchRequest(write(h, "spec.yaml", spec_text()), duration=0.3, interval=0.05), ui)
    assert len(result.rounds) >= 1 and result.cutover == "cutover.alias" and result.round == 1
    assert all(r.fired == () and r.overlap == 1.0 and r.error_rate == 0.0 for r in result.rounds)
    assert ui.said[0].startswith("Watching memory:docs_v2 against memory:docs (cutover cutover.alias, round 1)")
    assert [line.split(":")[0] for line in ui.said[1:]] == [f"round {r.no}" for r in result.rounds]
    assert all(line.endswith("· ok") for line in ui.said[1:])
    rounds = [d for e, d in audit(h) if e == "watch_round"]
    assert [d["round"] for d in rounds] == [r.no for r in result.rounds]
    assert memory.get(SOURCE).aliases["docs_live"] == "docs_v2"


def test_rounds_repeat_every_interval_until_the_window_ends(cut_over: Harness) -> None:
    """The core loop on a clock that moves 0.1 s per reading: rounds at 0.1, 0.3, ..., 0.9 of a 1 s window."""
    h = cut_over
    spec = load(h, spec_text())
    state = h.state(spec, create=False)
    assert state is not None
    live = core.live_cutover(state)
    assert live is not None
    queries, digest = core.queries_for(spec, QuerySourceSpec(sample=5, k=3))
    assert len(queries) == 5 and digest is None
    ticks = iter(i / 10 for i in range(1000))
    said: list[str] = []
    out = core.watch(spec, state, live, {"min_overlap": 0.9}, queries, duration=1.0, interval=0.001, concurrency=2,
                     say=said.append, clock=lambda: next(ticks))
    assert [r.no for r in out.rounds] == [1, 2, 3, 4, 5] and not out.stopped
    assert len(said) == 5


def test_degraded_target_switches_readers_back(cut_over: Harness) -> None:
    h = cut_over
    # The new collection degrades after the cutover (its index tuned down): a second spec whose
    # target answers as a poor index does.
    degraded = write(h, "degraded.yaml", spec_text(noise=0.5))
    ui = RecordingUi()
    with pytest.raises(RollbackTriggered) as e:
        watch(WatchRequest(degraded, duration=60.0, interval=0.05), ui)
    assert e.value.exit_code == EXIT_TRIGGERED == 3
    assert "rollback triggered in watch round 1: overlap 0.500 < min_overlap 0.9" in e.value.one_line()
    assert memory.get(SOURCE).aliases["docs_live"] == "docs"  # readers are back on the old collection
    assert "TRIGGERED: overlap 0.500 < min_overlap 0.9" in ui.said[-1]
    fired = [d for ev, d in audit(h) if ev == "rollback_triggered"]
    assert len(fired) == 1
    assert (fired[0]["trigger"], fired[0]["value"], fired[0]["threshold"]) == ("min_overlap", 0.5, 0.9)
    assert fired[0]["cutover"] == "cutover.alias" and fired[0]["migration_round"] == 1
    assert h.statuses(load(h, spec_text()))["cutover.alias"] == "rolled_back"
    # Nothing is live any more: a second watch has nothing to watch.
    with pytest.raises(VecmigError, match="nothing to watch: no cutover of this migration is live"):
        watch(WatchRequest(degraded, duration=1.0, interval=0.05), RecordingUi())
    # The data stayed: rollback of the rest still works and drops the new collection.
    assert h.rollback(load(h, spec_text())) >= 1
    assert "docs_v2" not in memory.get(SOURCE).collections


def test_nothing_to_watch(h: Harness) -> None:
    h.seed(50)
    path = write(h, "spec.yaml", spec_text())
    with pytest.raises(VecmigError, match="nothing to watch: this migration was never applied") as e:
        watch(WatchRequest(path, duration=1.0), RecordingUi())
    assert e.value.exit_code == 1
    bare = write(h, "bare.yaml", spec_text(None))
    with pytest.raises(VecmigError, match="nothing to watch: the spec has no rollback_on"):
        watch(WatchRequest(bare, duration=1.0), RecordingUi())


def test_watch_step_of_apply_switches_back_and_fails_the_apply(h: Harness) -> None:
    h.seed(400)
    memory.get(SOURCE).aliases["docs_live"] = "docs"
    ro = "{min_overlap: 0.9, queries: {sample: 10}, interval: 0.05s, watch: 0.2s}"
    plan = h.plan(load(h, spec_text(ro)))
    ids = [a.id for a in plan.actions]
    assert ids[-2:] == ["cutover.alias", "watch.target"]
    step = plan.actions[-1]
    assert step.params["triggers"] == {"min_overlap": 0.9} and step.params["duration"] == 0.2
    assert "readers are switched back" in step.reason
    with pytest.raises(RollbackTriggered, match=r"overlap 0\.500 < min_overlap 0\.9"):
        h.apply(load(h, spec_text(ro, noise=0.5)))
    assert memory.get(SOURCE).aliases["docs_live"] == "docs"
    statuses = h.statuses(load(h, spec_text(ro)))
    assert statuses["cutover.alias"] == "rolled_back" and statuses["watch.target"] == "failed"


def test_watch_step_passes_on_a_healthy_target(h: Harness) -> None:
    h.seed(400)
    ro = "{min_overlap: 0.9, max_p95_ratio: 1000, queries: {sample: 10}, interval: 0.05s, watch: 0.15s}"
    spec = load(h, spec_text(ro))
    h.apply(spec)
    assert memory.get(SOURCE).aliases["docs_live"] == "docs_v2"
    state = h.state(spec, create=False)
    assert state is not None
    row = state.action(1, "watch.target")
    assert row is not None and row["status"] == "done"
    rounds = json.loads(row["result_json"])["rounds"]
    assert len(rounds) >= 1 and all(r["fired"] == [] and r["overlap"] == 1.0 for r in rounds)


@pytest.mark.parametrize(("rollback_on", "message"), [
    ("{interval: 30s}", "rollback_on names no trigger"),
    ("{min_overlap: 1.5}", "/rollback_on/min_overlap"),
    ("{min_overlap: 0.9, interval: often}", "'often' is not a duration"),
    ("{min_overlap: 0.9, queries: {sampel: 3}}", "sampel"),
])
def test_spec_refusals(h: Harness, rollback_on: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        load(h, spec_text(rollback_on))
    assert message in e.value.one_line() and "spec.yaml:" in e.value.one_line()


def test_rollback_on_needs_something_to_switch(h: Harness) -> None:
    text = spec_text().replace("  alias: docs_live\n", "").replace("blue-green", "big-bang")
    with pytest.raises(SpecError, match="the target has no alias or pointer to switch"):
        load(h, text)
