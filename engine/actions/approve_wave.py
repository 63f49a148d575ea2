"""approve_wave: the gate between two waves of strategy phased.

Run by an apply that was not auto-approved, it ends the run cleanly once the wave before it is
copied, validated and switched: the gate is recorded done (so the next apply starts the next
wave, not this gate again), the run is closed as "paused" and the round stays open. Approving
that next apply (the prompt, or --auto-approve) is what lets the next wave start. Under
--auto-approve the gate is passed without stopping.
"""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.model import Action
from vecmig.state.rows import ActionRow


class ApproveWave(ActionKind):
    kind = "approve_wave"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = action.params
        if ctx.approval == "auto-approve":
            return {"wave": p["wave"], "approved": "auto-approve"}
        done = ("done and validated" if p.get("validated", True)
                else "done (not validated: validate.completeness is off)")
        ctx.paused = (f"wave {p['wave']} ({p['number']} of {p['of']}) is {done}; "
                      f"run `vecmig apply` again to start wave {p['next']}")
        return {"wave": p["wave"], "paused": ctx.paused}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        """Nothing was changed: rolling the wave back means the gate is reached again after its re-run."""
