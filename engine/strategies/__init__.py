"""Strategies are plan templates: each turns a PlanContext into an ordered list of actions."""

from __future__ import annotations

from collections.abc import Callable

from vecmig.model import Action
from vecmig.strategies import big_bang, blue_green, cdc, parallel_run, phased, watch_step
from vecmig.strategies.context import PlanContext

Builder = Callable[[PlanContext], list[Action]]


def _watched(build: Builder) -> Builder:
    """Every strategy: ``rollback_on.watch`` adds a watch after its cutover."""
    return lambda ctx: watch_step.add(ctx, build(ctx))


BUILDERS: dict[str, Builder] = {name: _watched(build) for name, build in {
    "big-bang": big_bang.build,
    "blue-green": blue_green.build,
    "cdc": cdc.build,
    "phased": phased.build,
    "parallel-run": parallel_run.build,
}.items()}
