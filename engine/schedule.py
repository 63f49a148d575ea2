"""Run a plan's actions by their dependency graph (``Action.depends_on``), not their list position.

An action is ready once every action it depends on is done (in this run, or in an earlier run
of the same round). Ready actions whose kind ``runs_beside_others`` (copy shards, read-only
checks, catch-up, a query-log replay) run together on a thread pool of the plan's frozen
concurrency; any other action runs alone, on the calling thread: it waits until the running
ones have ended, and nothing else starts until it has. The plan's order breaks ties, so a plan
whose graph is a chain of fan-outs (every strategy's) runs exactly in its order.

The first failure of an action that runs beside others asks the rest to stop after the batch
in flight (``ctx.stop``), waits for them, then raises the first real error in plan order (or,
when all were interrupted, an ``Interrupted``). An exclusive action's error is raised as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from vecmig.actions import KINDS, RunContext
from vecmig.errors import Interrupted, VecmigError
from vecmig.model import Action

REPLAN = "re-create the plan with `vecmig plan -out` (a saved plan is not edited by hand)"


def check_graph(actions: Sequence[Action], done: Collection[str] = ()) -> None:
    """Refuse, in one line, a graph the scheduler cannot run: an id twice, an unknown action kind,
    a dependency that is neither in the plan nor ``done`` (by an earlier run of the round), or
    a cycle."""
    ids: set[str] = set()
    for a in actions:
        if a.id in ids:
            raise VecmigError(f"the plan has two actions with id {a.id}", hint=REPLAN)
        if a.kind not in KINDS:
            raise VecmigError(f"plan action {a.id} has kind {a.kind!r}, which this vecmig does not know",
                              hint=f"use the vecmig version that made the plan, or {REPLAN}")
        ids.add(a.id)
    for a in actions:
        for dep in a.depends_on:
            if dep not in ids and dep not in done:
                raise VecmigError(f"plan action {a.id} depends on {dep}, which is not in the plan "
                                  "(nor done by an earlier run of its round)", hint=REPLAN)
    cycle = _cycle(actions)
    if cycle:
        raise VecmigError(f"the plan's actions depend on each other in a cycle: {' → '.join(cycle)}",
                          hint=REPLAN)


def _cycle(actions: Sequence[Action]) -> list[str]:
    """One dependency cycle among ``actions`` (ids, first repeated at the end), or []."""
    in_plan = {a.id: a for a in actions}
    left = {a.id: {d for d in a.depends_on if d in in_plan} for a in actions}
    progress = True
    while progress:
        progress = False
        for aid in [aid for aid, deps in left.items() if not deps]:
            del left[aid]
            for deps in left.values():
                deps.discard(aid)
            progress = True
    if not left:
        return []
    # Every action left depends on another one left: walking back from any of them meets a cycle.
    path: list[str] = []
    at = next(iter(left))
    while at not in path:
        path.append(at)
        at = min(left[at])
    return [*path[path.index(at):], at]


def workers_for(actions: Sequence[Action], default: int) -> int:
    """How many actions may run at once: the concurrency frozen into the plan's parallel actions."""
    frozen = [int(a.params["concurrency"]) for a in actions
              if a.kind in KINDS and KINDS[a.kind].runs_beside_others and "concurrency" in a.params]
    return max(1, max(frozen) if frozen else default)


class _Busy:
    """Wall time during which at least one action of a kind was running (the copy's seconds)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._running: dict[str, int] = {}
        self._since: dict[str, float] = {}

    def start(self, kind: str) -> None:
        if not self._running.get(kind):
            self._since[kind] = time.monotonic()
        self._running[kind] = self._running.get(kind, 0) + 1

    def end(self, kind: str) -> None:
        self._running[kind] -= 1
        if not self._running[kind]:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + time.monotonic() - self._since.pop(kind)


def run_graph(ctx: RunContext, actions: Sequence[Action], run_one: Callable[[Action], object], *,
              workers: int, done: Collection[str] = ()) -> dict[str, float]:
    """Run ``actions`` (``run_one`` each) in dependency order until all ran or ``ctx.stop`` is set;
    ``done``: ids finished before (their dependents are ready). Returns, per kind, the wall
    seconds during which actions of it were running."""
    check_graph(actions, done)
    pending = list(actions)
    finished = set(done)
    running: dict[Future[object], Action] = {}
    failures: list[tuple[int, BaseException]] = []
    involved = 0  # actions running when the first failure came (itself included)
    order = {a.id: i for i, a in enumerate(actions)}
    busy = _Busy()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vecmig-action")
    try:
        while True:
            ran_alone = False
            if not failures and not ctx.stop.is_set():
                ran_alone = _start_ready(pending, finished, running, pool, run_one, workers, busy)
            if ran_alone:
                continue  # it ran on this thread: look again at what it made ready
            if not running:
                if pending and not failures and not ctx.stop.is_set():
                    # check_graph makes this unreachable; never end a run with actions silently left
                    raise VecmigError(f"{pending[0].id} never became ready (its dependencies: "
                                      f"{', '.join(pending[0].depends_on)})", hint=REPLAN)
                break
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(ended, key=lambda f: order[running[f].id]):
                a = running.pop(f)
                busy.end(a.kind)
                exc = f.exception()
                if exc is None:
                    finished.add(a.id)
                    continue
                if not failures:
                    involved = len(running) + len(ended)
                    if running:
                        ctx.stop.set()  # the others finish their batch in flight, checkpoint, stop
                failures.append((order[a.id], exc))
    except BaseException:
        if running:
            ctx.stop.set()  # a second signal while they run: they stop after their batch in flight
        raise
    finally:
        pool.shutdown(wait=True)
    if failures:
        raise _first(failures, involved, [a for a in actions if order[a.id] in {i for i, _ in failures}])
    return busy.seconds


def _start_ready(pending: list[Action], finished: set[str], running: dict[Future[object], Action],
                 pool: ThreadPoolExecutor, run_one: Callable[[Action], object], workers: int, busy: _Busy) -> bool:
    """Start what is ready, in plan order; True when an exclusive action ran (on this thread)."""
    for a in list(pending):
        if not all(d in finished for d in a.depends_on):
            continue
        if not KINDS[a.kind].runs_beside_others:
            if running:
                return False  # it waits for the running ones, and nothing starts before it
            pending.remove(a)
            busy.start(a.kind)
            try:
                run_one(a)
            finally:
                busy.end(a.kind)
            finished.add(a.id)
            return True
        if len(running) >= workers:
            return False
        pending.remove(a)
        busy.start(a.kind)
        running[pool.submit(run_one, a)] = a
    return False


def _first(failures: list[tuple[int, BaseException]], involved: int, failed: list[Action]) -> BaseException:
    errors = [e for _, e in sorted(failures, key=lambda f: f[0])]
    if involved <= 1:
        return errors[0]
    real = [e for e in errors if not isinstance(e, Interrupted)]
    if real:
        return real[0]
    what = "shard" if all(a.kind == "copy_shard" for a in failed) else "action"
    return Interrupted(f"interrupted: every {what} in flight finished its batch and checkpointed it",
                       hint="run `vecmig apply` again to resume")
