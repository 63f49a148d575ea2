"""One copy shard as a Dask task: what the coordinator sends (:class:`ShardJob`) and what a
worker does with it (:func:`run_shard`).

A job carries the spec as written (``${env:...}`` placeholders intact, the state URL among
them), the folder its relative paths start from, the round, the action and the run: nothing
secret travels. The worker resolves the placeholders from its own environment, opens the
shared state store and runs the shard through the executor's ``run_action``, the code the
local executor runs: the shard resumes from its checkpoint, acknowledges each batch before
checkpointing it, and its status and audit events go to the same state. Nothing else is kept
between tasks except, per worker process, the loaded spec and the open state store (the
shard's connections and models are its own, as on one machine), so a task Dask moves to
another worker after its worker died runs the same from its action and the state alone.

This module is imported by the workers; it imports no Dask at module level (the coordinator
pickles :func:`run_shard` by reference).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecmig.actions import RunContext
from vecmig.errors import Interrupted, VecmigError
from vecmig.model import Action
from vecmig.spec import Spec
from vecmig.state.store import StateStore

# How often a running shard asks the scheduler whether the coordinator wants it to stop: it
# only looks after a batch, so this bounds the extra calls, not how soon it stops.
STOP_POLL_SECONDS = 0.1
LOCK_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ShardJob:
    spec: dict[str, Any]  # Spec.public: as written, placeholders intact
    spec_file: str  # names the spec in the worker's errors
    spec_dir: str  # where the spec's relative paths start
    migration: str
    round: int
    action: dict[str, Any]  # Action.to_json()
    run_id: int
    stop_event: str  # the distributed.Event the coordinator sets on SIGINT/SIGTERM
    lock_id: str | None  # the coordinator's lock: the shard stops once it is not held any more


def job_for(spec: Spec, round_no: int, action: Action, run_id: int, stop_event: str,
            lock_id: str | None) -> ShardJob:
    return ShardJob(spec=spec.public, spec_file=spec.locations.file, spec_dir=str(spec.source.base_dir),
                    migration=spec.name, round=round_no, action=action.to_json(), run_id=run_id,
                    stop_event=stop_event, lock_id=lock_id)


class ClusterStop(threading.Event):
    """The shard's stop flag: set here, or by the coordinator through a named distributed.Event
    (looked up at most every STOP_POLL_SECONDS, and only when the shard asks, after a batch);
    also set once the coordinator's lock is no longer held (looked up every LOCK_POLL_SECONDS):
    a coordinator killed outright cannot ask, and a shard must not write on behind the back of
    the apply that took its lock over."""

    def __init__(self, name: str | None, state: StateStore | None = None, lock_id: str | None = None) -> None:
        super().__init__()
        self._name = name
        self._state, self._lock_id = state, lock_id
        self._next_look = self._next_lock_look = 0.0
        self._looking = threading.Lock()

    def is_set(self) -> bool:
        if super().is_set():
            return True
        with self._looking:
            now = time.monotonic()
            if self._name is not None and now >= self._next_look:
                self._next_look = now + STOP_POLL_SECONDS
                from distributed import Event

                if Event(self._name).is_set():  # type: ignore[no-untyped-call]
                    self.set()
            if self._state is not None and self._lock_id and now >= self._next_lock_look:
                self._next_lock_look = now + LOCK_POLL_SECONDS
                from vecmig.state.lock import Lock

                holder = Lock(self._state, "apply").current()
                if holder is None or holder["lock_id"] != self._lock_id:
                    self.lost_lock = True
                    self.set()
        return super().is_set()

    lost_lock = False


# Per worker process: the spec (resolved from this process's environment) and the state store,
# opened once and shared by the process's task threads, as the local executor's threads share them.
_opened: dict[tuple[str, str, str], tuple[Spec, StateStore]] = {}
_opening = threading.Lock()


def _open(job: ShardJob) -> tuple[Spec, StateStore]:
    from vecmig.spec_loader import load_public
    from vecmig.specload import public_hash

    key = (public_hash(job.spec), job.spec_dir, job.migration)
    with _opening:
        if key not in _opened:
            spec = load_public(job.spec, file=job.spec_file, base_dir=Path(job.spec_dir))
            state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=False,
                                    redactor=spec.redactor)
            if state is None:
                raise VecmigError(f"the worker finds no state store for migration {spec.name!r}",
                                  hint="give the workers the environment the spec's ${env:...} names, so they "
                                       "open the coordinator's state store")
            _opened[key] = (spec, state)
        return _opened[key]


def run_shard(job: ShardJob) -> dict[str, Any]:
    """Run one copy shard on this worker; returns the seconds per copy phase and where it ran."""
    from vecmig.executor import run_action

    try:
        spec, state = _open(job)
    except VecmigError as e:  # e.g. a variable the spec names is not set in this worker's environment
        e.message = f"a Dask worker (pid {os.getpid()}) cannot open the spec or the state: {e.message}"
        raise
    stop = ClusterStop(job.stop_event, state, job.lock_id)
    ctx = RunContext(spec=spec, state=state, round=job.round, stop=stop)
    action = Action.from_json(job.action)
    try:
        run_action(ctx, action)
    except VecmigError:
        raise  # pickles with its message and hint; the coordinator raises it as the local executor would
    except Exception as e:
        # Raised as is, a driver's exception may not unpickle on the coordinator: its words travel.
        raise VecmigError(f"shard {action.id} failed on worker pid {os.getpid()}: {type(e).__name__}: {e}") from None
    finally:
        ctx.release_holds()  # the embedding cache's session, opened once per run as a hold
    if stop.lost_lock:
        raise Interrupted(f"shard {action.id} stopped after its batch in flight: the apply that started it no "
                          "longer holds the migration's lock", hint="run `vecmig apply` again to resume")
    return {"timings": dict(ctx.timings), "pid": os.getpid(), "stopped": stop.is_set()}
