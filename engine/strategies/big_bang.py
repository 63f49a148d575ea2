"""big-bang: copy everything, validate, and switch the live name (alias or pointer) if the spec names one."""

from __future__ import annotations

from vecmig.model import Action
from vecmig.strategies import common
from vecmig.strategies.context import PlanContext


def build(ctx: PlanContext) -> list[Action]:
    actions = common.pipeline(ctx, prune=True)
    if common.needs_cutover(ctx):
        actions += common.cutover(ctx, common.ids(actions[-1:]))
    return actions
