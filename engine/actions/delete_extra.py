"""delete_extra: a target that already held data ends up equal to the source."""

from __future__ import annotations

from typing import Any

from vecmig.actions import images
from vecmig.actions.base import ActionKind, RunContext
from vecmig.ids import keeps_namespaces
from vecmig.model import Action
from vecmig.records import RecordId, same_record_key
from vecmig.state.rows import ActionRow


class DeleteExtra(ActionKind):
    kind = "delete_extra"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        if action.params.get("ids") is not None:
            return self._delete_listed(ctx, action)
        batch_size = ctx.spec.strategy.batch_size
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
        batch_size = ctx.spec.strategy.batch_size
        listed: list[Any] = list(action.params["ids"])
        by_shard: dict[str | None, list[RecordId]] = {}
        for item in listed:
            if keeps_namespaces(ctx.spec):
                ns, rid = item
                by_shard.setdefault(str(ns), []).append(rid)
            else:
                by_shard.setdefault(None, []).append(item)
        tgt = ctx.target()
        try:
            for ns, ids in sorted(by_shard.items(), key=lambda kv: kv[0] or ""):
                shard = {"namespace": ns} if ns is not None else None
                for i in range(0, len(ids), batch_size):
                    chunk = ids[i:i + batch_size]
                    if action.params.get("before_images"):
                        ctx.state.save_before_images(ctx.round, action.id, images.capture(tgt, chunk))
                    tgt.delete_in(shard, chunk)
                    ctx.reporter.advance(action, len(chunk))
        finally:
            tgt.close()
        return {"deleted": len(listed)}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        if ctx.target_will_be_dropped or not action.params.get("before_images"):
            return
        tgt = ctx.target()
        try:
            images.restore(tgt, ctx.state.before_images(ctx.round, action.id))
        finally:
            tgt.close()
