"""The copy pipeline every strategy shares: create → copy shards → seal → index → validate."""

from __future__ import annotations

from dataclasses import asdict

from vecmig import estimate
from vecmig.model import Action
from vecmig.strategies.context import PlanContext


def create_target(ctx: PlanContext) -> list[Action]:
    if ctx.target.exists:
        return []
    s = ctx.schema
    t = ctx.spec.target
    return [Action(
        id="create_collection.target",
        kind="create_collection",
        reason=f"target {t.label} does not exist",
        params={"side": "target", "collection": t.collection, "schema": asdict(s)},
        reverse="drop the collection",
        estimate=estimate.fixed(0.05, 1.0),
    )]


def copy_shards(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    spec = ctx.spec
    actions = []
    width = len(str(max(len(ctx.shards) - 1, 0)))
    for i, shard in enumerate(ctx.shards):
        n = int(shard.get("records", 0))
        est = estimate.copy_estimate(n, n * ctx.bytes_per_record, ctx.source_cls.throughput,
                                     ctx.target_cls.throughput, spec.strategy.concurrency)
        reverse = ("restore the before-images of overwritten records and delete the rest"
                   if ctx.foreign_target else "nothing to undo record by record: the collection is dropped")
        actions.append(Action(
            id=f"copy.shard[{i:0{width}d}]",
            kind="copy_shard",
            reason=f"{n:,} source records in {describe_shard(shard)} are not in the target yet",
            depends_on=after,
            params={"shard": shard, "index": i, "before_images": ctx.foreign_target,
                    "fresh_target": not ctx.target.exists, "batch_size": spec.strategy.batch_size},
            reverse=reverse,
            estimate=est,
        ))
    return actions


def describe_shard(shard: dict[str, object]) -> str:
    if "lo" in shard or "hi" in shard:
        lo = "start" if shard.get("lo") is None else shard["lo"]
        hi = "end" if shard.get("hi") is None else shard["hi"]
        return f"ids [{lo}, {hi})"
    if "start" in shard:
        return f"bytes [{shard['start']}, {shard['end']})"
    if "row_groups" in shard:
        return f"row groups {shard['row_groups']}"
    return "the whole collection"


def seal_target(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    if not ctx.target_cls.needs_finalize:
        return []
    return [Action(
        id="finalize.target",
        kind="finalize",
        reason=f"{ctx.spec.target.provider} writes staged parts that are merged once every shard is in",
        depends_on=after,
        params={},
        reverse="remove the written file",
        estimate=estimate.scan_estimate(ctx.total_records, ctx.total_records * ctx.bytes_per_record,
                                        ctx.target_cls.throughput),
    )]


def delete_extra(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """A target that already held records must end up equal to the source: extras go."""
    if not (ctx.target.exists and (ctx.target.count or 0) > 0):
        return []
    return [Action(
        id="delete_extra.target",
        kind="delete_extra",
        reason=f"the target already holds up to {ctx.target.count:,} records; those not in the source are removed",
        depends_on=after,
        params={"before_images": ctx.foreign_target},
        reverse="re-insert the deleted records from their before-images",
        destructive=True,
        reversible=True,
        estimate=estimate.scan_estimate(ctx.target.count or 0, (ctx.target.count or 0) * ctx.bytes_per_record,
                                        ctx.target_cls.throughput, passes=2),
    )]


def build_index(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    spec = ctx.spec
    create = spec.target.create
    if create is None or create.index.type == "none" or not ctx.target_cls.capabilities.indexes:
        return []
    if ctx.target.index and ctx.target.index.get("type") == create.index.type:
        return []
    return [Action(
        id="build_index.target",
        kind="build_index",
        reason=f"{create.index.type} index is built after the load (faster than maintaining it per insert)",
        depends_on=after,
        params={"index": asdict(create.index), "metric": ctx.schema.metric},
        reverse="drop the index",
        estimate=estimate.index_estimate(ctx.total_records + (ctx.target.count or 0), ctx.schema.dimension,
                                         create.index.type),
    )]


def validate_completeness(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    v = ctx.spec.validate
    if not v.completeness:
        return []
    n = ctx.total_records
    est = (estimate.scan_estimate(n, n * ctx.bytes_per_record, ctx.source_cls.throughput)
           + estimate.scan_estimate(n, n * ctx.bytes_per_record, ctx.target_cls.throughput))
    return [Action(
        id="validate.completeness",
        kind="validate_completeness",
        reason="counts, id sets and per-shard checksums must match before anything switches",
        depends_on=after,
        params={"shards": list(ctx.shards), "checksums": v.checksums},
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=est,
    )]


def ids(actions: list[Action]) -> tuple[str, ...]:
    return tuple(a.id for a in actions)


def cutover(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    t = ctx.spec.target
    if not ctx.target_cls.capabilities.aliases:
        raise_no_alias(ctx)
    current = ctx.target.aliases.get(t.alias or "")
    if current == t.collection:
        return []
    return [Action(
        id="cutover.alias",
        kind="cutover",
        reason=f"readers of '{t.alias}' move from {current or 'nothing'} to {t.collection} in one transaction",
        depends_on=after,
        params={"alias": t.alias, "to": t.collection, "from": current},
        reverse=f"point '{t.alias}' back at {current}" if current else f"remove '{t.alias}'",
        estimate=estimate.fixed(0.05, 1.0),
    )]


def decommission(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    s = ctx.spec.source
    return [Action(
        id="decommission.source",
        kind="decommission",
        reason=f"strategy.decommission is set: the old collection {s.label} is dropped after cutover",
        depends_on=after,
        params={"collection": s.collection},
        reversible=False,
        reverse="cannot be undone: the old collection and its data are gone",
        destructive=True,
        estimate=estimate.fixed(0.05, 2.0),
    )]


def raise_no_alias(ctx: PlanContext) -> None:
    from vecmig.errors import PlanError

    raise PlanError(
        f"provider {ctx.spec.target.provider} has no aliases, so '{ctx.spec.target.alias}' cannot be switched",
        where=ctx.spec.where("/target/alias"),
        hint="remove target.alias, or use a target that supports aliases (pgvector views)",
    )


def pipeline(ctx: PlanContext, *, prune: bool) -> list[Action]:
    """create → copy shards → seal → (prune extras) → index → validate, each after the last."""
    out: list[Action] = []
    steps = [create_target, copy_shards, seal_target, delete_extra if prune else None,
             build_index, validate_completeness]
    after: tuple[str, ...] = ()
    for step in steps:
        if step is None:
            continue
        made = step(ctx) if step is create_target else step(ctx, after)  # type: ignore[call-arg]
        if made:
            out.extend(made)
            after = ids(made)
    return out
