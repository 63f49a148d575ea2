"""Apply a plan: a dispatcher over action kinds, with the state store as the ledger.

Copy shards run on a thread pool (each worker opens its own connections); every other
action runs alone, in plan order. SIGINT, SIGTERM or SIGHUP asks workers to stop after the batch
in flight; that batch is checkpointed, the lock released, the run closed as interrupted, and
vecmig exits 128 + the signal's number (130, 143, 129).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from vecmig.actions import KINDS, Reporter, RunContext, SilentReporter
from vecmig.actions.validate_queries import summarise_report
from vecmig.errors import Interrupted, Terminated, VecmigError
from vecmig.model import Action, Plan
from vecmig.refresh import refresh
from vecmig.spec import Spec
from vecmig.state.store import StateStore


def apply_plan(spec: Spec, plan: Plan, state: StateStore, *, approval: str,
               reporter: Reporter | None = None) -> dict[str, Any]:
    ctx = RunContext(spec=spec, state=state, round=plan.round, reporter=reporter or SilentReporter(),
                     approval=approval)
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
        with stop_on_signals(ctx.stop, received):
            resume_holds(ctx, plan)
            for wave in _waves(plan.actions):
                t0 = time.monotonic()
                _run_wave(ctx, wave)
                if wave[0].kind == "copy_shard":
                    copy_seconds += time.monotonic() - t0
                if ctx.stop.is_set():
                    raise Interrupted(f"{_by(received)}: the batch in flight was finished and checkpointed",
                                      hint="run `vecmig apply` again to resume")
                if ctx.paused:
                    break  # a wave gate (strategy phased): the round stays open for the next apply
        if ctx.paused:
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
            e.message = e.message.replace("interrupted", _by(received), 1)
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


def _waves(actions: tuple[Action, ...]) -> Iterator[list[Action]]:
    """Consecutive copy shards form one parallel wave; everything else runs alone."""
    wave: list[Action] = []
    for a in actions:
        if a.kind == "copy_shard":
            wave.append(a)
            continue
        if wave:
            yield wave
            wave = []
        yield [a]
    if wave:
        yield wave


def _run_wave(ctx: RunContext, wave: list[Action]) -> None:
    if len(wave) == 1:
        run_action(ctx, wave[0])
        return
    workers = max(1, min(ctx.spec.strategy.concurrency, len(wave)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-shard") as pool:
        futures = [pool.submit(run_action, ctx, a) for a in wave]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            ctx.stop.set()  # let the other shards checkpoint and stop
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            real = [e for e in errors if not isinstance(e, Interrupted)]
            if real:
                raise real[0]  # type: ignore[misc]
            raise Interrupted("interrupted: every shard in flight finished its batch and checkpointed it",
                              hint="run `vecmig apply` again to resume")


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
    ctx.reporter.finish(action, "done", f"{seconds:.2f}s{summary(result)}")


def run_actions(ctx: RunContext, actions: Iterable[Action],
                done: Callable[[RunContext, Action, dict[str, Any]], None]) -> int:
    """Run ``actions`` one by one, in order, through the same dispatch as ``run_action``;
    ``done`` records each one that finished (rollback: the original's row goes to
    "rolled_back"). No status is written here: the caller's ledger is its own. Returns how
    many ran."""
    n = 0
    for action in actions:
        action = resolved(ctx, action)
        done(ctx, action, KINDS[action.kind].run(ctx, action))
        n += 1
    return n


def resolved(ctx: RunContext, action: Action) -> Action:
    """The action with ``${env:NAME}`` in its parameters resolved: plans hold them as written."""
    params = ctx.spec.resolve_shown(action.params)
    return action if params == action.params else replace(action, params=params)


def summary(result: dict[str, Any]) -> str:
    """One reviewer-friendly phrase about what an action found or made."""
    if "changes_per_s" in result:
        return (f" · {result['changes']:,} changes at {result['changes_per_s']:,.0f}/s · lag {result['lag_records']:,}"
                f"{' · source frozen' if result.get('frozen') else ''}")
    if isinstance(result.get("report"), dict) and "failures" in result:
        return summarise_report(result)
    if "target_count" in result:
        return (f" · {result['source']['count']:,} records match · checksum {result['source']['sum'][:16]}"
                f" · {len(result['shards'])} shard(s)")
    if result.get("index"):
        return f" · index {result['index']}"
    if "alias" in result:
        return f" · {result['alias']}: {result['from']} → {result['to']}"
    if "pointer" in result:
        return f" · pointer now names {result.get('to') or result['pointer']}"
    if "deleted" in result:
        return f" · {result['deleted']:,} extra records deleted"
    return ""


# Signals that ask vecmig to stop: Ctrl-C, and what docker stop, Kubernetes, systemd and CI
# cancellation send (SIGTERM), or a closed terminal (SIGHUP).
STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


def _by(received: list[int]) -> str:
    if not received or received[0] == signal.SIGINT:
        return "interrupted"
    return f"interrupted by {signal.Signals(received[0]).name}"


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
