"""cutover: repoint the live name readers use; the inverse points it back.

Two mechanisms, chosen by the plan (``strategies.common.cutover``):

* ``alias`` (stores with aliases, pgvector views): swapped in one transaction;
* ``pointer`` (stores without, Pinecone): a pointer file and/or command (``vecmig.pointer``).

Either way, what readers followed before is journaled as the intent's ``before`` ahead of
the switch, and a rerun after a kill reuses the first intent's ``before`` (by then the
pointer may already show the new index), so rollback always returns to the original.
"""

from __future__ import annotations

import json
from typing import Any

from vecmig import pointer
from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import PlanError
from vecmig.model import Action
from vecmig.spec import PointerSpec
from vecmig.state.rows import ActionRow, ResourceRow


class Cutover(ActionKind):
    kind = "cutover"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        if "pointer" in action.params:
            return self._run_pointer(ctx, action)
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

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        if "pointer" in action.params:
            self._undo_pointer(ctx, action)
            return
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

    # ---- pointer (stores without aliases) -----------------------------------------------

    def _run_pointer(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        spec = _pointer_spec(ctx, action)
        base_dir = ctx.spec.target.base_dir
        if spec.file:
            # Before anything is journaled: a file that is not a vecmig pointer file is never replaced.
            pointer.check_replaceable(pointer.resolve(spec.file, base_dir))
        new = _live_target(ctx, action)
        intents = _intents(ctx, action)
        if intents:
            # A rerun: the first attempt recorded the true "before"; the pointer may already
            # be switched, so reading it again would lose the original.
            rid = int(intents[0]["id"])
            before = json.loads(intents[0]["before_json"] or "null") or {}
        else:
            before = _capture_before(ctx, spec)
            rid = ctx.state.journal_intent(ctx.round, action.id, "pointer", "target", _label(action), before=before)
        previous = pointer.Live(index=before.get("index"), host=before.get("host"), namespace=before.get("namespace"))
        pointer.switch(spec, base_dir, new, previous if previous.index else None, migration=ctx.spec.name,
                       secrets=_secrets(ctx))
        ctx.state.journal_state(rid, "done")
        return {"pointer": _label(action), "from": before.get("index"), "to": new.index, "host": new.host}

    def _undo_pointer(self, ctx: RunContext, action: Action) -> None:
        intents = _intents(ctx, action)
        if not intents:
            return  # never journaled, so never switched
        before = json.loads(intents[0]["before_json"] or "null") or {}
        current = pointer.Live(index=action.params.get("to"), namespace=action.params.get("namespace"))
        pointer.restore(_pointer_spec(ctx, action), ctx.spec.target.base_dir, before, current, secrets=_secrets(ctx))


def _pointer_spec(ctx: RunContext, action: Action | None = None) -> PointerSpec:
    wave = action.params.get("wave") if action is not None else None
    if wave is not None:  # strategy phased: the wave's own pointer
        spec = next((w.pointer for w in ctx.spec.strategy.waves if w.name == wave), None)
        if spec is None:
            raise PlanError(f"the plan repoints the pointer of wave {wave}, but the spec's wave has none",
                            where=ctx.spec.where("/strategy/waves"),
                            hint="restore the wave's pointer in the spec (rollback needs it too)")
        return spec
    spec = ctx.spec.target.live_pointer
    if spec is None:
        raise PlanError("the plan repoints target.pointer, but the spec has no target.pointer",
                        where=ctx.spec.where("/target"),
                        hint="restore target.pointer in the spec (rollback needs it too)")
    return spec


def _intents(ctx: RunContext, action: Action) -> list[ResourceRow]:
    return [r for r in ctx.state.resources(ctx.round) if r["action_id"] == action.id and r["kind"] == "pointer"]


def _label(action: Action) -> str:
    written = action.params.get("pointer") or {}
    return f"file:{written['file']}" if "file" in written else "command"


def _live_target(ctx: RunContext, action: Action) -> pointer.Live:
    """The new index and its data-plane host (known only once it exists: not in the plan)."""
    tgt = ctx.target()
    try:
        inv = tgt.inventory()
    finally:
        tgt.close()
    namespace = inv.namespace if inv.namespace is not None else action.params.get("namespace")
    if "wave" in action.params:  # a wave's readers read its own namespace, as the plan says
        namespace = action.params.get("namespace")
    return pointer.Live(index=action.params["to"], host=inv.address,
                        namespace=namespace if isinstance(namespace, str) else None)


def _capture_before(ctx: RunContext, spec: PointerSpec) -> dict[str, Any]:
    """What readers follow now: the file's exact bytes, and which index that is.

    Without a file (command only), the previous index is the source's when it is the same
    kind of store (blue-green from one index to another): that is what readers used.
    """
    before: dict[str, Any] = {"file": None, "index": None, "host": None, "namespace": None}
    if spec.file:
        text = pointer.read_file(pointer.resolve(spec.file, ctx.spec.target.base_dir))
        before["file"] = text
        live = pointer.parse(text)
        if live is not None:
            before.update(live.to_json())
    if before["index"] is None and ctx.spec.source.provider == ctx.spec.target.provider:
        src = ctx.source()
        try:
            inv = src.inventory()
        finally:
            src.close()
        before.update({"index": ctx.spec.source.collection, "host": inv.address, "namespace": inv.namespace})
    return before


def _secrets(ctx: RunContext) -> list[str]:
    """Values a command must never see: resolved env values and the stores' keys."""
    keys = [str(s.connection.get(k)) for s in (ctx.spec.source, ctx.spec.target)
            for k in ("api_key", "dsn") if s.connection.get(k)]
    return sorted(set(ctx.spec.secrets) | set(keys))
