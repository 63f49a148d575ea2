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

import heapq
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
        raise VecmigError(f"the plan's actions depend on each other in a cycle (each waits for the next): "
                          f"{' → '.join(cycle)}",
                          hint=REPLAN)


def _cycle(actions: Sequence[Action]) -> list[str]:
    """One dependency cycle among ``actions`` (ids, first repeated at the end), or []."""
    in_plan = {a.id: a for a in actions}
    deps = {a.id: {d for d in a.depends_on if d in in_plan} for a in actions}
    dependents: dict[str, list[str]] = {aid: [] for aid in in_plan}
    for aid, ds in deps.items():
        for d in ds:
            dependents[d].append(aid)
    waiting = {aid: len(ds) for aid, ds in deps.items()}
    free = [aid for aid, n in waiting.items() if n == 0]
    while free:  # Kahn: take away what waits on nothing; what is left waits on a cycle
        aid = free.pop()
        del waiting[aid]
        for d in dependents[aid]:
            waiting[d] -= 1
            if not waiting[d]:
                free.append(d)
    if not waiting:
        return []
    # Every action left depends on another one left: walking back from any of them meets a cycle.
    path: list[str] = []
    at = min(waiting)
    while at not in path:
        path.append(at)
        at = min(d for d in deps[at] if d in waiting)
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
    graph = _Graph(actions, done)
    running: dict[Future[object], int] = {}
    failures: list[tuple[int, BaseException]] = []
    involved = 0  # actions in flight when the first failure came (itself included)
    busy = _Busy()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vecmig-action")
    try:
        while True:
            # A wave gate (strategy phased) pauses the run: what runs ends, nothing new starts.
            halted = ctx.stop.is_set() or getattr(ctx, "paused", None) is not None
            if not failures and not halted and _start_ready(graph, running, pool, run_one, workers, busy):
                continue  # an exclusive action ran on this thread: look again at what it made ready
            if not running:
                if graph.left and not failures and not halted:
                    # check_graph makes this unreachable; never end a run with actions silently left
                    raise VecmigError(f"{graph.first_left().id} never became ready", hint=REPLAN)
                break
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            in_flight = len(running)
            for f in sorted(ended, key=lambda f: running[f]):
                i = running.pop(f)
                busy.end(actions[i].kind)
                exc = f.exception()
                if exc is None:
                    graph.finish(i)
                    continue
                if not failures:
                    involved = in_flight
                    if in_flight > 1:
                        ctx.stop.set()  # the others finish their batch in flight, checkpoint, stop
                failures.append((i, exc))
    except BaseException:
        if running:
            ctx.stop.set()  # a second signal while they run: they stop after their batch in flight
        raise
    finally:
        pool.shutdown(wait=True)
    if failures:
        raise _first(failures, involved, [actions[i] for i, _ in failures])
    return busy.seconds


class _Graph:
    """What is ready, in plan order (a heap of plan positions), and what waits on what."""

    def __init__(self, actions: Sequence[Action], done: Collection[str]) -> None:
        self.actions = actions
        position = {a.id: i for i, a in enumerate(actions)}
        self.dependents: list[list[int]] = [[] for _ in actions]
        self.waiting = [0] * len(actions)
        finished = set(done)
        for i, a in enumerate(actions):
            for dep in set(a.depends_on) - finished:
                self.dependents[position[dep]].append(i)
                self.waiting[i] += 1
        self.ready = [i for i, n in enumerate(self.waiting) if n == 0]
        heapq.heapify(self.ready)
        self.left = len(actions)  # not started yet

    def peek(self) -> int | None:
        return self.ready[0] if self.ready else None

    def take(self) -> Action:
        self.left -= 1
        return self.actions[heapq.heappop(self.ready)]

    def finish(self, i: int) -> None:
        for j in self.dependents[i]:
            self.waiting[j] -= 1
            if not self.waiting[j]:
                heapq.heappush(self.ready, j)

    def first_left(self) -> Action:
        return next((a for i, a in enumerate(self.actions) if self.waiting[i]), self.actions[0])


def _start_ready(graph: _Graph, running: dict[Future[object], int], pool: ThreadPoolExecutor,
                 run_one: Callable[[Action], object], workers: int, busy: _Busy) -> bool:
    """Start what is ready, first in plan order first; True when an exclusive action ran (on this thread)."""
    while (i := graph.peek()) is not None:
        a = graph.actions[i]
        if not KINDS[a.kind].runs_beside_others:
            if running:
                return False  # it waits for the running ones, and nothing starts before it
            graph.take()
            busy.start(a.kind)
            try:
                run_one(a)
            finally:
                busy.end(a.kind)
            graph.finish(i)
            return True
        if len(running) >= workers:
            return False
        graph.take()
        busy.start(a.kind)
        running[pool.submit(run_one, a)] = i
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
