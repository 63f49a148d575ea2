"""Rollback: run the recorded inverses in reverse order, newest round first.

Each recorded action's inverse is an action (kind ``undo``, made by its kind's ``inverse``,
depending on the inverses of the actions that depended on it), and the inverses run through
the executor's scheduler and dispatcher like a plan's actions do; the callback here records
each one as "rolled_back" on the original action's row.

Every inverse is idempotent and each undone action is recorded as it goes, so a rollback
killed half-way is simply run again.

Two rules hold for every inverse, whatever its kind:

* What rollback reads from state (statuses, action parameters, the resource journal,
  before-images) must match the audit chain, checked before anything is written; a store
  changed outside vecmig is refused rather than written back into the target.
* A target that stages its writes (files: ``needs_finalize``) is merged once the inverses
  have run, before the rounds are closed, so what the inverses upserted and deleted is in
  the final file, not left in staging parts. A rollback killed before the merge runs it on
  the next attempt (the rounds are still open).
"""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from itertools import groupby
from typing import Any

from vecmig.actions import KINDS, Reporter, RunContext, SilentReporter
from vecmig.errors import VecmigError
from vecmig.executor import run_actions
from vecmig.model import Action
from vecmig.providers import provider_class
from vecmig.spec import Spec
from vecmig.state.rows import ActionRow
from vecmig.state.store import StateStore
from vecmig.state.verify import check_rollback_inputs

UNDOABLE = ("done", "running", "failed")


def pending_undo(state: StateStore) -> list[tuple[int, Action, ActionRow]]:
    """What rollback would undo, in the order it would undo it."""
    live = [r["round"] for r in state.rounds() if r["status"] != "rolled_back"]
    out = []
    for round_no in sorted(live, reverse=True):
        for row in reversed(state.actions(round_no)):
            if row["status"] in UNDOABLE:
                out.append((round_no, Action.from_json(json.loads(row["params_json"])), row))
    return out


def inverses(todo: list[tuple[int, Action, ActionRow]]) -> list[Action]:
    """The actions that undo ``todo`` (see ``pending_undo``), in the order they run: the graph
    reversed, so an action is undone only after everything that depended on it (in its round)."""
    dependents: dict[tuple[int, str], list[str]] = {}
    for round_no, action, _row in todo:
        for dep in action.depends_on:
            dependents.setdefault((round_no, dep), []).append(action.id)
    out = []
    for round_no, action, _row in todo:
        inv = KINDS[action.kind].inverse(action, round_no)
        out.append(replace(inv, depends_on=tuple(dependents.get((round_no, action.id), ()))))
    return out


def unfinished_rounds(state: StateStore) -> list[int]:
    return [r["round"] for r in state.rounds() if r["status"] in ("in_progress", "rolling_back")]


def check_state(state: StateStore) -> None:
    """Refuse (one line) when what rollback would read does not match the audit chain."""
    ok, why = state.verify_chain()
    if not ok:
        raise VecmigError(f"refusing to roll back: the audit chain is broken ({why})",
                          hint="the state store was changed outside vecmig; run `vecmig state verify SPEC` and "
                               "compare with a backup before trusting it")
    problems = check_rollback_inputs(state)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VecmigError(f"refusing to roll back: {problems[0]}{more}",
                          hint="the state store was changed outside vecmig, so what rollback would write back "
                               "cannot be trusted; run `vecmig state verify SPEC` and restore the state from a backup")


def seal_target(spec: Spec) -> None:
    """Merge a staged target's parts into its final form (no-op for stores that write in place)."""
    cls = provider_class(spec.target.provider)
    if not cls.needs_finalize:
        return
    tgt = cls(spec.target)
    tgt.connect()
    try:
        if tgt.collection_exists():
            tgt.finalize()
    finally:
        tgt.close()


def rollback(spec: Spec, state: StateStore, *, approval: str, reporter: Reporter | None = None,
             checked: bool = False) -> int:
    """Undo every live round; ``checked`` when the caller already ran ``check_state`` under the lock."""
    if not checked:
        check_state(state)
    todo = pending_undo(state)
    blockers = [a for _, a, row in todo if not a.reversible and row["status"] == "done"]
    if blockers:
        raise VecmigError(f"cannot roll back: {blockers[0].id} was applied and cannot be undone "
                          f"({blockers[0].reverse})", hint="restore from a backup instead")
    # Rounds with nothing left to undo still close: a rollback killed after its last undo, or a
    # round that never ran an action, must not stay open forever.
    rounds = sorted({r for r, _, _ in todo} | set(unfinished_rounds(state)), reverse=True)
    steps = inverses(todo)
    run_id = state.start_run(rounds[0] if rounds else None, "rollback", None, approval)
    drops_target = any(a.kind == "create_collection" for _, a, _ in todo)

    def undone(ctx: RunContext, step: Action, _result: dict[str, Any]) -> None:
        state.set_action(step.params["round"], step.params["action"], "rolled_back")
        ctx.reporter.finish(step, "rolled back", step.reason)

    try:
        for round_no in rounds:
            state.set_round_status(round_no, "rolling_back")
        for round_no, group in groupby(steps, key=lambda step: int(step.params["round"])):
            ctx = RunContext(spec=spec, state=state, round=round_no, reporter=reporter or SilentReporter(),
                             target_will_be_dropped=drops_target)
            run_actions(ctx, group, undone)
        if rounds:
            seal_target(spec)
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
