"""Apply a plan: a dispatcher over action kinds, with the state store as the ledger.

Actions run by their dependency graph (``vecmig.schedule``): ready actions whose kind runs
beside others (copy shards, read-only checks, catch-up) share a thread pool of the plan's
frozen concurrency (each worker opens its own connections); every other action runs alone.
Everything an action needs is in its parameters (``vecmig.actions.params``), not re-read from
the spec. SIGINT, SIGTERM or SIGHUP asks workers to stop after the batch in flight; that batch
is checkpointed, the lock released, the run closed as interrupted, and vecmig exits 128 + the
signal's number (130, 143, 129).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from typing import Any

from vecmig.actions import KINDS, Reporter, RunContext, SilentReporter
from vecmig.actions.params import CONCURRENCY
from vecmig.cluster import Cluster, open_cluster, shard_dispatch
from vecmig.errors import Interrupted, Terminated, VecmigError
from vecmig.model import Action, Plan
from vecmig.refresh import refresh
from vecmig.schedule import check_graph, run_graph, workers_for
from vecmig.spec import Spec
from vecmig.state.store import StateStore


def apply_plan(spec: Spec, plan: Plan, state: StateStore, *, approval: str,
               reporter: Reporter | None = None, cluster: Cluster | None = None) -> dict[str, Any]:
    if cluster is None and spec.executor.type == "dask":
        # Reached before the round starts: a scheduler that cannot be reached leaves the state as it was.
        with closing(open_cluster(spec.executor)) as own:
            return apply_plan(spec, plan, state, approval=approval, reporter=reporter, cluster=own)
    ctx = RunContext(spec=spec, state=state, round=plan.round, reporter=reporter or SilentReporter(),
                     approval=approval)
    # Actions of this round done by an earlier run are not in a resumed plan: what depends on
    # them is ready. A graph the scheduler cannot run is refused before the state is touched.
    done_before = done_elsewhere(state, plan)
    check_graph(plan.actions, done_before)
    rounds = state.rounds()
    if not any(r["round"] == plan.round for r in rounds):
        for r in rounds:
            if r["status"] == "in_progress":
                # The plan re-planned an open round (its validation failed and the source or
                # spec changed since): that round is closed, kept for rollback.
                state.set_round_status(r["round"], "superseded")
        state.start_round(plan.round, plan.plan_hash, plan.spec_hash, json.dumps(plan.body(), sort_keys=True),
                          [a.to_json() for a in plan.actions], plan.source.fingerprint, plan.target.fingerprint)
    run_id = state.start_run(plan.round, "apply", plan.plan_hash, approval)
    # After a failed validation: what it found different runs again from its start. The
    # validation itself goes back to pending with them, so a kill from here on resumes the
    # re-copy instead of starting it over.
    redo = [a for a in plan.actions if a.status == "recopy"]
    for a in redo:
        state.reset_action(plan.round, a.id, a.reason)
    if redo:
        for a in plan.actions:
            if a.kind.startswith("validate"):
                state.reset_action(plan.round, a.id, "runs again after the re-copy")
    started = time.monotonic()
    copy_seconds = 0.0
    received: list[int] = []
    try:
        with stop_on_signals(ctx.stop, received), shard_dispatch(ctx, spec, run_id, cluster) as (run_one, width):
            resume_holds(ctx, plan)
            busy = run_graph(ctx, plan.actions, run_one,
                             workers=width or workers_for(plan.actions, CONCURRENCY), done=done_before)
            copy_seconds = busy.get("copy_shard", 0.0)
            if ctx.stop.is_set():
                raise Interrupted(f"{_by(received)}: the batch in flight was finished and checkpointed",
                                  hint="run `vecmig apply` again to resume")
        if ctx.paused:  # a wave gate (strategy phased): the round stays open for the next apply
            state.finish_run(run_id, "paused", ctx.paused, seconds=round(time.monotonic() - started, 3))
            state.audit_event("wave_paused", {"round": plan.round, "message": ctx.paused})
            return {"run": run_id, "round": plan.round, "seconds": time.monotonic() - started,
                    "records": _copied(plan, state), "copy_seconds": copy_seconds, "timings": {},
                    "paused": ctx.paused}
        seen = refresh(spec, shards=False)
        state.set_round_status(plan.round, "complete", source_fingerprint=seen.source.fingerprint,
                               target_fingerprint=seen.target.fingerprint)
    except Interrupted as e:
        if received:
            e.exit_code = 128 + received[0]
            e.message = by_signal(e.message, received)
        state.finish_run(run_id, "interrupted", e.message)
        raise
    except KeyboardInterrupt as e:  # a second signal: stop now, but still close the run
        signum = getattr(e, "signum", signal.SIGINT)
        state.finish_run(run_id, "interrupted", f"{_by([signum])}: stopped at once (a second signal)")
        raise
    except VecmigError as e:
        state.finish_run(run_id, "failed", e.one_line())
        raise
    except BaseException as e:
        state.finish_run(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        ctx.release_holds()  # a write freeze never outlives the run that took it
    elapsed = time.monotonic() - started
    records = sum(a.estimate.records for a in plan.actions if a.kind == "copy_shard")
    timings = {k: round(v, 3) for k, v in sorted(ctx.timings.items())}
    state.finish_run(run_id, "succeeded", seconds=round(elapsed, 3), copy_seconds=round(copy_seconds, 3),
                     timings=timings)
    return {"run": run_id, "round": plan.round, "seconds": elapsed, "records": records,
            "copy_seconds": copy_seconds, "timings": timings}


def _copied(plan: Plan, state: StateStore) -> int:
    """Records the copies of this plan checkpointed so far (a paused run did not run them all)."""
    ids = {a.id for a in plan.actions if a.kind == "copy_shard"}
    return sum(c["records_done"] for a in ids if (c := state.cursor(plan.round, a)) is not None)


def resume_holds(ctx: RunContext, plan: Plan) -> None:
    """A resumed round: done actions that held something for the rest (a freeze) take it again."""
    for row in ctx.state.actions(plan.round):
        if row["status"] == "done":
            KINDS[row["kind"]].resume(ctx, resolved(ctx, Action.from_json(json.loads(row["params_json"]))))


def done_elsewhere(state: StateStore, plan: Plan) -> set[str]:
    """Ids of this round's actions done by an earlier run and not in ``plan`` (a resumed round's
    plan leaves them out; one it runs again, a re-copy, is not done for its dependents)."""
    here = {a.id for a in plan.actions}
    return {r["action_id"] for r in state.actions(plan.round) if r["status"] == "done" and r["action_id"] not in here}


def run_action(ctx: RunContext, action: Action) -> None:
    if ctx.stop.is_set():
        return
    kind = KINDS[action.kind]
    action = resolved(ctx, action)
    ctx.state.set_action(ctx.round, action.id, "running")
    started = time.monotonic()
    try:
        result = kind.run(ctx, action)
    except Interrupted:
        ctx.state.set_action(ctx.round, action.id, "running", error="interrupted")
        raise
    except VecmigError as e:
        # A failure with findings (validation: which shards, which records) keeps them, so the
        # next plan can re-copy exactly what failed; they go on the audit record like a result.
        found = getattr(e, "result", None)
        extra: dict[str, Any] = {}
        if found is not None:
            extra = {"result_json": json.dumps(found, sort_keys=True, default=str),
                     "audit_data": {"result": json.loads(json.dumps(found, sort_keys=True, default=str))}}
        ctx.state.set_action(ctx.round, action.id, "failed", error=e.one_line(), **extra)
        ctx.reporter.finish(action, "failed", e.message)
        raise
    except Exception as e:
        ctx.state.set_action(ctx.round, action.id, "failed", error=f"{type(e).__name__}: {e}")
        ctx.reporter.finish(action, "failed", str(e))
        raise
    seconds = round(time.monotonic() - started, 3)
    result = ctx.state.redact.walk(result)  # stored as written, like the plan
    cur = ctx.state.cursor(ctx.round, action.id)
    ctx.state.set_action(
        ctx.round, action.id, "done",
        actual_seconds=seconds,
        records=cur["records_done"] if cur else int(result.get("records", 0)),
        bytes=cur["bytes_done"] if cur else 0,
        result_json=json.dumps(result, sort_keys=True, default=str),
        audit_data={"result": result},
    )
    ctx.reporter.finish(action, "done", f"{seconds:.2f}s{kind.summarise(result)}")


def run_actions(ctx: RunContext, actions: Iterable[Action],
                done: Callable[[RunContext, Action, dict[str, Any]], None]) -> int:
    """Run ``actions`` through the same scheduler and dispatch as a plan's (rollback's inverses:
    by their ``depends_on``, the reverse of the graph they undo; each runs alone, as every
    ``undo`` is exclusive); ``done`` records each one that finished (rollback: the original's
    row goes to "rolled_back"). No status is written here: the caller's ledger is its own.
    Returns how many ran."""
    todo = list(actions)
    ran: list[str] = []

    def one(action: Action) -> None:
        action = resolved(ctx, action)
        done(ctx, action, KINDS[action.kind].run(ctx, action))
        ran.append(action.id)

    run_graph(ctx, todo, one, workers=workers_for(todo, 1))
    return len(ran)


def resolved(ctx: RunContext, action: Action) -> Action:
    """The action with ``${env:NAME}`` in its parameters resolved: plans hold them as written."""
    params = ctx.spec.resolve_shown(action.params)
    return action if params == action.params else replace(action, params=params)


# Signals that ask vecmig to stop: Ctrl-C, and what docker stop, Kubernetes, systemd and CI
# cancellation send (SIGTERM), or a closed terminal (SIGHUP).
STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


def _by(received: list[int]) -> str:
    if not received or received[0] == signal.SIGINT:
        return "interrupted"
    return f"interrupted by {signal.Signals(received[0]).name}"


def by_signal(message: str, received: list[int]) -> str:
    """Name the signal in an interruption's message once ("interrupted by SIGTERM: ..."), whether
    or not whoever raised it already did."""
    by = _by(received)
    if message.startswith(by):
        return message
    return message.replace("interrupted", by, 1)


@contextmanager
def stop_on_signals(stop: threading.Event, received: list[int] | None = None) -> Iterator[None]:
    """The first stop signal asks every worker to finish its batch in flight and checkpoint;
    a second one means now (it raises, so the lock is still released on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = received if received is not None else []

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second signal means now
            raise Terminated(signum)
        got.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old_handler in previous.items():
            signal.signal(s, old_handler)
