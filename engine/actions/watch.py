"""watch: the last step of apply under ``rollback_on: {watch: 5m}``: the new target watched
against the old side right after cutover (see :mod:`vecmig.watch`).

Everything it needs is frozen in the plan (:class:`WatchParams`: triggers, queries, window,
interval, the cutover it watches). A trigger that fires switches readers back through the
cutover's inverse and fails the apply with exit 3; the next apply cuts over and watches
again. Read-only otherwise: nothing to undo. Interrupted, the next apply watches again from
the start (a window is measured whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vecmig import watch as core
from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import Interrupted, TerminalError
from vecmig.model import Action
from vecmig.quality.queries import Query
from vecmig.quality.querylog import read_planned
from vecmig.spec_runs import QuerySourceSpec


@dataclass(frozen=True)
class WatchParams:
    cutover: str  # the action id of the cutover watched
    triggers: dict[str, float]
    duration: float
    interval: float
    concurrency: int
    sample: int | None = None
    seed: int = 0
    k: int = 10
    file: str | None = None
    sha256: str | None = None
    dimension: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"cutover": self.cutover, "triggers": dict(self.triggers), "duration": self.duration,
                "interval": self.interval, "concurrency": self.concurrency, "sample": self.sample, "seed": self.seed,
                "k": self.k, "file": self.file, "sha256": self.sha256, "dimension": self.dimension}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WatchParams:
        return cls(cutover=str(d["cutover"]), triggers={str(k): float(v) for k, v in d["triggers"].items()},
                   duration=float(d["duration"]), interval=float(d["interval"]), concurrency=int(d["concurrency"]),
                   sample=int(d["sample"]) if d.get("sample") is not None else None, seed=int(d.get("seed", 0)),
                   k=int(d.get("k", 10)), file=d.get("file"), sha256=d.get("sha256"),
                   dimension=int(d["dimension"]) if d.get("dimension") is not None else None)


class Watch(ActionKind):
    kind = "watch"
    effect = "read"

    def summarise(self, result: dict[str, Any]) -> str:
        rounds = result.get("rounds") or []
        return f" · {len(rounds)} round(s), no trigger fired" if rounds else ""

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = WatchParams.from_json(action.params)
        live = core.live_cutover(ctx.state, ctx.round)
        if live is None or live.action.id != p.cutover:
            raise TerminalError(f"{action.id}: cutover {p.cutover} of round {ctx.round} is not live, so there is "
                                "nothing to watch", hint="run `vecmig apply` again (it cuts over first)")
        queries = self._queries(ctx, p)
        out = core.watch(ctx.spec, ctx.state, live, p.triggers, queries, duration=p.duration, interval=p.interval,
                         concurrency=p.concurrency, say=lambda line: ctx.reporter.note(f"{action.id}: {line}"),
                         stop=ctx.stop, reporter=ctx.reporter)
        if out.stopped:
            raise Interrupted(f"interrupted: {action.id} stopped after {len(out.rounds)} round(s); a watch window "
                              "is measured whole", hint="run `vecmig apply` again: the watch starts over")
        return {"rounds": [r.to_json() for r in out.rounds], "watched_s": p.duration, "cutover": p.cutover}

    def _queries(self, ctx: RunContext, p: WatchParams) -> list[Query]:
        sampled: list[Query] = []
        if p.sample:
            sampled, _ = core.queries_for(ctx.spec, QuerySourceSpec(sample=p.sample, seed=p.seed, k=p.k))
        if p.file is not None and p.sha256 is not None:
            sampled += read_planned(ctx.spec.source.path(p.file), shown=p.file, key="rollback_on.queries.file",
                                    default_k=p.k, dimension=p.dimension, sha256=p.sha256).queries
        return sampled
