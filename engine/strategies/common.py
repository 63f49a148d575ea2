"""The copy pipeline every strategy shares: create → copy shards → seal → index → validate (completeness,
then queries)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from vecmig import estimate, indexes, pointer
from vecmig.actions.params import CopyShardParams, DeleteExtraParams, ValidateCompletenessParams
from vecmig.diff import ShardDelta
from vecmig.errors import PlanError
from vecmig.ids import unique_by_namespace
from vecmig.model import Action
from vecmig.providers import stores_that
from vecmig.spec import Spec
from vecmig.strategies.context import PlanContext
from vecmig.strategies.queries import validate_queries
from vecmig.strategies.retrieval import validate_retrieval


def validate_ids(ctx: PlanContext) -> list[Action]:
    """Before anything is written: every source id once, all of one type (see vecmig.ids)."""
    n = ctx.source.count or 0
    # Without a provider instance nothing vouches for the store's ids: check them (the safe side).
    unique = ctx.source_provider is not None and ctx.source_provider.ids_unique_by_store(ctx.source)
    if not n or unique or unique_by_namespace(ctx.spec):
        return []
    kinds = {"int": "integers", "text": "strings"}
    id_type = ctx.source.id_type
    return [Action(
        id="validate.ids",
        kind="validate_ids",
        reason=(f"{ctx.spec.source.label} does not guarantee unique ids: all {n:,} must be distinct and "
                f"{kinds.get(id_type or '', 'of one type')} before a record is written (a repeated id would "
                "land once, leaving fewer records than the source holds)"),
        params={"id_type": id_type},
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=estimate.ids_estimate(n, n * ctx.bytes_per_record, ctx.read_model),
    )]


def create_target(ctx: PlanContext, after: tuple[str, ...] = ()) -> list[Action]:
    if ctx.target.exists:
        return []
    s = ctx.schema
    t = ctx.spec.target
    return [Action(
        id="create_collection.target",
        kind="create_collection",
        reason=f"target {t.label} does not exist",
        depends_on=after,
        params={"side": "target", "collection": t.collection, "schema": asdict(s)},
        reverse="drop the collection",
        estimate=estimate.create_estimate(ctx.write_model),
    )]


def copy_shards(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """One action per source shard that has records to write: all of them into an empty
    target; into one that holds records, only what the diff found missing or different (its
    ids listed in the action where few enough, else the whole shard, rewritten in place)."""
    spec = ctx.spec
    actions = []
    width = len(str(max(len(ctx.shards) - 1, 0)))
    for i, shard in enumerate(ctx.shards):
        delta = ctx.delta(i)
        total = int(shard.get("records", 0))
        if delta is not None and ctx.diffed:
            total = delta.counts.add + delta.counts.change + delta.counts.unchanged
            if not delta.counts.add and not delta.counts.change:
                continue
        listed = delta.ids if (delta is not None and ctx.diffed) else None
        n = len(listed) if listed is not None else total
        est = estimate.copy_estimate(n, n * ctx.bytes_per_record, *ctx.copy_models, spec.strategy.concurrency)
        # Metered stores: reading the shard, writing it, and holding it through the transition.
        est = estimate.with_cost(est, ctx.cost("source", "fetch" if listed is not None else "scan", n),
                                 ctx.cost("target", "write", n),
                                 ctx.cost("target", "storage", n, months=ctx.transition_months))
        reverse = ("restore the before-images of overwritten records and delete the rest"
                   if ctx.foreign_target else "nothing to undo record by record: the collection is dropped")
        params = CopyShardParams(
            shard=shard, index=i, before_images=ctx.foreign_target, fresh_target=not ctx.target.exists,
            batch_size=ctx.copy_batch, concurrency=spec.strategy.concurrency,
            ids=None if listed is None else [rid if isinstance(rid, int | str) else str(rid) for rid in listed],
            embed=ctx.embed,
        ).to_json()
        records = None
        if delta is not None:
            records = {**delta.counts.to_json(), "delete": 0}
        actions.append(Action(
            id=f"copy.shard[{i:0{width}d}]",
            kind="copy_shard",
            reason=copy_reason(ctx, shard, total, delta, listed is not None),
            depends_on=after,
            params=params,
            reverse=reverse,
            estimate=est,
            records=records,
        ))
    if 0 < len(actions) < spec.strategy.concurrency:
        # The executor runs min(concurrency, shards) workers: fewer shards, fewer in parallel.
        actions = [replace(a, estimate=replace(estimate.copy_estimate(
            a.estimate.records, a.estimate.bytes, *ctx.copy_models, len(actions)), cost=a.estimate.cost))
            for a in actions]
    return actions


def copy_reason(ctx: PlanContext, shard: dict[str, Any], total: int, delta: ShardDelta | None,
                listed: bool) -> str:
    where = ctx.source_cls.describe_shard(shard)
    if delta is None or not ctx.diffed:
        return f"{total:,} source records in {where}: all to add (the target holds none yet)"
    c = delta.counts
    parts = [f"{c.add:,} to add" if c.add else "", f"{c.change:,} to change" if c.change else ""]
    what = ", ".join(p for p in parts if p)
    how = ("only those are written, by id" if listed else
           f"the whole shard is copied, which is faster for so many (the {c.unchanged:,} unchanged are "
           "rewritten as they are)" if c.unchanged else "the whole shard is copied")
    return f"{total:,} source records in {where}: {what}, {c.unchanged:,} unchanged; {how}"


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
        estimate=estimate.finalize_estimate(ctx.total_records, ctx.total_records * ctx.bytes_per_record,
                                            ctx.write_model),
    )]


def delete_extra(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """A target that already held records must end up equal to the source: extras go.

    Destructive only where records this migration did not write may go; in a collection it
    created (or records it wrote itself) it removes its own copies of records the source no
    longer has, which rollback undoes by dropping the collection or from before-images.
    With the record-level diff the extras are known: the action lists them (or, when too many
    to list, finds them again by reading both sides) and is planned only when there are some."""
    if not (ctx.target.exists and (ctx.target.count or 0) > 0):
        return []
    diff = ctx.diff if ctx.diffed else None
    if diff is not None and diff.delete_count == 0:
        return []
    foreign = ctx.foreign_count > 0
    if diff is not None:
        n = diff.delete_count
        reason = (f"{n:,} target record(s) are not in the source and are removed"
                  + ("" if foreign else " (none of them there before this migration)"))
    else:
        n = ctx.target.count or 0
        reason = (f"the target already holds up to {n:,} records; those not in the source are removed"
                  if foreign else
                  f"the target holds {n:,} records, none of them there before this migration; "
                  "those not in the source are removed")
    listed = None if diff is None or diff.delete_ids is None else [
        list(rid) if isinstance(rid, tuple) else rid for rid in diff.delete_ids]
    params = DeleteExtraParams(before_images=ctx.foreign_target, batch_size=ctx.spec.strategy.batch_size,
                               ids=listed).to_json()
    scan = (estimate.scan_estimate(n, n * ctx.bytes_per_record, ctx.write_model) if "ids" in params else
            estimate.scan_estimate(ctx.target.count or 0, (ctx.target.count or 0) * ctx.bytes_per_record,
                                   ctx.write_model, passes=2))
    cost = ((ctx.cost("target", "fetch", n),) if "ids" in params else
            (ctx.cost("source", "scan", ctx.total_records), ctx.cost("target", "scan", ctx.target.count or 0)))
    return [Action(
        id="delete_extra.target",
        kind="delete_extra",
        reason=reason,
        depends_on=after,
        params=params,
        reverse=("re-insert the deleted records from their before-images" if ctx.foreign_target
                 else "nothing to undo record by record: the collection is dropped"),
        destructive=foreign,
        reversible=True,
        estimate=estimate.with_cost(scan, *cost),
        records={"add": 0, "change": 0, "delete": n, "unchanged": 0} if diff is not None else None,
    )]


def build_index(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """The index vecmig.indexes decides on (the spec's, else the source's carried over), frozen
    into the action: apply builds exactly this, never looking at the spec or the source again."""
    index = indexes.resolve(ctx.spec, ctx.source, ctx.target, ctx.target_cls, ctx.target_owned).index
    if index is None or not ctx.target_cls.capabilities.indexes:
        return []
    if ctx.target.index and ctx.target.index.get("type") == index.type:
        return []
    # A store that builds no index at this size (LanceDB under 200 rows, LD001) got a build_index
    # that built nothing in every round, so apply after success never said "no changes".
    deferred = getattr(ctx.target_cls, "index_deferred", None)
    if deferred is not None and deferred(ctx.total_records + ctx.foreign_count):
        return []
    create = ctx.spec.target.create
    asked = create is not None and create.index is not None
    chosen = "target.create.index" if asked else "carried over from the source"
    return [Action(
        id="build_index.target",
        kind="build_index",
        reason=f"{indexes.spec_words(index)} index ({chosen}) is built after the load "
               "(faster than maintaining it per insert)",
        depends_on=after,
        params={"index": asdict(index), "metric": ctx.schema.metric},
        reverse="drop the index",
        estimate=estimate.index_estimate(ctx.total_records + ctx.foreign_count, ctx.schema.dimension,
                                         index.type),
    )]


def validate_completeness(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    v = ctx.spec.validate
    if not v.completeness:
        return []
    n = ctx.total_records
    est = estimate.validate_estimate(n, n * ctx.bytes_per_record, ctx.read_model, ctx.write_model,
                                     server_digest=ctx.spec.mapping.is_identity)
    # The source is scanned again; the target is read by id (fetch), not scanned.
    est = estimate.with_cost(est, ctx.cost("source", "scan", n), ctx.cost("target", "fetch", n))
    return [Action(
        id="validate.completeness",
        kind="validate_completeness",
        reason="counts, id sets and per-shard checksums must match before anything switches",
        depends_on=after,
        params=ValidateCompletenessParams(
            shards=list(ctx.shards), checksums=v.checksums, batch_size=ctx.spec.strategy.batch_size,
            concurrency=ctx.spec.strategy.concurrency, shard_size=ctx.spec.strategy.shard_size,
            **reembedded(ctx.spec)).to_json(),
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=est,
    )]


def reembedded(spec: Spec) -> dict[str, Any]:
    """The completeness check's frozen flags when the copies re-embed: vectors not compared,
    ``keep_old`` compared to the source's vector (vecmig.diff.reembedded)."""
    embed = spec.transform.embed
    return {} if embed is None else {"reembedded": True, "keep_old": embed.keep_old}


