"""Refresh: ask each store what really exists. Read-only; the first stage of every plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vecmig.model import Inventory
from vecmig.providers import Provider, provider_class
from vecmig.spec import Spec, StoreSpec


@dataclass(frozen=True)
class Refreshed:
    source: Inventory
    target: Inventory
    shards: tuple[dict[str, Any], ...]


def open_provider(store: StoreSpec) -> Provider:
    return provider_class(store.provider)(store)


def refresh(spec: Spec, *, shards: bool = True) -> Refreshed:
    with open_provider(spec.source) as src:
        source = src.inventory()
        cut = tuple(src.shards(source, spec.strategy.shard_size)) if (shards and source.exists) else ()
    with open_provider(spec.target) as tgt:
        target = tgt.inventory()
        if spec.target.alias and type(tgt).capabilities.aliases:
            target = replace(target, aliases={spec.target.alias: tgt.read_alias(spec.target.alias)})
    return Refreshed(source=source, target=target, shards=cut)
