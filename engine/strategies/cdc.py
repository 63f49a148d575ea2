"""cdc: snapshot copy, then catch up a live source through its change feed until cutover.

open the feed (before anything is read, so no change between snapshot and stream is lost)
→ the shared copy pipeline → catch up until the lag is at most ``max_lag`` (with
``freeze_writes``: freeze the source's writers and drain exactly) → validate completeness
→ validate queries (``validate.queries``) → cutover (alias or pointer) → close the feed (end
the freeze, drop what the source retains).

Completeness is validated only with ``freeze_writes``: a source that keeps changing differs
from any copy of it by whatever it changed last, so the check could only fail or be lax.
"""

from __future__ import annotations

from dataclasses import replace

from vecmig import estimate
from vecmig.actions.params import CatchUpDiffParams, CatchUpParams
from vecmig.errors import PlanError
from vecmig.model import Action, Warning_
from vecmig.refresh import Refreshed
from vecmig.spec import Spec
from vecmig.state.reader import StateReader
from vecmig.strategies import common
from vecmig.strategies.context import PlanContext

# Lint codes: a feed left on the source that no open round of this migration owns (VM116),
# the feed of an unfinished round (VM117).
UNOWNED = "VM116"
UNFINISHED = "VM117"
FEED_RESOURCE = "change_feed"
VALIDATIONS = ("validate_completeness", "validate_queries", "validate_retrieval")
GATES = ("validate_queries", "validate_retrieval")  # run after the catch-up, one after the other


def build(ctx: PlanContext) -> list[Action]:
    spec = ctx.spec
    feed = ctx.feed
    if feed is None or ctx.source_provider is None or ctx.source_provider.change_feed(spec.name) is None:
        return by_diffs(ctx)
    if feed.problem:
        raise PlanError(feed.problem, where=spec.where("/source/connection"), hint=feed.hint)
    if ctx.diffed and not common.writes(common.pipeline(ctx, prune=True)):
        return nothing_to_catch_up(ctx, common.pipeline(ctx, prune=True))
    s = spec.strategy
    opened = [Action(
        id="open_feed.source",
        kind="open_feed",
        reason=(f"changes to {spec.source.label} are recorded from here on (replication slot and publication "
                f"{feed.name}), before the snapshot copy reads a record, so none is lost"),
        params={"feed": feed.name},
        reverse=f"drop the replication slot and publication {feed.name}",
        estimate=estimate.fixed(0.1, 5.0),
    )]
    pipeline = common.pipeline(ctx, prune=True)
    if ctx.diffed:
        pipeline = resync_after_open(ctx, pipeline, opened[0])
    after = common.ids(opened)
    copy = [replace(a, depends_on=after) if not a.depends_on else a for a in pipeline
            if a.kind not in VALIDATIONS]
    checks = [a for a in pipeline if a.kind == "validate_completeness"] if s.freeze_writes else []
    lag = f"{s.max_lag_seconds:g}s" if s.max_lag_seconds is not None else f"{s.max_lag:,} change(s)"
    last = copy[-1:] or opened
    catch_up = Action(
        id="catch_up.source",
        kind="catch_up",
        reason=(f"changes committed to the source since the feed opened are applied in commit order until the "
                f"target trails it by at most {lag}"
                + ("; then writes to the source are frozen (reads go on) and the last changes drained, so "
                   "validation and cutover see a source that no longer moves" if s.freeze_writes else
                   "; completeness is not validated: without strategy.freeze_writes the source keeps changing")),
        depends_on=common.ids(last),
        params=CatchUpParams(feed=feed.name, batch_size=ctx.copy_batch, max_lag=s.max_lag,
                             max_lag_seconds=s.max_lag_seconds, freeze_writes=s.freeze_writes,
                             before_images=ctx.foreign_target, closed_by="close_feed.source").to_json(),
        reverse=("restore the before-images of overwritten records and delete the rest" if ctx.foreign_target
                 else "nothing to undo record by record: the collection is dropped"),
        # Unknown ahead: it lasts as long as the source keeps writing faster than max_lag allows.
        estimate=estimate.fixed(1.0, 60.0),
    )
    actions = opened + copy + [catch_up]
    checks = [replace(a, depends_on=(catch_up.id,)) for a in checks]
    actions += checks
    actions += queries_after(pipeline, actions[-1])
    if common.needs_cutover(ctx):
        actions += common.cutover(ctx, common.ids(actions[-1:]))
    actions.append(Action(
        id="close_feed.source",
        kind="close_feed",
        reason=(("writes to the source are released and " if s.freeze_writes else "")
                + f"the replication slot and publication {feed.name} are dropped: the source stops "
                  "retaining changes for vecmig"),
        depends_on=common.ids(actions[-1:]),
        params={"feed": feed.name, "opened_by": opened[0].id},
        reverse="nothing to undo (the feed is not needed once the round is over)",
        estimate=estimate.fixed(0.05, 2.0),
    ))
    return actions


