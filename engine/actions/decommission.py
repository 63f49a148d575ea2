"""decommission: drop the old (blue) collection. Irreversible, and the plan says so."""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import VecmigError
from vecmig.model import Action
from vecmig.state.rows import ActionRow


class Decommission(ActionKind):
    kind = "decommission"
    effect = "destroy"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        rid = ctx.state.journal_intent(ctx.round, action.id, "drop", "source", str(action.params["collection"]))
        src = ctx.source()
        try:
            src.drop_collection()
        finally:
            src.close()
        ctx.state.journal_state(rid, "done")
        return {"dropped": action.params["collection"]}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        raise VecmigError(f"{action.id} dropped {action.params['collection']}; that cannot be undone",
                          hint="restore the old collection from a backup")
