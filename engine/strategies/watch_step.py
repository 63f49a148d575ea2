"""``rollback_on: {watch: 5m}``: a ``watch`` action right after the cutover, whatever the strategy.

It goes before anything that follows the cutover (decommission drops the old side the watch
compares with and switches back to); those wait for the watch.
"""

from __future__ import annotations

from dataclasses import replace

from vecmig import estimate
from vecmig.actions.watch import WatchParams
from vecmig.errors import PlanError
from vecmig.model import Action
from vecmig.quality.querylog import read_log
from vecmig.spec_runs import shown
from vecmig.strategies.context import PlanContext

WATCH_ID = "watch.target"


def add(ctx: PlanContext, actions: list[Action]) -> list[Action]:
    spec = ctx.spec
    ro = spec.rollback_on
    at = next((i for i, a in enumerate(actions) if a.kind == "cutover"), None)
    if ro is None or ro.watch is None or at is None:
        return actions
    # Imported here: vecmig.watch imports vecmig.actions, which imports the strategies (this
    # module), so a module-level import fails whenever vecmig.watch is imported first (`vecmig watch`).
    from vecmig.watch import searchable

    why = searchable(spec)
    if why is not None:
        raise PlanError(why, where=spec.where("/rollback_on/watch"), hint="remove rollback_on.watch for this pair")
    cutover = actions[at]
    q = ro.queries
    sha = None
    written = (((spec.public.get("rollback_on") or {}).get("queries") or {}).get("file", q.file))
    if q.file is not None:
        sha = read_log(spec.source.path(q.file), shown=str(written), key="rollback_on.queries.file", default_k=q.k,
                       dimension=ctx.schema.dimension).sha256
    params = WatchParams(cutover=cutover.id, triggers=ro.triggers(), duration=ro.watch, interval=ro.interval,
                         concurrency=ro.concurrency, sample=q.sample, seed=q.seed, k=q.k,
                         file=str(written) if q.file is not None else None, sha256=sha,
                         dimension=ctx.schema.dimension)
    what = " and ".join(w for w in (f"{q.sample} sampled records" if q.sample else "",
                                     f"the queries of {written}" if q.file else "") if w)
    triggers = ", ".join(f"{k} {v:g}" for k, v in ro.triggers().items())
    watch = Action(
        id=WATCH_ID,
        kind="watch",
        reason=(f"after the cutover, {spec.target.label} is watched against {spec.source.label} for "
                f"{shown(ro.watch)}, a round every {shown(ro.interval)} ({what}); when {triggers} is crossed, "
                f"readers are switched back ({cutover.reverse}) and the apply fails (exit 3)"),
        depends_on=(cutover.id,),
        params=params.to_json(),
        reversible=True,
        reverse="nothing to undo (read-only; a trigger switches readers back itself)",
        estimate=estimate.fixed(ro.watch, ro.watch + ro.interval),
    )
    out = [*actions[:at + 1], watch]
    for a in actions[at + 1:]:
        deps = tuple(dict.fromkeys(WATCH_ID if d == cutover.id else d for d in a.depends_on))
        out.append(replace(a, depends_on=deps) if deps != a.depends_on else a)
    return out
