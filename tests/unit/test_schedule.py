"""The executor follows the plan's graph (vecmig.schedule): ready actions that run beside others
run together, an exclusive one runs alone, plan order breaks ties, and a graph it cannot run
(a cycle, an unknown dependency) is refused in one line before anything runs."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest

from tests.support.memory import Harness, same, spec_text
from tests.unit.test_operations import RecordingUi
from vecmig import planfile
from vecmig.actions import KINDS, ActionKind, RunContext
from vecmig.errors import Interrupted, VecmigError
from vecmig.executor import apply_plan
from vecmig.model import Action, Plan, canonical_json, sha256_hex
from vecmig.operations import apply as apply_ops
from vecmig.operations.plan import PlanRequest, plan
from vecmig.render import symbol
from vecmig.rollback import inverses, pending_undo
from vecmig.schedule import check_graph, run_graph

GOLDEN = Path(__file__).parent / "golden"
WAIT_S = 20.0  # only how long a broken barrier takes to fail the test; nothing is timed


class Probe(ActionKind):
    """A test-only kind: records when it runs and, where asked, waits for a partner to be running."""

    kind = "probe"
    runs_beside_others = True
    effect = "read"
    log: ClassVar[list[tuple[str, str, int]]] = []
    running: ClassVar[int] = 0
    lock = threading.Lock()
    barrier: ClassVar[threading.Barrier | None] = None

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        with Probe.lock:
            Probe.log.append(("start", action.id, Probe.running))
            Probe.running += 1
        try:
            if action.params.get("meet") and Probe.barrier is not None:
                Probe.barrier.wait()  # breaks (and fails the action) unless its partner runs at the same time
        finally:
            with Probe.lock:
                Probe.running -= 1
                Probe.log.append(("end", action.id, Probe.running))
        return {"probed": action.id}


class AloneProbe(Probe):
    kind = "alone_probe"
    runs_beside_others = False
    effect = "change"


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "probe", Probe())
    monkeypatch.setitem(KINDS, "alone_probe", AloneProbe())
    monkeypatch.setattr(Probe, "log", [])
    monkeypatch.setattr(Probe, "running", 0)
    monkeypatch.setattr(Probe, "barrier", threading.Barrier(2, timeout=WAIT_S))


def act(aid: str, *deps: str, kind: str = "probe", **params: Any) -> Action:
    return Action(id=aid, kind=kind, reason="test", depends_on=deps, params=params)


def test_two_ready_non_copy_actions_that_run_beside_others_run_at_the_same_time(h: Harness, probes: None) -> None:
    """As a parallel-run's query-log replay beside the cdc catch-up: both wait on the copy's validation."""
    h.seed(1000)
    spec = h.spec(concurrency=2)
    made = h.plan(spec)
    check = next(a for a in made.actions if a.kind == "validate_completeness")
    extra = (act("replay", check.id, meet=True), act("catch_up", check.id, meet=True),
             act("after_both", "replay", "catch_up", kind="alone_probe"))
    state = h.state(spec, create=True)
    assert state is not None
    apply_plan(spec, replace(made, actions=made.actions + extra), state, approval="auto-approve")
    starts = [(aid, running) for what, aid, running in Probe.log if what == "start"]
    assert {aid for aid, _ in starts[:2]} == {"replay", "catch_up"}
    assert starts[2] == ("after_both", 0), "the exclusive action starts only once both ended"
    assert {a["action_id"]: a["status"] for a in state.actions(made.round)}["after_both"] == "done"
    same(h.source, "docs", h.target, "docs_v2")


def test_an_exclusive_action_runs_alone_and_blocks_later_ones(probes: None) -> None:
    # alone and b are both ready; alone is first in plan order: b waits for it, then b and c run together.
    actions = [act("a"), act("alone", "a", kind="alone_probe"), act("b", "a", meet=True), act("c", "a", meet=True)]
    ran = run_graph(_ctx(), actions, lambda x: KINDS[x.kind].run(_ctx(), x), workers=4)
    starts = [(aid, running) for what, aid, running in Probe.log if what == "start"]
    assert starts[:2] == [("a", 0), ("alone", 0)]
    assert {aid for aid, _ in starts[2:]} == {"b", "c"}
    assert set(ran) == {"probe", "alone_probe"}


def test_a_failure_beside_others_stops_them_and_is_raised(probes: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx()
    seen: list[str] = []

    def one(a: Action) -> None:
        if a.id == "bad":
            raise VecmigError("bad failed")
        assert ctx.stop.wait(WAIT_S), "the failure asks the others to stop"
        seen.append(a.id)

    with pytest.raises(VecmigError, match="bad failed"):
        run_graph(ctx, [act("slow"), act("bad"), act("later", "slow")], one, workers=2)
    assert seen == ["slow"], "nothing starts after a failure"


def test_plan_order_breaks_ties_so_every_golden_plan_runs_in_its_order(h: Harness) -> None:
    found = [json.loads(p.read_text()) for p in sorted(GOLDEN.glob("*.json"))]
    plans = [Plan.from_json(d) for d in found if "actions" in d]  # some goldens are the one-line refusal
    h.seed(2500)
    plans.append(h.plan(h.spec("cdc", batch_size=250, shard_size=1000)))  # the memory source catches up by diffs
    assert len(plans) > 10
    for p in plans:
        order: list[str] = []
        outside = {d for a in p.actions for d in a.depends_on} - {a.id for a in p.actions}
        run_graph(_ctx(), p.actions, lambda a, seen=order: seen.append(a.id), workers=1, done=outside)
        assert order == [a.id for a in p.actions], p.strategy


@pytest.mark.parametrize(("actions", "message"), [
    ([act("a", "b"), act("b", "c"), act("c", "a")], r"cycle \(each waits for the next\): a → b → c → a"),
    ([act("a", "a")], "cycle .*: a → a"),
    ([act("a"), act("b", "nope")], "b depends on nope, which is not in the plan"),
    ([act("a"), act("a")], "two actions with id a"),
    ([act("a", kind="teleport")], "kind 'teleport', which this vecmig does not know"),
])
def test_a_graph_the_scheduler_cannot_run_is_refused_in_one_line(probes: None, actions: list[Action],
                                                                 message: str) -> None:
    with pytest.raises(VecmigError, match=message) as e:
        check_graph(actions)
    assert "\n" not in e.value.one_line() and "vecmig plan -out" in e.value.one_line()


def _tamper(path: Path, edit: Any) -> None:
    """Edit a saved plan by hand, checksum and all (the checksum catches only careless edits)."""
    raw = json.loads(path.read_text())
    raw.pop("checksum")
    edit(raw["actions"])
    raw["checksum"] = sha256_hex(canonical_json(raw))
    path.write_text(json.dumps(raw))


def test_a_hand_edited_plan_file_with_a_cycle_or_an_unknown_dependency_is_refused(h: Harness) -> None:
    h.seed(1200)
    spec_path = h.tmp / "spec.yaml"
    spec_path.write_text(spec_text("blue-green"))
    out = h.tmp / "plan.json"
    plan(PlanRequest(spec_path, out), RecordingUi())

    def cycle(actions: list[dict[str, Any]]) -> None:
        actions[0]["depends_on"] = [actions[-1]["id"]]

    _tamper(out, cycle)
    with pytest.raises(VecmigError, match="the plan's actions depend on each other in a cycle"):
        planfile.open_saved(out)

    plan(PlanRequest(spec_path, out), RecordingUi())
    _tamper(out, lambda actions: actions[-1]["depends_on"].append("copy.shard[99]"))
    with pytest.raises(VecmigError, match=r"depends on copy\.shard\[99\], which is not in the plan"):
        apply_ops.apply(apply_ops.ApplyRequest(out), RecordingUi())
    state = h.state(h.spec("blue-green"), create=False)
    assert state is None or not state.rounds(), "refused before a round was started"
    assert "docs_v2" not in h.target.collections


def test_rollback_inverses_follow_the_reversed_graph(h: Harness) -> None:
    h.seed(2500)
    spec = h.spec("blue-green", concurrency=2)
    h.apply(spec)
    state = h.state(spec, create=False)
    assert state is not None
    todo = pending_undo(state)
    steps = inverses(todo)
    by_id = {a.id: a for _, a, _ in todo}
    for step in steps:
        dependents = {a.id for a in by_id.values() if step.id in a.depends_on}
        assert set(step.depends_on) == dependents
    assert all(not KINDS[s.kind].runs_beside_others for s in steps), "undo actions are exclusive"
    order: list[str] = []
    run_graph(_ctx(), steps, lambda a: order.append(a.id), workers=4)
    assert order == [s.id for s in steps], "newest first, as rollback always ran"
    assert h.rollback(spec) == len(todo)
    assert "docs_v2" not in h.target.collections and "docs_live" not in h.target.aliases


def test_symbols_come_from_the_declared_effect(probes: None) -> None:
    assert [symbol(k)[0] for k in ("create_collection", "copy_shard", "validate_completeness", "decommission",
                                   "probe", "alone_probe", "not_a_kind")] == ["+", "~", "?", "-", "?", "~", "~"]


def _ctx() -> RunContext:
    """What the scheduler reads of a run's context: its stop flag."""
    return cast(RunContext, SimpleNamespace(stop=threading.Event()))


def test_what_a_stopped_group_raises(probes: None) -> None:
    """Several in flight, all interrupted: one line for all; a real error among them wins; alone: its own."""
    def interrupted(meet: threading.Barrier) -> Any:
        def one(a: Action) -> None:
            meet.wait()  # both are in flight before either fails
            if a.id == "real":
                raise VecmigError("real failure")
            raise Interrupted(f"interrupted: {a.id} stopped")
        return one

    with pytest.raises(Interrupted, match="every action in flight finished its batch"):
        run_graph(_ctx(), [act("a"), act("b")], interrupted(threading.Barrier(2, timeout=WAIT_S)), workers=2)
    with pytest.raises(VecmigError, match="real failure"):
        run_graph(_ctx(), [act("a"), act("real")], interrupted(threading.Barrier(2, timeout=WAIT_S)), workers=2)
    with pytest.raises(Interrupted, match="interrupted: a stopped"):
        run_graph(_ctx(), [act("a")], interrupted(threading.Barrier(1, timeout=WAIT_S)), workers=2)