def queries_after(pipeline: list[Action], last: Action) -> list[Action]:
    """Query parity runs once the target has caught up (and after completeness, where that is
    validated), just before the cutover: without ``freeze_writes`` the source may still move by
    up to ``max_lag`` records, which the gate's thresholds absorb."""
    out: list[Action] = []
    for a in pipeline:
        if a.kind in GATES:
            out.append(replace(a, depends_on=((out[-1] if out else last).id,)))
    return out


def resync_after_open(ctx: PlanContext, pipeline: list[Action], opened: Action) -> list[Action]:
    """A target that already holds records: the plan's diff is older than the feed, so a change
    made between the two would be in neither. The delta is found again by one diff pass right
    after the feed opens (every later change is in the feed), instead of the plan's id lists."""
    dropped = {a.id for a in pipeline if a.kind in ("copy_shard", "delete_extra")}
    n = sum(int(a.estimate.records) for a in pipeline if a.kind == "copy_shard")
    sync = Action(
        id="sync.target",
        kind="catch_up_diff",
        reason=(f"the target already holds records: once the feed is open, source and target are diffed again "
                f"and what differs is written (the plan found {n:,} record(s) to write"
                + (f" and {ctx.diff.delete_count:,} to delete" if ctx.diff and ctx.diff.delete_count else "")
                + "); changes after the feed opened come from the feed"),
        depends_on=(opened.id,),
        params=CatchUpDiffParams(shards=list(ctx.shards), batch_size=ctx.copy_batch, max_lag=0, passes=1,
                                 before_images=ctx.foreign_target, concurrency=ctx.spec.strategy.concurrency,
                                 shard_size=ctx.spec.strategy.shard_size).to_json(),
        reverse=("restore the before-images of overwritten records and delete the rest" if ctx.foreign_target
                 else "nothing to undo record by record: the collection is dropped"),
        estimate=estimate.scan_estimate(ctx.total_records, ctx.total_records * ctx.bytes_per_record,
                                        ctx.read_model, passes=2),
        records=ctx.diff.counts.to_json() if ctx.diff else None,
    )
    out = [sync]
    for a in pipeline:
        if a.id in dropped:
            continue
        deps = tuple(dict.fromkeys(sync.id if d in dropped else d for d in a.depends_on)) or (sync.id,)
        out.append(replace(a, depends_on=deps))
    return out


def nothing_to_catch_up(ctx: PlanContext, pipeline: list[Action]) -> list[Action]:
    """The target already equals the source record for record (the plan's diff found nothing to
    move): no feed to open and nothing to catch up; only what else the pipeline wants (an index)
    and a cutover not made yet."""
    actions = list(pipeline)
    if common.needs_cutover(ctx):
        actions += common.cutover(ctx, common.ids(actions[-1:]))
    return actions


