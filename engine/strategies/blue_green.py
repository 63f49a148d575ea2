"""blue-green: build green beside blue, validate, swap the live name, keep blue until decommission."""

from __future__ import annotations

from vecmig.errors import PlanError
from vecmig.model import Action
from vecmig.strategies import common
from vecmig.strategies.context import PlanContext


def build(ctx: PlanContext) -> list[Action]:
    spec = ctx.spec
    if ctx.foreign_target and ctx.foreign_count > 0:
        raise PlanError(
            f"blue-green builds a new collection, but target {spec.target.label} already holds "
            f"{ctx.foreign_count:,} records that vecmig did not write",
            where=spec.where("/target/collection"),
            hint="name a new collection for the green side, or use strategy big-bang",
        )
    actions = common.pipeline(ctx, prune=False)
    actions += common.cutover(ctx, common.ids(actions[-1:]))
    if spec.strategy.decommission:
        actions += common.decommission(ctx, common.ids(actions[-1:]))
    return actions
