"""build_index after the load, and its inverse, drop_index."""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.model import Action
from vecmig.spec import IndexSpec
from vecmig.state.rows import ActionRow


class BuildIndex(ActionKind):
    kind = "build_index"
    effect = "add"

    def summarise(self, result: dict[str, Any]) -> str:
        return f" · index {result['index']}" if result.get("index") else ""

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        index = IndexSpec(**action.params["index"])
        rid = ctx.state.journal_intent(ctx.round, action.id, "index", "target",
                                       f"{ctx.spec.target.collection}:{index.type}")
        tgt = ctx.target()
        try:
            name = tgt.build_index(index, action.params["metric"])
        finally:
            tgt.close()
        ctx.state.journal_state(rid, "done")
        return {"index": name}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        if ctx.target_will_be_dropped:
            return
        import json

        name = ctx.spec.resolve_shown(json.loads(row.get("result_json") or "{}").get("index"))
        if not name:
            return
        tgt = ctx.target()
        try:
            tgt.drop_index(name)
        finally:
            tgt.close()
