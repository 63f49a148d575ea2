"""Rollback of one wave (strategy phased): ``vecmig rollback SPEC --wave last|NAME``.

Only that wave's actions are undone, newest first, through the same executor dispatch as a
full rollback: its copies' records are deleted from the target (or restored from their
before-images where the target was not vecmig's), its alias pointed back; the round-level
steps after the last wave (prune, the spec's cutover) go with the last wave. Earlier waves
stay in place. Each undone action is reset to pending (its cursor dropped), and the round is
open again, so the next `vecmig apply` resumes the round at this wave.

Which records a wave wrote is what its copies journaled (ids as before-images, written before
each upsert), not the wave predicate evaluated over the target: the journal is exact whatever
the mapping did to ids, metadata and namespaces, and whatever the source did since, so no
record of another wave can be taken for this one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vecmig import waves
from vecmig.actions import KINDS, Reporter, RunContext, SilentReporter
from vecmig.errors import VecmigError
from vecmig.executor import run_actions
from vecmig.model import Action
from vecmig.rollback import UNDOABLE, check_state
from vecmig.spec import Spec
from vecmig.state.rows import RoundRow
from vecmig.state.store import StateStore

LAST = "last"


@dataclass(frozen=True)
class WaveUndo:
    round: int
    wave: str
    steps: tuple[Action, ...]  # the inverses, in the order they run
    originals: tuple[str, ...]  # the ids of the actions they undo


def the_round(state: StateStore) -> RoundRow | None:
    """The newest round not rolled back: the one whose waves can be undone."""
    live = [r for r in state.rounds() if r["status"] in ("in_progress", "complete")]
    return live[-1] if live else None


def plan_waves(round_row: RoundRow) -> list[str]:
    """The round's waves in plan order."""
    names: list[str] = []
    for raw in json.loads(round_row["plan_json"])["actions"]:
        name = waves.wave_of(raw["id"])
        if name is not None and name not in names:
            names.append(name)
    return names


def wave_undo(state: StateStore, wave: str) -> WaveUndo:
    """What ``rollback --wave`` undoes; a one-line error when it cannot."""
    r = the_round(state)
    names = plan_waves(r) if r is not None else []
    if r is None or not names:
        raise VecmigError("nothing to roll back wave by wave: no live round of strategy phased",
                          hint="`vecmig rollback SPEC` (without --wave) undoes everything")
    rows = state.actions(r["round"])
    order = {raw["id"]: i for i, raw in enumerate(json.loads(r["plan_json"])["actions"])}
    rows.sort(key=lambda row: order.get(row["action_id"], len(order)))
    touched = [n for n in names if any(waves.wave_of(row["action_id"]) == n and row["status"] in UNDOABLE
                                       for row in rows)]
    if not touched:
        raise VecmigError(f"no wave of round {r['round']} has run yet", hint="nothing to undo wave by wave")
    name = touched[-1] if wave == LAST else wave
    if name not in names:
        raise VecmigError(f"round {r['round']} has no wave {name!r} (its waves: {', '.join(names)})",
                          hint="use --wave last, or one of those names")
    if name not in touched:
        raise VecmigError(f"wave {name!r} has not run yet: nothing of it to undo", hint="use --wave last")
    if touched[-1] != name:
        raise VecmigError(f"wave {touched[-1]!r} ran after wave {name!r}: roll back the later waves first",
                          hint=f"run `vecmig rollback SPEC --wave last` until wave {name!r} is the last")
    last_wave = name == names[-1]
    first = min(i for i, row in enumerate(rows) if waves.wave_of(row["action_id"]) == name)
    todo = [row for row in rows[first:] if row["status"] in UNDOABLE
            and (waves.wave_of(row["action_id"]) == name or (last_wave and waves.wave_of(row["action_id"]) is None))]
    blockers = [row for row in todo if not json.loads(row["params_json"]).get("reversible", True)]
    if blockers:
        raise VecmigError(f"cannot roll back wave {name!r}: {blockers[0]['action_id']} cannot be undone",
                          hint="restore from a backup instead")
    originals = [Action.from_json(json.loads(row["params_json"])) for row in reversed(todo)]
    steps = tuple(KINDS[a.kind].inverse(a, r["round"]) for a in originals)
    return WaveUndo(r["round"], name, steps, tuple(a.id for a in originals))


def rollback_wave(spec: Spec, state: StateStore, undo: WaveUndo, *, approval: str,
                  reporter: Reporter | None = None) -> int:
    """Run ``undo``'s inverses; the caller holds the lock and ran ``check_state``."""
    run_id = state.start_run(undo.round, "rollback", None, approval, wave=undo.wave)
    why = f"wave {undo.wave} was rolled back"

    def undone(ctx: RunContext, step: Action, _result: dict[str, Any]) -> None:
        # Pending again, cursor gone: the next apply runs the wave from its start.
        state.reset_action(undo.round, step.params["action"], why)
        ctx.reporter.finish(step, "rolled back", step.reason)

    try:
        ctx = RunContext(spec=spec, state=state, round=undo.round, reporter=reporter or SilentReporter())
        n = run_actions(ctx, undo.steps, undone)
        if any(r["round"] == undo.round and r["status"] == "complete" for r in state.rounds()):
            state.set_round_status(undo.round, "in_progress")
    except VecmigError as e:
        state.finish_run(run_id, "failed", e.one_line())
        raise
    except BaseException as e:
        state.finish_run(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    state.finish_run(run_id, "succeeded", undone=n, wave=undo.wave)
    return n


__all__ = ["LAST", "WaveUndo", "check_state", "rollback_wave", "wave_undo"]