def by_diffs(ctx: PlanContext) -> list[Action]:
    """A source without a change feed (files, Pinecone): snapshot copy, then repeated
    record-level diffs until one finds at most ``max_lag`` records to move."""
    spec = ctx.spec
    s = spec.strategy
    if s.max_lag_seconds is not None:
        raise PlanError(
            f"source provider {spec.source.provider} has no change feed, so vecmig cannot tell how old a change is: "
            "strategy.max_lag must be a number of records here",
            where=spec.where("/strategy/max_lag"), hint="write e.g. `max_lag: 100` (records that may still differ)")
    if s.freeze_writes:
        raise PlanError(
            f"strategy.freeze_writes needs a change feed, and source provider {spec.source.provider} has none",
            where=spec.where("/strategy/freeze_writes"),
            hint="remove freeze_writes (stop the source's writers yourself, then set max_lag: 0)")
    pipeline = common.pipeline(ctx, prune=True)
    if ctx.diffed and not common.writes(pipeline):
        return nothing_to_catch_up(ctx, pipeline)
    copy = [a for a in pipeline if a.kind not in VALIDATIONS]
    n = ctx.total_records
    catch_up = Action(
        id="catch_up.source",
        kind="catch_up_diff",
        reason=(f"{spec.source.provider} has no change feed: the source is diffed against the target again and "
                f"what differs is written, pass after pass, until a pass finds at most {s.max_lag:,} record(s) "
                "to move" + ("; then completeness is validated" if s.max_lag == 0 else
                             "; completeness is not validated (max_lag above 0 lets records differ)")),
        depends_on=common.ids(copy[-1:]),
        params=CatchUpDiffParams(shards=list(ctx.shards), batch_size=ctx.copy_batch, max_lag=s.max_lag,
                                 before_images=ctx.foreign_target, concurrency=s.concurrency,
                                 shard_size=s.shard_size).to_json(),
        reverse=("restore the before-images of overwritten records and delete the rest" if ctx.foreign_target
                 else "nothing to undo record by record: the collection is dropped"),
        # At least one diff pass: both sides read once more.
        estimate=estimate.scan_estimate(n, n * ctx.bytes_per_record, ctx.read_model, passes=2),
    )
    actions = [*copy, catch_up]
    if s.max_lag == 0:
        actions += [replace(a, depends_on=(catch_up.id,)) for a in pipeline if a.kind == "validate_completeness"]
    actions += queries_after(pipeline, actions[-1])
    if common.needs_cutover(ctx):
        actions += common.cutover(ctx, common.ids(actions[-1:]))
    return actions


def findings(spec: Spec, seen: Refreshed, state: StateReader | None) -> list[Warning_]:
    """Change feeds on the source: a forgotten one keeps WAL until the source's disk is full."""
    if seen.feed is None or not seen.feed.feeds:
        return []
    owned: dict[str, int] = {}  # feed name -> round of an unfinished round that owns it
    if state is not None:
        open_rounds = {r["round"] for r in state.rounds() if r["status"] in ("in_progress", "rolling_back")}
        live: dict[str, bool] = {}
        for r in state.resources():
            if r["kind"] != FEED_RESOURCE:
                continue
            live[r["name"]] = r["state"] != "reverted" and r["round"] in open_rounds
            if live[r["name"]]:
                owned[r["name"]] = int(r["round"])
            else:
                owned.pop(r["name"], None)
    out = []
    for f in seen.feed.feeds:
        retained = f"{f.retained_bytes / 1e6:.1f} MB"
        if f.name in owned:
            out.append(Warning_(
                UNFINISHED,
                f"replication slot {f.name} of round {owned[f.name]}, which did not finish, holds {retained} of "
                "WAL on the source, and more with every write until it is dropped",
                "warning",
                "run `vecmig apply` to finish the round (its last action drops the slot) or `vecmig rollback`"))
        else:
            out.append(Warning_(
                UNOWNED,
                f"replication slot {f.name} on the source is not owned by an unfinished round of this migration"
                f"{' and is in use' if f.active else ''}; it holds {retained} of WAL, and more with every write",
                "warning",
                f"if no migration uses it: SELECT pg_drop_replication_slot('{f.name}'); "
                f"DROP PUBLICATION IF EXISTS {f.name};"))
    return out
