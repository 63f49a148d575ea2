"""Rollback: run the recorded inverses in reverse order, newest round first.

Every inverse is idempotent and each undone action is recorded as it goes, so a rollback
killed half-way is simply run again.
"""

from __future__ import annotations

import signal
from typing import Any

from vecmig.actions import KINDS, Reporter, RunContext, SilentReporter
from vecmig.errors import VecmigError
from vecmig.executor import resolved
from vecmig.model import Action
from vecmig.spec import Spec
from vecmig.state.store import StateStore

UNDOABLE = ("done", "running", "failed")


def pending_undo(state: StateStore) -> list[tuple[int, Action, dict[str, Any]]]:
    """What rollback would undo, in the order it would undo it."""
    live = [r["round"] for r in state.rounds() if r["status"] != "rolled_back"]
    out = []
    for round_no in sorted(live, reverse=True):
        for row in reversed(state.actions(round_no)):
            if row["status"] in UNDOABLE:
                import json

                out.append((round_no, Action.from_json(json.loads(row["params_json"])), row))
    return out


def unfinished_rounds(state: StateStore) -> list[int]:
    return [r["round"] for r in state.rounds() if r["status"] in ("in_progress", "rolling_back")]


def rollback(spec: Spec, state: StateStore, *, approval: str, reporter: Reporter | None = None) -> int:
    todo = pending_undo(state)
    blockers = [a for _, a, row in todo if not a.reversible and row["status"] == "done"]
    if blockers:
        raise VecmigError(f"cannot roll back: {blockers[0].id} was applied and cannot be undone "
                          f"({blockers[0].reverse})", hint="restore from a backup instead")
    # Rounds with nothing left to undo still close: a rollback killed after its last undo, or a
    # round that never ran an action, must not stay open forever.
    rounds = sorted({r for r, _, _ in todo} | set(unfinished_rounds(state)), reverse=True)
    run_id = state.start_run(rounds[0] if rounds else None, "rollback", None, approval)
    drops_target = any(a.kind == "create_collection" for _, a, _ in todo)
    try:
        for round_no in rounds:
            state.set_round_status(round_no, "rolling_back")
        for round_no, action, row in todo:
            ctx = RunContext(spec=spec, state=state, round=round_no, reporter=reporter or SilentReporter(),
                             target_will_be_dropped=drops_target)
            KINDS[action.kind].undo(ctx, resolved(ctx, action), row)
            state.set_action(round_no, action.id, "rolled_back")
            ctx.reporter.finish(action, "rolled back", action.reverse)
        for round_no in rounds:
            state.set_round_status(round_no, "rolled_back")
    except VecmigError as e:
        state.finish_run(run_id, "failed", e.one_line())
        raise
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: every undo is idempotent, run it again
        signum = getattr(e, "signum", None)
        by = f" by {signal.Signals(signum).name}" if signum else ""
        state.finish_run(run_id, "interrupted", f"interrupted{by}: run `vecmig rollback` again to finish")
        raise
    except BaseException as e:
        state.finish_run(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    state.finish_run(run_id, "succeeded", undone=len(todo))
    return len(todo)
