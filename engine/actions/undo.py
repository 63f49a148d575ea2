"""undo: the inverse of a recorded action, run by the executor like any other action.

Its params name the original (id, kind, round); run reads the original back from state (what
``check_state`` verified against the audit chain before anything ran) and calls that kind's
``undo`` with it, ``${env:NAME}`` resolved as the executor resolves every action.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import VecmigError
from vecmig.model import Action


class Undo(ActionKind):
    kind = "undo"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        from vecmig.actions import KINDS  # the registry imports this module

        round_no, action_id = int(action.params["round"]), str(action.params["action"])
        row = ctx.state.action(round_no, action_id)
        if row is None:
            raise VecmigError(f"cannot undo {action_id} (round {round_no}): it is not in the state store")
        original = Action.from_json(json.loads(row["params_json"]))
        params = ctx.spec.resolve_shown(original.params)
        if params != original.params:
            original = replace(original, params=params)
        if ctx.round != round_no:
            ctx = replace(ctx, round=round_no)
        KINDS[original.kind].undo(ctx, original, row)
        return {}
