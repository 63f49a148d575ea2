"""What a strategy needs to know to lay out its actions: computed once, free of side effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema, Provider
from vecmig.spec import Spec


@dataclass(frozen=True)
class PlanContext:
    spec: Spec
    source: Inventory
    target: Inventory
    source_cls: type[Provider]
    target_cls: type[Provider]
    shards: tuple[dict[str, Any], ...]
    schema: CollectionSchema
    # The target exists and vecmig did not create it: overwritten records need before-images.
    foreign_target: bool
    # The target is a collection vecmig created in an earlier round of this migration.
    target_owned: bool

    @property
    def bytes_per_record(self) -> int:
        if self.source.bytes_per_record:
            return int(self.source.bytes_per_record)
        return self.schema.dimension * 4 + 200

    @property
    def total_records(self) -> int:
        return sum(int(s.get("records", 0)) for s in self.shards)
