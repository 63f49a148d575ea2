"""Store providers, registered under the ``vecmig.providers`` entry point group.

The built-ins use the same mechanism as third-party packages: an entry point names a
:class:`~vecmig.providers.kit.ProviderKit` (the store's rules, light to import) or, for a
plugin without one, the provider class itself. See ``providers/README.md`` to add a store.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points

from vecmig.errors import VecmigError
from vecmig.providers.base import Capabilities, CollectionSchema, Provider, Throughput
from vecmig.providers.kit import ProviderKit, SpecRules

__all__ = [
    "Capabilities", "CollectionSchema", "Provider", "ProviderKit", "SpecRules", "Throughput",
    "available", "kits", "provider_class", "rules_of", "stores_that",
]

GROUP = "vecmig.providers"


@cache
def available() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@cache
def _entry(name: str) -> object:
    eps = available()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(sorted(eps))}"
        raise VecmigError(f"unknown provider '{name}'", hint=hint)
    return eps[name].load()  # type: ignore[attr-defined]


def provider_class(name: str) -> type[Provider]:
    entry = _entry(name)
    return entry.load() if isinstance(entry, ProviderKit) else entry  # type: ignore[return-value]


def rules_of(name: str) -> SpecRules | None:
    """The store's spec rules without importing its class; None for a plugin that declares none
    (only the schema's structure applies to it)."""
    entry = _entry(name)
    if isinstance(entry, ProviderKit):
        return entry.rules
    rules = getattr(entry, "spec_rules", None)
    return rules if isinstance(rules, SpecRules) else None


def stores_that(can: Callable[[type[Provider]], bool]) -> str:
    """The registered stores whose class ``can`` (for hints: "pinecone, jsonl"); loads their
    classes, so only for error paths."""
    names = []
    for name in sorted(available()):
        entry = _entry(name)
        if isinstance(entry, ProviderKit) and not entry.suggested:
            continue
        try:
            if can(provider_class(name)):
                names.append(name)
        except ImportError:  # an extra that is not installed
            continue
    return ", ".join(names) or "none installed"


def kits() -> dict[str, SpecRules]:
    """Every registered store's rules, by name (stores without rules left out)."""
    out = {}
    for name in sorted(available()):
        rules = rules_of(name)
        if rules is not None:
            out[name] = rules
    return out
