"""rollback: check the state → lock → what is to undo → confirm → undo → result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vecmig import rollback as undo
from vecmig import rollback_wave as by_wave
from vecmig.operations.common import load, open_state
from vecmig.operations.ui import Approval, Ui
from vecmig.spec import Spec
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore


@dataclass(frozen=True)
class RollbackRequest:
    spec_path: Path
    auto_approve: bool = False
    lock_timeout: float = 0.0  # seconds to wait for the lock
    wave: str | None = None  # strategy phased: undo only this wave ("last": the last one that ran)


@dataclass(frozen=True)
class RollbackResult:
    # never_applied: there is no state; nothing_left: every round is rolled back already
    outcome: Literal["never_applied", "nothing_left", "rolled_back"]
    undone: int = 0  # actions undone (a rollback finishing a killed one may have none left)
    approval: Approval | None = None
    wave: str | None = None  # the wave rolled back (rollback --wave)


def rollback(request: RollbackRequest, ui: Ui) -> RollbackResult:
    """Undo an applied or partly applied migration: recorded inverses in reverse order."""
    spec = load(request.spec_path, ui)
    state = open_state(spec)
    if state is None:
        return RollbackResult("never_applied")
    lock = Lock(state, "rollback")
    lock.acquire(timeout=request.lock_timeout)
    try:
        undo.check_state(state)  # before listing anything: a tampered store is refused outright
        if request.wave is not None:
            return _rollback_wave(request, ui, spec, state)
        todo = undo.pending_undo(state)
        if not todo and not undo.unfinished_rounds(state):
            return RollbackResult("nothing_left")
        steps = tuple(undo.inverses(todo))
        ui.show_undo(steps)
        approval: Approval = "auto-approve" if request.auto_approve else ui.confirm("Do you want to roll back?")
        with ui.progress(steps) as reporter:
            n = undo.rollback(spec, state, approval=approval, reporter=reporter, checked=True)
        return RollbackResult("rolled_back", undone=n, approval=approval)
    finally:
        lock.release()


def _rollback_wave(request: RollbackRequest, ui: Ui, spec: Spec, state: StateStore) -> RollbackResult:
    assert request.wave is not None
    plan = by_wave.wave_undo(state, request.wave)
    ui.show_undo(plan.steps)
    approval: Approval = "auto-approve" if request.auto_approve else ui.confirm(
        f"Do you want to roll back wave {plan.wave}?")
    with ui.progress(plan.steps) as reporter:
        n = by_wave.rollback_wave(spec, state, plan, approval=approval, reporter=reporter)
    return RollbackResult("rolled_back", undone=n, approval=approval, wave=plan.wave)
