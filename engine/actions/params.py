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

from vecmig.spec import EmbedSpec, StrategySpec

# Defaults for keys a plan saved before they were frozen does not have: the spec's own defaults.
_DEFAULTS = StrategySpec()
BATCH_SIZE = _DEFAULTS.batch_size
CONCURRENCY = _DEFAULTS.concurrency
SHARD_SIZE = _DEFAULTS.shard_size


def _ids(d: dict[str, Any]) -> list[Any] | None:
    ids = d.get("ids")
    return None if ids is None else list(ids)


@dataclass(frozen=True)
class EmbedParams:
    """``transform.embed`` as the plan froze it. ``identity`` and ``dimension`` are the model's
    as planning loaded it: apply refuses a model that became another under the same name. The
    API key and the cache's location stay in the spec (like connection details: they may hold
    secrets); the endpoint's other settings are here."""

    model: str
    text: str
    identity: str
    dimension: int
    device: str = "auto"
    batch_size: int = 32
    truncate: bool = False
    keep_old: str | None = None
    api: dict[str, Any] | None = None  # base_url, concurrency, tokens_per_minute, tokenizer, max_tokens, ...

    @classmethod
    def from_spec(cls, spec: EmbedSpec, *, identity: str, dimension: int) -> EmbedParams:
        api = None
        if spec.api is not None:
            a = spec.api
            api = {"base_url": a.base_url, "concurrency": a.concurrency, "tokens_per_minute": a.tokens_per_minute,
                   "tokenizer": a.tokenizer, "max_tokens": a.max_tokens, "dimension": a.dimension,
                   "timeout": a.timeout}
        return cls(model=spec.model, text=spec.text, identity=identity, dimension=dimension, device=spec.device,
                   batch_size=spec.batch_size, truncate=spec.truncate, keep_old=spec.keep_old, api=api)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "text": self.text, "identity": self.identity, "dimension": self.dimension,
                "device": self.device, "batch_size": self.batch_size, "truncate": self.truncate,
                "keep_old": self.keep_old, "api": None if self.api is None else dict(self.api)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EmbedParams:
        api = d.get("api")
        return cls(model=str(d["model"]), text=str(d["text"]), identity=str(d.get("identity", "")),
                   dimension=int(d.get("dimension", 0)), device=str(d.get("device", "auto")),
                   batch_size=int(d.get("batch_size", 32)), truncate=bool(d.get("truncate")),
                   keep_old=d.get("keep_old"), api=None if api is None else dict(api))


@dataclass(frozen=True)
class CopyShardParams:
    shard: Any
    index: int
    before_images: bool = False
    fresh_target: bool = False
    batch_size: int = BATCH_SIZE
    concurrency: int = CONCURRENCY  # shards copied at once (the wave's workers)
    ids: list[Any] | None = None  # the delta's ids, where the diff listed them
    embed: EmbedParams | None = None  # re-embed each record's text (transform.embed)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shard": self.shard, "index": self.index, "before_images": self.before_images,
                             "fresh_target": self.fresh_target, "batch_size": self.batch_size,
                             "concurrency": self.concurrency}
        if self.ids is not None:
            d["ids"] = list(self.ids)
        if self.embed is not None:
            d["embed"] = self.embed.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CopyShardParams:
        embed = d.get("embed")
        return cls(shard=d.get("shard"), index=int(d.get("index", 0)), before_images=bool(d.get("before_images")),
                   fresh_target=bool(d.get("fresh_target")), batch_size=int(d.get("batch_size", BATCH_SIZE)),
                   concurrency=int(d.get("concurrency", CONCURRENCY)), ids=_ids(d),
                   embed=None if embed is None else EmbedParams.from_json(embed))


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
    # The copies re-embed (transform.embed): vectors are the new model's and not compared; the
    # target's ``keep_old`` field, where set, must hold the source's vector (vecmig.diff.reembedded).
    reembedded: bool = False
    keep_old: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shards": list(self.shards), "checksums": self.checksums, "batch_size": self.batch_size,
                             "concurrency": self.concurrency, "shard_size": self.shard_size}
        if self.reembedded:
            d["reembedded"] = True
            d["keep_old"] = self.keep_old
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ValidateCompletenessParams:
        keep_old = d.get("keep_old")
        return cls(shards=list(d.get("shards") or []), checksums=bool(d.get("checksums", True)),
                   batch_size=int(d.get("batch_size", BATCH_SIZE)), concurrency=int(d.get("concurrency", CONCURRENCY)),
                   shard_size=int(d.get("shard_size", SHARD_SIZE)), reembedded=bool(d.get("reembedded")),
                   keep_old=None if keep_old is None else str(keep_old))


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
