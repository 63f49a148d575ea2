"""Store providers, registered under the ``vecmig.providers`` entry point group.

The built-ins use the same mechanism as third-party packages, so a plugin is a class and
one line in its own pyproject.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points

from vecmig.errors import VecmigError
from vecmig.providers.base import Capabilities, CollectionSchema, Provider, Throughput

__all__ = ["Capabilities", "CollectionSchema", "Provider", "Throughput", "available", "provider_class"]

GROUP = "vecmig.providers"


@cache
def available() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def provider_class(name: str) -> type[Provider]:
    eps = available()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(sorted(eps))}"
        raise VecmigError(f"unknown provider '{name}'", hint=hint)
    return eps[name].load()  # type: ignore[attr-defined,no-any-return]
