"""finalize: a staged target (a file) seals what the shards wrote into its final form."""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.model import Action


class Finalize(ActionKind):
    kind = "finalize"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        tgt = ctx.target()
        try:
            tgt.finalize()
        finally:
            tgt.close()
        return {}
