"""create_collection and its inverse, drop."""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.model import Action
from vecmig.providers.base import CollectionSchema
from vecmig.state.rows import ActionRow


class CreateCollection(ActionKind):
    kind = "create_collection"
    effect = "add"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        schema = CollectionSchema(**action.params["schema"])
        name = action.params["collection"] or ctx.spec.target.label
        rid = ctx.state.journal_intent(ctx.round, action.id, "collection", "target", name)
        tgt = ctx.target()
        try:
            # A run killed after the create but before it was journaled as done finds the
            # collection there: planning saw it absent, so it is ours.
            if not tgt.collection_exists():
                tgt.create_collection(schema)
        finally:
            tgt.close()
        ctx.state.journal_state(rid, "done")
        return {"collection": name}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        tgt = ctx.target()
        try:
            tgt.drop_collection()
        finally:
            tgt.close()
