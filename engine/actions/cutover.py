"""cutover: repoint the live name readers use; the inverse points it back."""

from __future__ import annotations

import json
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.model import Action


class Cutover(ActionKind):
    kind = "cutover"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        alias, to = action.params["alias"], action.params["to"]
        tgt = ctx.target()
        try:
            before = tgt.read_alias(alias)
            # Journal what the alias pointed at *before* touching it: rollback needs it.
            rid = ctx.state.journal_intent(ctx.round, action.id, "alias", "target", alias, before={"to": before})
            tgt.switch_alias(alias, to)
        finally:
            tgt.close()
        ctx.state.journal_state(rid, "done")
        return {"alias": alias, "from": before, "to": to}

    def undo(self, ctx: RunContext, action: Action, row: dict[str, Any]) -> None:
        alias = action.params["alias"]
        intents = [r for r in ctx.state.resources(ctx.round) if r["action_id"] == action.id and r["kind"] == "alias"]
        if not intents:
            return  # never got as far as journaling: nothing was switched
        before = json.loads(intents[0]["before_json"] or "null") or {}
        tgt = ctx.target()
        try:
            tgt.switch_alias(alias, before.get("to"))
        finally:
            tgt.close()
