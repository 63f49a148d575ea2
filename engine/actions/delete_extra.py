"""delete_extra: a target that already held data ends up equal to the source."""

from __future__ import annotations

from typing import Any

from vecmig.actions import images
from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.params import DeleteExtraParams
from vecmig.model import Action
from vecmig.records import RecordId, same_record_key
from vecmig.state.rows import ActionRow


class DeleteExtra(ActionKind):
    kind = "delete_extra"
    effect = "destroy"

    def summarise(self, result: dict[str, Any]) -> str:
        return f" · {result['deleted']:,} extra records deleted" if "deleted" in result else ""

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        if action.params.get("ids") is not None:
            return self._delete_listed(ctx, action)
        batch_size = DeleteExtraParams.from_json(action.params).batch_size
        src, tgt = ctx.source(), ctx.target()
        try:
            # Compared by the id's text: a target that keeps only strings (Pinecone) lists the
            # source's int 5 as "5", which is the same record, not an extra one.
            wanted = {same_record_key(rid) for b in src.scan(None, None, batch_size) for rid in b.ids}
            extra: list[RecordId] = [rid for b in tgt.scan(None, None, batch_size) for rid in b.ids
                                     if same_record_key(rid) not in wanted]
            for i in range(0, len(extra), batch_size):
                chunk = extra[i:i + batch_size]
                if action.params.get("before_images"):
                    ctx.state.save_before_images(ctx.round, action.id, images.capture(tgt, chunk))
                tgt.delete(chunk)
        finally:
            src.close()
            tgt.close()
        return {"deleted": len(extra)}

    def _delete_listed(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        """The extras the plan's diff listed (``[namespace, id]`` pairs where records are kept
        per namespace). Deleting is idempotent, so a killed run simply deletes them again; their
        before-images are saved first each time (rollback restores the earliest per id)."""
        tgt = ctx.target()
        try:
            p = DeleteExtraParams.from_json(action.params)
            deleted = images.delete_listed(ctx, action, tgt, p.ids or [], p.batch_size)
        finally:
            tgt.close()
        return {"deleted": deleted}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        images.undo_writes(ctx, action)
