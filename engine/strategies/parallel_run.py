"""parallel-run: both stores live; a recorded query log is replayed against both before cutover.

The copy is big-bang's pipeline, or cdc's (open the feed, copy, catch up) where the source
has a change feed, so the target keeps up with the source during the window. The replay
(``replay_queries``) starts once the copy and its index are in, beside the catch-up (it only
reads; an executor that runs actions side by side runs them together, a sequential one runs
the replay first and the catch-up then applies what the source changed meanwhile), and the
cutover waits for both. The replay's gate decides whether the cutover happens.
"""

from __future__ import annotations

from dataclasses import replace

from vecmig import estimate
from vecmig.actions.replay import ReplayParams
from vecmig.errors import PlanError, SpecError
from vecmig.model import Action, Estimate
from vecmig.providers import stores_that
from vecmig.quality.querylog import read_log
from vecmig.spec_runs import shown
from vecmig.strategies import big_bang, cdc, common
from vecmig.strategies.context import PlanContext

REPLAY_ID = "replay.queries"
# Queries/s one worker is assumed to get answered, for the time of a window given by count
# (a guess between a slow managed store and an in-process one; the measured rate is the report).
ASSUMED_QPS_PER_WORKER = (20.0, 1000.0)


def build(ctx: PlanContext) -> list[Action]:
    need_search(ctx)
    feed_usable = (ctx.feed is not None and ctx.source_provider is not None
                   and ctx.source_provider.change_feed(ctx.spec.name) is not None)
    actions = cdc.build(ctx) if feed_usable else big_bang.build(ctx)
    if not actions:
        return []  # nothing copied and nothing to switch: no cutover to gate
    replay = replay_action(ctx)
    catch_up = next((a for a in actions if a.id == "catch_up.source"), None)
    if catch_up is not None:
        # Beside the catch-up: after what it waits for (the copy), before what waits for it (the
        # plan's order puts the replay first, so an executor running one action at a time runs
        # it first). The catch-up goes on until the replay is done: the target keeps up with the
        # source for the whole window, and the cutover follows a catch-up that just ended.
        at = actions.index(catch_up)
        actions.insert(at, replace(replay, depends_on=catch_up.depends_on))
        if catch_up.kind == "catch_up":
            actions[at + 1] = replace(
                catch_up, params={**catch_up.params, "until_done": [REPLAY_ID]},
                reason=f"{catch_up.reason}; it goes on until the replay window ends, so the target keeps up with "
                       "the source while both are compared")
        nxt = at + 2
    else:
        gated = [i for i, a in enumerate(actions) if a.kind in ("cutover", "close_feed")]
        at = gated[0] if gated else len(actions)
        actions.insert(at, replace(replay, depends_on=common.ids(actions[at - 1:at])))
        nxt = at + 1
    if nxt < len(actions):
        follower = actions[nxt]
        actions[nxt] = replace(follower, depends_on=tuple(dict.fromkeys((*follower.depends_on, REPLAY_ID))))
    return actions


def need_search(ctx: PlanContext) -> None:
    """Both sides must answer queries, or the replay would compare nothing."""
    for side, cls, store in (("source", ctx.source_cls, ctx.spec.source), ("target", ctx.target_cls, ctx.spec.target)):
        if cls.capabilities.search == "none":
            raise PlanError(f"strategy parallel-run replays queries against both stores, but {side} provider "
                            f"{store.provider} cannot answer nearest-neighbour queries",
                            where=ctx.spec.where("/strategy/type"),
                            hint=f"use big-bang or blue-green for this pair (stores with search: "
                                 f"{stores_that(lambda c: c.capabilities.search != 'none')})")
    # A file source is searched exactly with the metric it records or its spec declares: without
    # either, every replayed query fails — found only after the whole copy, at the gate.
    src = ctx.spec.source
    if (ctx.source_cls.capabilities.search == "exact" and ctx.source.metric is None
            and (src.connection or {}).get("metric") is None):
        raise PlanError(f"strategy parallel-run replays queries against the source, but {src.provider} "
                        f"source records no metric, so it cannot be searched",
                        where=ctx.spec.where("/source/connection"),
                        hint="declare the metric its readers use: source.connection.metric: cosine "
                             "(or euclidean, dotproduct)")


def replay_action(ctx: PlanContext) -> Action:
    spec = ctx.spec
    r = spec.strategy.replay
    if r is None:  # the loader refuses parallel-run without a replay
        raise SpecError("strategy parallel-run needs strategy.replay", where=spec.where("/strategy"))
    written = ((spec.public.get("strategy") or {}).get("replay") or {}).get("file", r.file)
    log = read_log(spec.source.path(spec.resolve_shown(r.file)), shown=str(written), key="strategy.replay.file",
                   default_k=r.k, dimension=ctx.schema.dimension)
    gate = dict(spec.strategy.gate)
    params = ReplayParams(file=str(written), sha256=log.sha256, log_queries=len(log.queries),
                          duration=r.duration, queries=r.queries, workers=r.concurrency,
                          concurrency=spec.strategy.concurrency, rate=r.rate, k=r.k,
                          exact=r.exact, metric=ctx.source.metric or ctx.schema.metric,
                          dimension=ctx.schema.dimension, gate=gate)
    window = " or ".join(w for w in (shown(r.duration) if r.duration is not None else "",
                                      f"{r.queries:,} queries" if r.queries is not None else "") if w)
    pace = f", at most {r.rate:g} queries/s" if r.rate is not None else ""
    gated = ", ".join(f"{k} {v:g}" for k, v in gate.items()) or "no thresholds (measured and reported only)"
    return Action(
        id=REPLAY_ID,
        kind="replay_queries",
        reason=(f"the query log {written} ({len(log.queries):,} queries, sha256 {log.sha256[:12]}) is replayed "
                f"against both {spec.source.label} and {spec.target.label} for {window} at concurrency "
                f"{r.concurrency}{pace}; overlap, latency and errors are compared as it runs"
                + ("; recall against exact search over a source scan" if r.exact else "")
                + f"; the cutover is gated on {gated}. A replay window is measured whole: an interrupted apply "
                  "replays it again from the start"),
        params=params.to_json(),
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=replay_estimate(ctx, params),
    )


def replay_estimate(ctx: PlanContext, p: ReplayParams) -> Estimate:
    """The window's length: its duration, or its count at the rate (or at an assumed rate);
    whichever ends first when both are set. Plus one source scan for exact answers."""
    bounds: list[tuple[float, float]] = []
    if p.duration is not None:
        bounds.append((p.duration, p.duration))
    if p.queries is not None:
        n = float(p.queries)
        if p.rate is not None:
            bounds.append((n / p.rate, n / p.rate))
        else:
            fast, slow = ASSUMED_QPS_PER_WORKER[1], ASSUMED_QPS_PER_WORKER[0]
            bounds.append((n / (fast * p.workers), n / (slow * p.workers)))
    low, high = min(b[0] for b in bounds), min(b[1] for b in bounds)
    est = estimate.fixed(round(low, 3), round(max(high, low), 3))
    if p.exact:
        n_records = ctx.total_records
        est = est + estimate.scan_estimate(n_records, n_records * ctx.bytes_per_record, ctx.read_model)
    return est
