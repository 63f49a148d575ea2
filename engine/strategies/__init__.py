"""Strategies are plan templates: each turns a PlanContext into an ordered list of actions."""

from __future__ import annotations

from collections.abc import Callable

from vecmig.model import Action
from vecmig.strategies import big_bang, blue_green, cdc, phased
from vecmig.strategies.context import PlanContext

BUILDERS: dict[str, Callable[[PlanContext], list[Action]]] = {
    "big-bang": big_bang.build,
    "blue-green": blue_green.build,
    "cdc": cdc.build,
    "phased": phased.build,
}
