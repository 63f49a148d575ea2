"""What a strategy needs to know to lay out its actions: computed once, free of side effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecmig.actions.params import EmbedParams
from vecmig.calibrate import Fit
from vecmig.diff import RecordDiff, ShardDelta
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema, FeedReport, Provider, Throughput
from vecmig.spec import Spec

DAYS_PER_MONTH = 30.0  # storage is billed per GB-month; a month of 30 days keeps the arithmetic plain


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
    # Records the target held that this migration did not write (0 for a collection it created,
    # and for an existing one, what the first round on record found there).
    foreign_count: int = 0
    # Unconnected provider instances: only their planning hooks (cost, lint) are called.
    source_provider: Provider | None = None
    target_provider: Provider | None = None
    # Speed models for records of this source's shape (None: the classes' fixed models).
    source_throughput: Throughput | None = None
    target_throughput: Throughput | None = None
    # Records per copy batch: the spec's batch_size, raised to the target's preferred size.
    batch_size: int = 0
    # The record-level diff (None: not computed, so every shard is copied whole).
    diff: RecordDiff | None = None

    def delta(self, index: int) -> ShardDelta | None:
        """What the diff found in shard ``index``; None: not known (copy it whole)."""
        if self.diff is None or index >= len(self.diff.shards):
            return None
        return self.diff.shards[index]

    @property
    def diffed(self) -> bool:
        """The target was compared record by record (it held records), so only the delta moves."""
        return self.diff is not None and self.diff.method not in ("none", "empty")
    # What earlier rounds measured, per action kind (vecmig.calibrate): replaces the models' times.
    fits: dict[str, Fit] = field(default_factory=dict)
    # The source's change feed as refresh found it (strategy cdc); None: the store has none.
    feed: FeedReport | None = None
    # transform.embed as the copies freeze it (the model's identity and width); None: no re-embed.
    embed: EmbedParams | None = None

    @property
    def bytes_per_record(self) -> int:
        if self.source.bytes_per_record:
            return int(self.source.bytes_per_record)
        return self.schema.dimension * 4 + 200

    @property
    def total_records(self) -> int:
        return sum(int(s.get("records", 0)) for s in self.shards)

    @property
    def read_model(self) -> Throughput:
        return self.source_throughput or self.source_cls.throughput

    @property
    def copy_models(self) -> tuple[Throughput, Throughput]:
        """Both sides as a copy runs them: the target's own path where it has one (native_copy
        runs only for the identity mapping without before-images)."""
        if not self.spec.mapping.is_identity or self.foreign_target:
            return self.read_model, self.write_model
        return self.target_cls.copy_models(self.source_cls, self.read_model, self.write_model, self.source)

    @property
    def write_model(self) -> Throughput:
        return self.target_throughput or self.target_cls.throughput

    @property
    def copy_batch(self) -> int:
        return self.batch_size or self.spec.strategy.batch_size

    @property
    def transition_months(self) -> float:
        return self.spec.cost.transition_days / DAYS_PER_MONTH

    def cost(self, side: str, operation: str, records: int, months: float = 1.0,
             nbytes: int | None = None) -> dict[str, float]:
        """USD line items from one side's cost hook (none for stores that are not metered).
        ``nbytes``: the bytes the operation touches when not ``records`` records' (a "query"
        passes the number of queries and the size of the collection searched)."""
        provider = self.source_provider if side == "source" else self.target_provider
        if provider is None or records <= 0:
            return {}
        store = self.spec.source if side == "source" else self.spec.target
        items = provider.cost(operation, records, records * self.bytes_per_record if nbytes is None else nbytes,
                              self.spec.cost.for_provider(store.provider))
        return {k: round(v * months, 4) for k, v in items.items() if v}
