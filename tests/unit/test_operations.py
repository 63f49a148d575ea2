"""The operations in-process, on memory stores, through a Ui that records instead of printing.

What the CLI shows is tested through the CLI (tests/test_cli_errors.py and friends); here is
what each operation decides: what it asks, what it records, what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.memory import Harness, same, spec_text
from vecmig.actions import Reporter, SilentReporter
from vecmig.errors import VecmigError
from vecmig.model import Action, Plan
from vecmig.operations import apply as apply_ops
from vecmig.operations import rollback as rollback_ops
from vecmig.operations import state as state_ops
from vecmig.operations.plan import PlanRequest, SpecRequest, plan, validate
from vecmig.operations.ui import Approval
from vecmig.state.redact import Redactor
from vecmig.state.store import StateStore


class RecordingUi:
    """Answers ``answer`` to every question and keeps what it was shown."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.redactor: Redactor | None = None
        self.plans: list[Plan] = []
        self.undo: list[tuple[int, str]] = []
        self.questions: list[str] = []
        self.said: list[str] = []
        self.progress_for: list[int] = []

    def redact_with(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def show_plan(self, plan: Plan, state: StateStore | None) -> None:
        self.plans.append(plan)

    def show_undo(self, steps: tuple[Action, ...]) -> None:
        self.undo.extend((step.params["round"], step.params["action"]) for step in steps)

    def confirm(self, question: str) -> Approval:
        self.questions.append(question)
        if not self.answer:
            raise VecmigError("cancelled: nothing was changed")
        return "interactive"

    @contextmanager
    def progress(self, actions: tuple[Action, ...]) -> Iterator[Reporter]:
        self.progress_for.append(len(actions))
        yield SilentReporter()

    def say(self, line: str) -> None:
        self.said.append(line)


@pytest.fixture
def spec_path(h: Harness) -> Path:
    h.seed(1200)
    path = h.tmp / "spec.yaml"
    path.write_text(spec_text("blue-green"))
    return path


def events(h: Harness) -> list[str]:
    state = h.state(h.spec("blue-green"), create=False)
    assert state is not None
    return [e["event"] for e in state.audit_events()]


def test_validate_names_the_stores(spec_path: Path) -> None:
    ui = RecordingUi()
    r = validate(SpecRequest(spec_path), ui)
    assert (r.name, r.strategy) == ("unit", "blue-green") and ui.redactor is not None


def test_apply_asks_then_runs_and_reports(h: Harness, spec_path: Path) -> None:
    ui = RecordingUi()
    r = apply_ops.apply(apply_ops.ApplyRequest(spec_path), ui)
    assert ui.questions == ["Do you want to perform these actions?"] and ui.progress_for == [len(r.plan.actions)]
    assert r.applied and r.approval == "interactive" and not r.saved_plan and r.records == 1200
    assert r.plan is ui.plans[0] and r.serial > 0 and r.state_location.endswith("state.db")
    same(h.source, "docs", h.target, "docs_v2")
    assert "apply_authorised" in events(h)

    again = apply_ops.apply(apply_ops.ApplyRequest(spec_path, auto_approve=True), RecordingUi())
    assert not again.applied and not again.plan.has_changes


def test_a_declined_apply_changes_nothing(h: Harness, spec_path: Path) -> None:
    with pytest.raises(VecmigError, match="cancelled"):
        apply_ops.apply(apply_ops.ApplyRequest(spec_path), RecordingUi(answer=False))
    assert "docs_v2" not in h.target.collections
    assert "apply_authorised" not in events(h), "nothing is authorised before the answer"


def test_a_saved_plan_applies_without_asking(h: Harness, spec_path: Path) -> None:
    out = h.tmp / "plan.json"
    made = plan(PlanRequest(spec_path, out), RecordingUi())
    assert made.saved_to == out and out.exists()
    ui = RecordingUi(answer=False)  # would refuse, if it were asked
    r = apply_ops.apply(apply_ops.ApplyRequest(out), ui)
    assert r.applied and r.saved_plan and r.approval == "saved-plan" and ui.questions == []
    assert r.plan.plan_hash == made.plan.plan_hash


def test_rollback_outcomes(h: Harness, spec_path: Path) -> None:
    request = rollback_ops.RollbackRequest(spec_path, auto_approve=True)
    assert rollback_ops.rollback(request, RecordingUi()).outcome == "never_applied"
    apply_ops.apply(apply_ops.ApplyRequest(spec_path, auto_approve=True), RecordingUi())
    ui = RecordingUi()
    r = rollback_ops.rollback(request, ui)
    assert (r.outcome, r.approval, r.undone) == ("rolled_back", "auto-approve", len(ui.undo))
    assert ui.undo[0][1].startswith("cutover") and ui.questions == [] and ui.progress_for == [len(ui.undo)]
    assert "docs_v2" not in h.target.collections
    assert rollback_ops.rollback(request, RecordingUi()).outcome == "nothing_left"


def test_state_inspection(h: Harness, spec_path: Path) -> None:
    ui = RecordingUi()
    request = state_ops.StateRequest(spec_path)
    assert state_ops.state_list(request, ui).actions is None
    assert state_ops.state_show(request, ui) is None
    with pytest.raises(VecmigError, match="no state store exists"):
        state_ops.state_verify(request, ui)
    apply_ops.apply(apply_ops.ApplyRequest(spec_path, auto_approve=True), ui)
    listed = state_ops.state_list(request, ui).actions
    assert listed and {a["status"] for a in listed} == {"done"}
    shown = state_ops.state_show(request, ui)
    assert shown is not None and shown.audit_ok and shown.lock is None
    assert state_ops.state_verify(request, ui).checked > 0
    history = state_ops.state_history(state_ops.HistoryRequest(spec_path, limit=3), ui)
    assert history is not None and len(history.events) == 3 and history.total > 3
    exported = state_ops.state_export(state_ops.ExportRequest(spec_path, "jsonl", h.tmp / "audit.jsonl"), ui)
    assert exported.written_to is not None and exported.written_to.read_text() == exported.text
