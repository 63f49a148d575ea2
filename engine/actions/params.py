"""What an action needs to run, frozen into the plan: one small dataclass of parameters per kind.

The plan is the whole truth: batch sizes, workers, shard sizes and thresholds are copied
from the spec when the plan is made and read back from ``Action.params`` when it runs, never
from the live spec, so ``apply PLANFILE`` does exactly what the reviewed plan says. Each class
round-trips through the JSON dict ``Action.params`` has always held (same keys; new keys are
added), and a plan saved before a key existed loads with the spec's defaults for it.

Connection details and secrets stay in the spec (plans are public), and so does the mapping
(``spec.mapping``, ``mapping.namespace``): freezing it would mean a second serialised copy of
the spec's mapping section in every copy action; the plan's spec hash already pins it (a
saved plan whose spec file changed is refused as stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vecmig.spec import StrategySpec

# Defaults for keys a plan saved before they were frozen does not have: the spec's own defaults.
_DEFAULTS = StrategySpec()
BATCH_SIZE = _DEFAULTS.batch_size
CONCURRENCY = _DEFAULTS.concurrency
SHARD_SIZE = _DEFAULTS.shard_size


def _ids(d: dict[str, Any]) -> list[Any] | None:
    ids = d.get("ids")
    return None if ids is None else list(ids)


@dataclass(frozen=True)
class CopyShardParams:
    shard: Any
    index: int
    before_images: bool = False
    fresh_target: bool = False
    batch_size: int = BATCH_SIZE
    concurrency: int = CONCURRENCY  # shards copied at once (the wave's workers)
    ids: list[Any] | None = None  # the delta's ids, where the diff listed them

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shard": self.shard, "index": self.index, "before_images": self.before_images,
                             "fresh_target": self.fresh_target, "batch_size": self.batch_size,
                             "concurrency": self.concurrency}
        if self.ids is not None:
            d["ids"] = list(self.ids)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CopyShardParams:
        return cls(shard=d.get("shard"), index=int(d.get("index", 0)), before_images=bool(d.get("before_images")),
                   fresh_target=bool(d.get("fresh_target")), batch_size=int(d.get("batch_size", BATCH_SIZE)),
                   concurrency=int(d.get("concurrency", CONCURRENCY)), ids=_ids(d))


@dataclass(frozen=True)
class DeleteExtraParams:
    before_images: bool = False
    batch_size: int = BATCH_SIZE
    ids: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"before_images": self.before_images, "batch_size": self.batch_size}
        if self.ids is not None:
            d["ids"] = list(self.ids)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeleteExtraParams:
        return cls(before_images=bool(d.get("before_images")), batch_size=int(d.get("batch_size", BATCH_SIZE)),
                   ids=_ids(d))


@dataclass(frozen=True)
class ValidateCompletenessParams:
    shards: list[Any]
    checksums: bool = True
    batch_size: int = BATCH_SIZE
    concurrency: int = CONCURRENCY  # shards checked at once
    shard_size: int = SHARD_SIZE  # how a file source is cut again

    def to_json(self) -> dict[str, Any]:
        return {"shards": list(self.shards), "checksums": self.checksums, "batch_size": self.batch_size,
                "concurrency": self.concurrency, "shard_size": self.shard_size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ValidateCompletenessParams:
        return cls(shards=list(d.get("shards") or []), checksums=bool(d.get("checksums", True)),
                   batch_size=int(d.get("batch_size", BATCH_SIZE)), concurrency=int(d.get("concurrency", CONCURRENCY)),
                   shard_size=int(d.get("shard_size", SHARD_SIZE)))


@dataclass(frozen=True)
class CatchUpParams:
    feed: str
    batch_size: int = BATCH_SIZE
    max_lag: int = _DEFAULTS.max_lag
    max_lag_seconds: float | None = None
    freeze_writes: bool = False
    before_images: bool = False
    closed_by: str = ""
    # Actions running beside it that it keeps the target in sync for (parallel-run's replay): it
    # ends only once they are done, whatever the lag.
    until_done: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"feed": self.feed, "batch_size": self.batch_size, "max_lag": self.max_lag,
                             "max_lag_seconds": self.max_lag_seconds, "freeze_writes": self.freeze_writes,
                             "before_images": self.before_images, "closed_by": self.closed_by}
        if self.until_done:
            d["until_done"] = list(self.until_done)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CatchUpParams:
        seconds = d.get("max_lag_seconds")
        return cls(feed=str(d.get("feed", "")), batch_size=int(d.get("batch_size", BATCH_SIZE)),
                   max_lag=int(d.get("max_lag", 0)), max_lag_seconds=None if seconds is None else float(seconds),
                   freeze_writes=bool(d.get("freeze_writes")), before_images=bool(d.get("before_images")),
                   closed_by=str(d.get("closed_by", "")), until_done=tuple(d.get("until_done") or ()))


@dataclass(frozen=True)
class CatchUpDiffParams:
    shards: list[Any]
    batch_size: int = BATCH_SIZE
    max_lag: int = 0
    before_images: bool = False
    passes: int | None = None  # a fixed number of passes (cdc's resync); None: until the lag is small enough
    concurrency: int = CONCURRENCY  # workers of each pass's diff
    shard_size: int = SHARD_SIZE  # how a file source is cut again each pass

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shards": list(self.shards), "batch_size": self.batch_size, "max_lag": self.max_lag,
                             "before_images": self.before_images, "concurrency": self.concurrency,
                             "shard_size": self.shard_size}
        if self.passes is not None:
            d["passes"] = self.passes
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CatchUpDiffParams:
        passes = d.get("passes")
        return cls(shards=list(d.get("shards") or []), batch_size=int(d.get("batch_size", BATCH_SIZE)),
                   max_lag=int(d.get("max_lag", 0)), before_images=bool(d.get("before_images")),
                   passes=None if passes is None else int(passes), concurrency=int(d.get("concurrency", CONCURRENCY)),
                   shard_size=int(d.get("shard_size", SHARD_SIZE)))


def workers(params: dict[str, Any]) -> int:
    """How many actions the plan lets run at once beside this one (its frozen ``concurrency``)."""
    return max(1, int(params.get("concurrency", CONCURRENCY)))
