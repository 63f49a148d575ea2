"""`vecmig providers`: the stores this installation can reach, from their kits."""

from __future__ import annotations

from dataclasses import dataclass

from vecmig.providers import available, provider_class, rules_of
from vecmig.providers.kit import ProviderKit


@dataclass(frozen=True)
class StoreInfo:
    name: str
    summary: str
    connection: str  # the connection example the kit gives
    installed: bool  # its client library imports
    missing: str = ""  # why not: the module that failed to import, and the extra that brings it


def list_providers() -> list[StoreInfo]:
    out = []
    for name, entry in sorted(available().items()):
        kit = entry.load()  # type: ignore[attr-defined]
        rules = rules_of(name)
        summary = kit.summary if isinstance(kit, ProviderKit) else ""
        try:
            provider_class(name)
            installed, missing = True, ""
        except ImportError as exc:
            installed = False
            missing = f"{exc.name or exc}: pip install 'vecmig[{name}]'"
        out.append(StoreInfo(name, summary, rules.connection_example if rules else "", installed, missing))
    return out