def ids(actions: list[Action]) -> tuple[str, ...]:
    return tuple(a.id for a in actions)


def needs_cutover(ctx: PlanContext) -> bool:
    return bool(ctx.spec.target.alias or ctx.spec.target.live_pointer)


def cutover(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """Swap the alias where the store has aliases; repoint the pointer where it has not."""
    t = ctx.spec.target
    if t.alias is None and t.live_pointer is not None:
        return pointer_cutover(ctx, after)
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


def pointer_cutover(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    """Repoint what readers follow (a file and/or a command) at the new collection.

    Params hold the pointer as written in the spec (placeholders intact: plans are public);
    the resolved values are read from the spec when the action runs. What the file points
    at now is read here (read-only) so the plan can say from where readers move.
    """
    t = ctx.spec.target
    written = (ctx.spec.public.get("target") or {}).get("pointer") or {}
    live = t.live_pointer
    assert live is not None
    current = pointer.current_index(t.path(live.file)) if live.file else None
    if current == t.collection and not live.command:
        return []
    where = " and ".join(w for w in (f"pointer file {written['file']}" if "file" in written else "",
                                      "the pointer command" if "command" in written else "") if w)
    params: dict[str, Any] = {
        "pointer": {k: written[k] for k in ("file", "command") if k in written},
        "to": t.collection,
        "namespace": t.namespace,
        "from": current,
    }
    # Say exactly what cutover touches: the file it replaces (where it really is) and the command it runs.
    does = []
    if "file" in written and live.file:
        shown = pointer.shown_path(str(written["file"]), t.path(live.file))
        params["writes"] = shown
        state = "replaced atomically" if t.path(live.file).exists() else "created; it does not exist now"
        does.append(f"writes {shown} ({state})")
    if "command" in written:
        params["runs"] = written["command"]
        does.append(f"runs `{written['command']}`")
    return [Action(
        id="cutover.pointer",
        kind="cutover",
        reason=f"readers following {where} move from {current or 'nothing recorded'} to {t.collection}: "
               + " and ".join(does),
        depends_on=after,
        params=params,
        reverse=(f"point {where} back at {current}" if current
                 else f"restore {where} to what it was before (file: removed if it did not exist)"),
        # A command's timeout is its limit, not its duration: typical repoint scripts take seconds.
        estimate=estimate.fixed(0.1, 10.0) if live.command else estimate.fixed(0.05, 1.0),
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
    raise PlanError(
        f"provider {ctx.spec.target.provider} has no aliases, so '{ctx.spec.target.alias}' cannot be switched",
        where=ctx.spec.where("/target/alias"),
        hint="replace target.alias with `pointer: {file: ...}` (a file readers follow) or `pointer: {command: ...}`, "
             f"or use a target that supports aliases ({stores_that(lambda c: c.capabilities.aliases)})",
    )


def pipeline(ctx: PlanContext, *, prune: bool) -> list[Action]:
    """create → copy shards → seal → (prune extras) → index → validate, each after the last."""
    out: list[Action] = []
    out.extend(validate_ids(ctx))
    # A collection holding only what this migration wrote is pruned in every strategy: records it copied in an
    # earlier round that the source no longer has would otherwise fail validation forever.
    prune = prune or ctx.target_owned or (ctx.target.exists and ctx.foreign_count == 0)
    steps = [create_target, copy_shards, seal_target, delete_extra if prune else None,
             build_index, validate_completeness]
    after: tuple[str, ...] = ids(out)
    for step in steps:
        if step is None:
            continue
        made = step(ctx, after)
        if step is seal_target and not writes(out):
            made = []  # nothing staged: the diff found no record to write
        if step is validate_completeness and not writes(out):
            made = []  # the diff that planned no write already compared every record
        if made:
            out.extend(made)
            after = ids(made)
    if not writes(out):
        # Nothing is written, so the id check goes, and with it what waited on it (the executor
        # refuses a dependency on an action that is not in the plan).
        checks = {a.id for a in out if a.kind == "validate_ids"}
        out = [replace(a, depends_on=tuple(d for d in a.depends_on if d not in checks))
               for a in out if a.kind != "validate_ids"]
    # Query parity gates what this round wrote and any switch still to come; a target already
    # equal to the source and already live has nothing left to gate.
    # Retrieval quality (validate.retrieval) likewise, after it.
    v = ctx.spec.validate
    if (v.queries is not None or v.retrieval is not None) and (writes(out) or (needs_cutover(ctx)
                                                                               and cutover(ctx, ()))):
        out.extend(validate_queries(ctx, ids(out[-1:])))
        out.extend(validate_retrieval(ctx, ids(out[-1:])))
    return out


WRITING = frozenset({"create_collection", "copy_shard", "delete_extra"})


def writes(actions: list[Action]) -> bool:
    return any(a.kind in WRITING for a in actions)
