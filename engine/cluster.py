"""``executor: {type: dask}``: copy shards as tasks on a Dask cluster, the rest in this process.

:func:`open_cluster` connects to the scheduler at ``executor.address``, or starts a
``LocalCluster`` of worker processes on the loopback interface when no address is given;
apply calls it before the state store is touched, so an unreachable scheduler or a missing
``dask`` extra is one line and no state. :class:`ClusterDispatch` is the scheduler's
``run_one``: a ``copy_shard`` becomes one task (:func:`vecmig.cluster_shard.run_shard`),
submitted from the scheduler's thread pool, which is as wide as the cluster has threads; any
other action runs here, exactly as with the local executor. The coordinator keeps the lock
and its heartbeat; the workers write the shards' checkpoints, statuses and audit events to
the shared state (PostgreSQL; a local cluster may use SQLite, as its processes share this
machine's disk). A stop signal on the coordinator sets a named ``distributed.Event`` that the
running shards look at after each batch.

Dask reschedules the task of a worker that died on another worker; the shard resumes from its
checkpoint. Nothing here imports Dask until a spec asks for it.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from vecmig.actions import RunContext
from vecmig.errors import VecmigError
from vecmig.model import Action
from vecmig.spec import ExecutorSpec, Spec
from vecmig.state.lock import Lock

# Seconds to reach a scheduler at executor.address before apply gives up (nothing is touched yet).
CONNECT_TIMEOUT = 5.0
LOCAL_WORKERS = 2
INSTALL_HINT = "install the extra: pip install 'vecmig[dask]'"


def executor_line(public: dict[str, Any]) -> str | None:
    """Where the plan's copy shards run, for the plan's header; None for the local executor."""
    executor = public.get("executor") or {}
    if executor.get("type", "local") != "dask":
        return None
    if executor.get("address"):
        return f"Executor: dask at {executor['address']} (copy shards on its workers, state shared)"
    workers = int(executor.get("workers") or LOCAL_WORKERS)
    threads = int(executor.get("threads_per_worker") or 1)
    per = f", {threads} threads each" if threads > 1 else ""
    return f"Executor: dask (local cluster, {workers} worker{'s' if workers != 1 else ''}{per})"


class Cluster:
    """A Dask client, and the local cluster started for it (closed with it), or neither (local)."""

    def __init__(self, client: Any = None, local: Any = None, where: str = "local") -> None:
        self.client = client
        self.local = local
        self.where = where

    @property
    def threads(self) -> int:
        """Task threads over every worker the scheduler knows now."""
        if self.client is None:
            return 0
        return sum(int(n) for n in self.client.nthreads().values())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.local is not None:
            self.local.close()
            self.local = None


def open_cluster(executor: ExecutorSpec) -> Cluster:
    """Connect (or start a local cluster) for ``type: dask``; an empty Cluster for ``local``."""
    if executor.type != "dask":
        return Cluster()
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise VecmigError("executor type dask needs Dask's distributed package, which is not installed",
                          where="/executor/type", hint=INSTALL_HINT) from None
    if executor.address:
        try:
            client = Client(executor.address, timeout=CONNECT_TIMEOUT,  # type: ignore[no-untyped-call]
                            set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise VecmigError(f"cannot reach the Dask scheduler at {executor.address} "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no answer'})",
                              where="/executor/address",
                              hint="start the scheduler and its workers (`dask scheduler`, `dask worker ADDRESS`), "
                                   "or correct executor.address; nothing was changed") from None
        return Cluster(client, where=f"dask at {executor.address}")
    with _stop_signals_ignored():
        local = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=executor.workers or LOCAL_WORKERS,
            threads_per_worker=executor.threads_per_worker or 1, processes=True,
            host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        client = Client(local, set_as_default=False)  # type: ignore[no-untyped-call]
    except BaseException:
        local.close()
        raise
    return Cluster(client, local, where=f"dask (local cluster at {local.scheduler_address})")


@contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    """Worker processes started meanwhile inherit SIGINT and SIGHUP ignored: a Ctrl-C in the
    terminal reaches the whole process group, and it is the coordinator's to handle (it asks the
    shards to stop after their batch); a worker dying of it would only cost a re-run of its batch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGINT", "SIGHUP")
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (getattr(signal, n, None) for n in names) if s}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class ClusterDispatch:
    """``run_one`` for the scheduler: copy shards on the cluster, every other kind here."""

    def __init__(self, ctx: RunContext, spec: Spec, cluster: Cluster, run_id: int) -> None:
        from distributed import Event

        self.ctx, self.spec, self.cluster, self.run_id = ctx, spec, cluster, run_id
        self.stop_name = f"vecmig-stop-{uuid.uuid4().hex}"
        self._stop_event = Event(self.stop_name, client=cluster.client)  # type: ignore[no-untyped-call]
        holder = Lock(ctx.state, "apply").current()  # the apply's; None when the caller took none
        self.lock_id = str(holder["lock_id"]) if holder else None
        self._closed = threading.Event()
        # The signal handler only sets ctx.stop (a threading.Event); this passes it on to the workers.
        self._relay = threading.Thread(target=self._relay_stop, name="vecmig-dask-stop", daemon=True)
        self._relay.start()

    def _relay_stop(self) -> None:
        while not self._closed.is_set():
            if self.ctx.stop.wait(0.1):
                self._stop_event.set()  # type: ignore[no-untyped-call]
                return

    def workers(self) -> int:
        """As many shards in flight as the cluster has task threads (Dask places them)."""
        return max(1, self.cluster.threads)

    def run(self, action: Action) -> None:
        from vecmig.cluster_shard import job_for, run_shard
        from vecmig.executor import run_action

        if action.kind != "copy_shard":
            run_action(self.ctx, action)
            return
        if self.ctx.stop.is_set():
            return
        job = job_for(self.spec, self.ctx.round, action, self.run_id, self.stop_name, self.lock_id)
        self.ctx.reporter.start(action, action.estimate.records, 0)
        future = self.cluster.client.submit(run_shard, job, key=f"vecmig-{action.id}-{uuid.uuid4().hex[:8]}",
                                            pure=False)
        try:
            out = future.result()
        except VecmigError as e:
            self.ctx.reporter.finish(action, "failed", e.message)
            raise
        except Exception as e:  # KilledWorker (its workers died again and again), a lost scheduler...
            self.ctx.reporter.finish(action, "failed", str(e))
            raise VecmigError(f"shard {action.id} could not run on {self.cluster.where}: {type(e).__name__}: {e}",
                              hint="the workers need vecmig (this version) and the variables the spec's "
                                   "${env:...} name; then run `vecmig apply` again: the shard resumes from its "
                                   "checkpoint") from None
        for phase, seconds in out["timings"].items():
            self.ctx.spent(phase, float(seconds))
        self.ctx.reporter.advance(action, action.estimate.records)
        self.ctx.reporter.finish(action, "done", f"on worker pid {out['pid']}")

    def close(self) -> None:
        self._closed.set()
        self._relay.join()


@contextmanager
def shard_dispatch(ctx: RunContext, spec: Spec, run_id: int,
                   cluster: Cluster | None) -> Iterator[tuple[Callable[[Action], None], int]]:
    """The scheduler's ``run_one`` and how many may run at once (0: the plan's own concurrency)."""
    from vecmig.executor import run_action

    if cluster is None or cluster.client is None:
        yield (lambda a: run_action(ctx, a)), 0
        return
    dispatch = ClusterDispatch(ctx, spec, cluster, run_id)
    try:
        yield dispatch.run, dispatch.workers()
    finally:
        dispatch.close()
