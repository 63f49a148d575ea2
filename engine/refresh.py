"""Refresh: ask each store what really exists. Read-only; the first stage of every plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vecmig.diff import RecordDiff, diff_records, empty_target
from vecmig.errors import VecmigError
from vecmig.ids import IdReport, unique_by_namespace
from vecmig.model import Inventory
from vecmig.providers import Provider, provider_class
from vecmig.providers.base import FeedReport
from vecmig.records import Batch
from vecmig.spec import Spec, StoreSpec

# Records read from the source for pre-flight lint: the first batch of the first shard, so
# the same data gives the same sample (and the same plan). Small: plans must stay quick.
SAMPLE_RECORDS = 200
# Ids read at plan for the identity rules (one type, every id once): ids only, so more of them.
ID_SAMPLE = 1000
# Records whose texts a re-embed's plan counts tokens on (transform.embed): the source's first.
EMBED_SAMPLE = 1000


@dataclass(frozen=True)
class Refreshed:
    source: Inventory
    target: Inventory
    shards: tuple[dict[str, Any], ...]
    # First records of the source (unmapped), when a rule needs to look at records: the
    # target lints per record, or the source may carry sparse values. Never persisted.
    sample: Batch | None = None
    # The identity rules on the source's first ids (vecmig.ids); None: not read.
    id_sample: IdReport | None = None
    # The record-level diff of source against target (vecmig.diff); None: not computed.
    diff: RecordDiff | None = None
    # The source's change feed (CDC): whether it can run, and the feeds already there (a
    # killed cdc run's slot keeps WAL). None: the store has no change feed.
    feed: FeedReport | None = None
    # The source's first records for transform.embed's token count and probe; None: no re-embed.
    embed_sample: Batch | None = None


def open_provider(store: StoreSpec) -> Provider:
    return provider_class(store.provider)(store)


def wants_sample(spec: Spec) -> bool:
    """Reading records at plan time is only worth it when something will look at them."""
    source_cls = provider_class(spec.source.provider)
    target_cls = provider_class(spec.target.provider)
    # phased with ``rest: false``: how many records no wave takes is estimated from the sample.
    left = spec.strategy.type == "phased" and not spec.strategy.rest
    return target_cls.lint is not Provider.lint or source_cls.capabilities.sparse or left


def refresh(spec: Spec, *, shards: bool = True, baseline: dict[str, Any] | None = None,
            records: bool = True, versions: dict[str, Any] | None = None) -> Refreshed:
    """What exists; with ``records`` (and shards), also the record-level diff, its content
    digests folded into both inventories so that a record edited in place makes a saved plan
    stale. ``baseline``: what the last validated round left (vecmig.diff.baseline), for drift;
    ``versions``: the newest baseline with row versions, for the diff's shortcut."""
    sample: Batch | None = None
    id_sample: IdReport | None = None
    embed_sample: Batch | None = None
    with open_provider(spec.source) as src:
        source = src.inventory()
        cut = tuple(src.shards(source, spec.strategy.shard_size)) if (shards and source.exists) else ()
        if shards and source.exists and wants_sample(spec):
            sample = first_batch(src, cut[0] if cut else None)
        if shards and source.exists and source.count and not unique_by_namespace(spec):
            id_sample = src.check_ids(limit=ID_SAMPLE)
        feed_report = feed_of(spec, src) if shards and source.exists else None
        if shards and source.exists and spec.transform.embed is not None:
            embed_sample = first_records(src, cut, EMBED_SAMPLE)
    with open_provider(spec.target) as tgt:
        target = tgt.inventory()
        if spec.target.alias and type(tgt).capabilities.aliases:
            target = replace(target, aliases={spec.target.alias: tgt.read_alias(spec.target.alias)})
    diff: RecordDiff | None = None
    if shards and records and source.exists:
        # An empty target is diffed only when the source looks empty too (cheap either way): then
        # the plan settles instead of copying nothing forever; otherwise everything is to add.
        if target.exists and (target.count is None or target.count > 0 or not source.count):
            diff = diff_records(spec, list(cut), baseline, versions_baseline=versions)
            source = replace(source, content=diff.source_digest)
            target = replace(target, content=diff.target_digest)
        else:
            # An existing empty target is diffed trivially (every source record to add): the plan
            # then moves nothing once the source is empty too, instead of copying nothing forever.
            diff = empty_target(list(cut), exists=target.exists)
    return Refreshed(source=as_written(spec, source, "/source"), target=as_written(spec, target, "/target"),
                     shards=cut, sample=sample, id_sample=id_sample, diff=diff,
                     feed=feed_report, embed_sample=embed_sample)


def feed_of(spec: Spec, src: Provider) -> FeedReport | None:
    """What the source's change feed looks like (cdc needs it; every plan reports stray feeds)."""
    feed = src.change_feed(spec.name)
    if feed is None:
        return None
    try:
        return feed.report()
    except VecmigError:
        if spec.strategy.type == "cdc":
            raise
        return None  # only a report for other strategies: it must never stop their plans
    finally:
        feed.close()


def as_written(spec: Spec, inventory: Inventory, prefix: str) -> Inventory:
    """The inventory as plans and state may hold it: no secret, and a value from the
    environment (a file path as collection) as written (``${env:DATA}/in.jsonl``).

    What that hides, a digest of the resolved values brings back into the fingerprint, so a
    saved plan is still stale when ``DATA`` points somewhere else at apply."""
    digest = spec.env_digest(prefix)
    if not spec.shown and not spec.secrets and digest is None:
        return inventory
    data = spec.redactor.walk(inventory.to_json())
    if digest is not None:
        data["extra"] = {**(data.get("extra") or {}), "env": digest}
    return Inventory.from_json(data)


def first_records(src: Provider, shards: tuple[dict[str, Any], ...], limit: int) -> Batch | None:
    """Up to ``limit`` records from the first shards, in scan order, as one batch."""
    parts: list[Batch] = []
    got = 0
    for shard in shards or (None,):
        scan = src.scan(shard, None, min(limit, 1000))
        try:
            for batch in scan:
                parts.append(batch.take(range(min(len(batch), limit - got))))
                got += len(parts[-1])
                if got >= limit:
                    break
        finally:
            close = getattr(scan, "close", None)
            if close is not None:
                close()
        if got >= limit:
            break
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    texts = None if all(p.texts is None for p in parts) else [
        t for p in parts for t in (p.texts if p.texts is not None else [None] * len(p))]
    return Batch(ids=[i for p in parts for i in p.ids], vectors=np.concatenate([p.vectors for p in parts]),
                 metadata=[m for p in parts for m in p.metadata], texts=texts)


def first_batch(src: Provider, shard: dict[str, Any] | None) -> Batch | None:
    scan = src.scan(shard, None, SAMPLE_RECORDS)
    try:
        batch = next(iter(scan), None)
    finally:
        close = getattr(scan, "close", None)
        if close is not None:
            close()  # a generator holding a cursor or queued fetches releases them now
    if batch is None or not len(batch):
        return None
    return batch.take(range(min(len(batch), SAMPLE_RECORDS)))
