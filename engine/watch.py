"""After a cutover: the live target watched against the old side, readers switched back on a trigger.

Round after round, the same queries go to the new target and to the old side (the spec's
source: the blue collection, still there until decommission) at once
(:class:`vecmig.quality.shadow.Shadow`); each round's overlap@k, p95 ratio (new / old) and
error rate are checked against ``rollback_on``. Every round is recorded in the audit log
(``watch_round``). When a trigger fires, the event ``rollback_triggered`` names it, the
measured value and the threshold, and the cutover's inverse runs through the same machinery
rollback uses (``KINDS[kind].inverse`` → the executor's ``run_actions``; the cutover's row
becomes "rolled_back"): only the switch goes back, never the data. Then
:class:`RollbackTriggered` ends the watch with its own exit code.

Used by `vecmig watch` (``operations/watch.py``) and by the ``watch`` action of apply.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vecmig.actions.base import Reporter, RunContext, SilentReporter
from vecmig.errors import VecmigError
from vecmig.model import Action
from vecmig.quality import metrics
from vecmig.quality.queries import Query, sample_queries
from vecmig.quality.querylog import read_log
from vecmig.quality.shadow import Shadow
from vecmig.spec import Spec
from vecmig.spec_runs import QuerySourceSpec, RollbackOnSpec
from vecmig.state.rows import ActionRow
from vecmig.state.store import StateStore

EXIT_TRIGGERED = 3
SCAN_BATCH = 1000


class RollbackTriggered(VecmigError):
    """A rollback trigger fired after cutover: readers were switched back to the old side."""

    exit_code = EXIT_TRIGGERED


@dataclass(frozen=True)
class Live:
    """The cutover readers follow now: its round, the action as planned and its row."""

    round: int
    action: Action
    row: ActionRow


def live_cutover(state: StateStore, round_no: int | None = None) -> Live | None:
    """The newest cutover that is done and not undone (in ``round_no`` only, when given)."""
    live = sorted((r["round"] for r in state.rounds() if r["status"] != "rolled_back"), reverse=True)
    for rnd in live:
        if round_no is not None and rnd != round_no:
            continue
        for row in reversed(state.actions(rnd)):
            if row["kind"] == "cutover" and row["status"] == "done":
                return Live(rnd, Action.from_json(json.loads(row["params_json"])), row)
    return None


def decommissioned(state: StateStore, round_no: int) -> bool:
    return any(r["kind"] == "decommission" and r["status"] in ("done", "running") for r in state.actions(round_no))


@dataclass(frozen=True)
class Fired:
    trigger: str
    value: float
    threshold: float

    def sentence(self) -> str:
        if self.trigger == "min_overlap":
            return f"overlap {self.value:.3f} < min_overlap {self.threshold:g}"
        if self.trigger == "max_p95_ratio":
            return f"p95 ratio {self.value:.2f} > max_p95_ratio {self.threshold:g}"
        return f"error rate {self.value:.3f} > max_error_rate {self.threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "value": round(self.value, 6), "threshold": self.threshold}


@dataclass(frozen=True)
class Round:
    no: int
    queries: int
    k: int
    overlap: float | None
    p95_new: float | None  # ms
    p95_old: float | None
    error_rate: float  # share of the new target's queries that failed
    error_rate_old: float
    fired: tuple[Fired, ...] = ()

    @property
    def p95_ratio(self) -> float | None:
        if self.p95_new is None or not self.p95_old:
            return None
        return self.p95_new / self.p95_old

    def line(self) -> str:
        ov = "–" if self.overlap is None else f"{self.overlap:.3f}"
        ratio = "" if self.p95_ratio is None else f" (×{self.p95_ratio:.2f})"
        new = "–" if self.p95_new is None else f"{self.p95_new:.1f} ms"
        old = "–" if self.p95_old is None else f"{self.p95_old:.1f} ms"
        verdict = ("TRIGGERED: " + "; ".join(f.sentence() for f in self.fired)) if self.fired else "ok"
        return (f"round {self.no}: {self.queries} queries · overlap@{self.k} {ov} · p95 {new} new / {old} old"
                f"{ratio} · errors {self.error_rate:.1%} · {verdict}")

    def to_json(self) -> dict[str, Any]:
        r = self.p95_ratio
        return {"round": self.no, "queries": self.queries, "k": self.k, "overlap": self.overlap,
                "p95_new_ms": self.p95_new, "p95_old_ms": self.p95_old,
                "p95_ratio": None if r is None else round(r, 4), "error_rate": self.error_rate,
                "error_rate_old": self.error_rate_old, "fired": [f.to_json() for f in self.fired]}


def measure(shadow: Shadow, queries: Sequence[Query], no: int, stop: threading.Event | None = None) -> Round:
    """One round: every query to both sides at once (the old side is the shadow's source)."""
    pair = shadow.ask(queries, stop)
    overlaps = [metrics.overlap(s.hits, t.hits, q.k)
                for q, s, t in zip(queries, pair.source, pair.target, strict=True)
                if s.error is None and t.error is None]
    n = len(queries)
    p95_new = metrics.percentile([a.seconds * 1000 for a in pair.target if a.error is None], 95)
    p95_old = metrics.percentile([a.seconds * 1000 for a in pair.source if a.error is None], 95)
    return Round(
        no=no, queries=n, k=max((q.k for q in queries), default=0),
        overlap=round(sum(overlaps) / len(overlaps), 6) if overlaps else None,
        p95_new=None if p95_new is None else round(p95_new, 3),
        p95_old=None if p95_old is None else round(p95_old, 3),
        error_rate=round(sum(1 for a in pair.target if a.error) / n, 6) if n else 0.0,
        error_rate_old=round(sum(1 for a in pair.source if a.error) / n, 6) if n else 0.0)


def check(triggers: dict[str, float], r: Round) -> tuple[Fired, ...]:
    """The triggers this round fires, in the order they are written in ``TRIGGER_KEYS``."""
    out: list[Fired] = []
    if "min_overlap" in triggers:
        # No answer to compare (every query failed on one side) is no overlap at all.
        ov = r.overlap if r.overlap is not None else 0.0
        if ov < triggers["min_overlap"]:
            out.append(Fired("min_overlap", ov, triggers["min_overlap"]))
    ratio = r.p95_ratio
    if "max_p95_ratio" in triggers and ratio is not None and ratio > triggers["max_p95_ratio"]:
        out.append(Fired("max_p95_ratio", ratio, triggers["max_p95_ratio"]))
    if "max_error_rate" in triggers and r.error_rate > triggers["max_error_rate"]:
        out.append(Fired("max_error_rate", r.error_rate, triggers["max_error_rate"]))
    return tuple(out)


def searchable(spec: Spec) -> str | None:
    """Why the two sides cannot be compared by their answers (a store without search), or None."""
    from vecmig.providers import provider_class

    for side, store in (("source", spec.source), ("target", spec.target)):
        if provider_class(store.provider).capabilities.search == "none":
            return (f"{side} provider {store.provider} cannot answer nearest-neighbour queries, so rollback_on "
                    "has nothing to measure")
    return None


def queries_for(spec: Spec, q: QuerySourceSpec) -> tuple[list[Query], str | None]:
    """The watched queries: ``sample`` records of the old side (deterministic by ``seed``)
    and/or the file's; with the file's sha256 (None without a file)."""
    from vecmig.providers import provider_class

    src = provider_class(spec.source.provider)(spec.source)
    src.connect()
    try:
        dimension = src.inventory().dimension
        out = sample_queries(src.scan(None, None, SCAN_BATCH), q.sample, seed=q.seed, k=q.k) if q.sample else []
    finally:
        src.close()
    digest = None
    if q.file is not None:
        log = read_log(spec.source.path(q.file), shown=q.file, key="rollback_on.queries.file", default_k=q.k,
                       dimension=dimension)
        out += log.queries
        digest = log.sha256
    return out, digest


def switch_back(spec: Spec, state: StateStore, live: Live, reporter: Reporter | None = None) -> None:
    """The cutover's inverse, run as rollback runs it (and recorded as rollback records it)."""
    from vecmig import rollback
    from vecmig.actions import KINDS  # the registry imports the watch action, which imports this module
    from vecmig.executor import run_actions

    rollback.check_state(state)  # what the inverse reads back must match the audit chain
    step = KINDS[live.action.kind].inverse(live.action, live.round)

    def undone(ctx: RunContext, s: Action, _result: dict[str, Any]) -> None:
        state.set_action(int(s.params["round"]), str(s.params["action"]), "rolled_back")
        ctx.reporter.finish(s, "rolled back", s.reason)

    ctx = RunContext(spec=spec, state=state, round=live.round, reporter=reporter or SilentReporter())
    run_actions(ctx, [step], undone)


@dataclass(frozen=True)
class Outcome:
    rounds: tuple[Round, ...]
    stopped: bool  # ended early by ``stop`` (a signal), not by the window


def watch(spec: Spec, state: StateStore, live: Live, rollback_on: RollbackOnSpec | dict[str, float],
          queries: Sequence[Query], *, duration: float, interval: float, concurrency: int,
          say: Callable[[str], None], stop: threading.Event | None = None, reporter: Reporter | None = None,
          clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Rounds every ``interval`` seconds for ``duration`` seconds (at least one round); on a
    trigger, readers are switched back and :class:`RollbackTriggered` is raised."""
    triggers = rollback_on.triggers() if isinstance(rollback_on, RollbackOnSpec) else dict(rollback_on)
    stop = stop or threading.Event()
    rounds: list[Round] = []
    started = clock()
    opener_old = _opener(spec, "source")
    opener_new = _opener(spec, "target")
    with Shadow(opener_old, opener_new, concurrency) as shadow:
        while True:
            r = measure(shadow, queries, len(rounds) + 1, stop)
            if stop.is_set():
                return Outcome(tuple(rounds), stopped=True)  # a round cut short measures nothing
            r = replace(r, fired=check(triggers, r))
            rounds.append(r)
            state.audit_event("watch_round", {"migration_round": live.round, "cutover": live.action.id,
                                              **r.to_json()})
            say(r.line())
            if r.fired:
                first = r.fired[0]
                state.audit_event("rollback_triggered", {
                    "migration_round": live.round, "cutover": live.action.id, "watch_round": r.no,
                    **first.to_json(), "all": [f.to_json() for f in r.fired],
                    "reverse": live.action.reverse})
                switch_back(spec, state, live, reporter)
                raise RollbackTriggered(
                    f"rollback triggered in watch round {r.no}: {first.sentence()}; readers were switched back "
                    f"({live.action.reverse})",
                    hint="the new collection is kept: fix it, then `vecmig apply` cuts over again "
                         "(`vecmig state history` shows the rounds)")
            left = duration - (clock() - started)
            if left <= 0:
                return Outcome(tuple(rounds), stopped=False)
            if stop.wait(min(interval, left)):
                return Outcome(tuple(rounds), stopped=True)
            if clock() - started >= duration:
                return Outcome(tuple(rounds), stopped=False)


def _opener(spec: Spec, side: str) -> Callable[[], Any]:
    from vecmig.providers import provider_class

    store = spec.source if side == "source" else spec.target

    def open_() -> Any:
        p = provider_class(store.provider)(store)
        p.connect()
        return p

    return open_
