"""executor: {type: dask} without a cluster: the spec's rules, the plan's line, the missing
extra, and what a shard's task carries (nothing secret)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from vecmig.cluster import executor_line, open_cluster
from vecmig.cluster_shard import ClusterStop, job_for
from vecmig.errors import SpecError, VecmigError
from vecmig.model import Action
from vecmig.spec import ExecutorSpec, Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore

SECRET = "s3cr3t-Pa55-do-not-leak"
SPEC = """
version: 1
name: scale-out
STATE
source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs}
target: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs_v2}
executor: EXECUTOR
"""
ENV = {"SOURCE_DSN": f"postgresql://u:{SECRET}@db/data", "STATE_URL": f"postgresql://u:{SECRET}@db/state"}


def load(executor: str, state: str = "") -> Spec:
    text = SPEC.replace("EXECUTOR", executor).replace("STATE", state)
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp"), env=ENV)


def refused(executor: str, state: str = "") -> SpecError:
    with pytest.raises(SpecError) as e:
        load(executor, state)
    return e.value


def test_a_remote_cluster_needs_the_state_on_postgresql() -> None:
    e = refused("{type: dask, address: tcp://scheduler:8786}")
    assert e.where == "s.yaml:7:24: /executor/address"
    assert "SQLite file (/state)" in e.message and "postgresql://" in (e.hint or "")
    e = refused("{type: dask, address: tcp://scheduler:8786}", "state: {path: here.db}")
    assert "SQLite file (/state)" in e.message
    e = refused("{type: dask, address: tcp://scheduler:8786}", 'state: {url: "sqlite:////tmp/s.db"}')
    assert "sqlite (/state/url)" in e.message
    spec = load("{type: dask, address: tcp://scheduler:8786}", 'state: {url: "${env:STATE_URL}"}')
    assert spec.executor == ExecutorSpec(type="dask", address="tcp://scheduler:8786")


def test_a_local_cluster_may_keep_the_state_in_sqlite() -> None:
    spec = load("{type: dask, workers: 3, threads_per_worker: 2}")
    assert spec.executor == ExecutorSpec(type="dask", workers=3, threads_per_worker=2)
    assert spec.state_url is None


@pytest.mark.parametrize(("executor", "key", "why"), [
    ("{type: dask, address: tcp://s:8786, workers: 2}", "workers", "brings its own workers"),
    ("{type: dask, address: tcp://s:8786, threads_per_worker: 2}", "threads_per_worker", "brings its own workers"),
    ("{type: local, workers: 2}", "workers", "applies only to `type: dask`"),
    ("{address: tcp://s:8786}", "address", "applies only to `type: dask`"),
])
def test_a_key_the_executor_would_ignore_is_refused(executor: str, key: str, why: str) -> None:
    e = refused(executor, 'state: {url: "${env:STATE_URL}"}')
    assert e.where is not None and e.where.endswith(f"/executor/{key}")
    assert why in e.message


def test_the_plan_says_where_shards_run() -> None:
    assert executor_line({}) is None
    assert executor_line({"executor": {"type": "local"}}) is None
    assert executor_line({"executor": {"type": "dask"}}) == "Executor: dask (local cluster, 2 workers)"
    assert executor_line({"executor": {"type": "dask", "workers": 1}}) == "Executor: dask (local cluster, 1 worker)"
    assert executor_line({"executor": {"type": "dask", "workers": 4, "threads_per_worker": 2}}) == \
        "Executor: dask (local cluster, 4 workers, 2 threads each)"
    assert executor_line({"executor": {"type": "dask", "address": "tcp://s:8786"}}) == \
        "Executor: dask at tcp://s:8786 (copy shards on its workers, state shared)"


def test_without_the_extra_one_line_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    with pytest.raises(VecmigError) as e:
        open_cluster(ExecutorSpec(type="dask"))
    assert e.value.hint == "install the extra: pip install 'vecmig[dask]'"
    assert e.value.where == "/executor/type"
    assert open_cluster(ExecutorSpec()).client is None, "the local executor needs no Dask"


def test_a_shards_task_carries_placeholders_not_secrets() -> None:
    spec = load("{type: dask, address: tcp://scheduler:8786}", 'state: {url: "${env:STATE_URL}"}')
    action = Action(id="copy.shard[0]", kind="copy_shard", reason="r",
                    params={"shard": {"lo": None, "hi": 5}, "batch_size": 10})
    job = job_for(spec, 1, action, 7, "vecmig-stop-x", "lock-1")
    blob = pickle.dumps(job)
    assert SECRET.encode() not in blob
    assert job.spec["state"] == {"url": "${env:STATE_URL}"}
    assert job.spec["source"]["connection"] == {"dsn": "${env:SOURCE_DSN}"}
    assert (job.round, job.run_id, job.migration, job.spec_dir) == (1, 7, "scale-out", "/tmp")
    assert Action.from_json(job.action) == action


def test_a_shard_stops_once_its_apply_no_longer_holds_the_lock(tmp_path: Path) -> None:
    """A coordinator killed outright cannot set the stop event: its shards see its lock go."""
    store = StateStore.open("m", tmp_path / "s.db", None, create=True)
    assert store is not None
    lock = Lock(store, "apply")
    lock.acquire()
    try:
        held = ClusterStop(None, store, lock.lock_id)
        assert not held.is_set() and not held.lost_lock
        taken_over = ClusterStop(None, store, "another-apply")
        assert taken_over.is_set() and taken_over.lost_lock
    finally:
        lock.release()
    released = ClusterStop(None, store, lock.lock_id)
    assert released.is_set() and released.lost_lock
    store.close()


def test_the_plans_text_and_markdown_name_the_cluster() -> None:
    from dataclasses import replace

    from rich.console import Console

    from tests.test_review_markdown import make_plan
    from vecmig.render import print_plan
    from vecmig.render_markdown import render

    plain = make_plan(2)
    on_dask = replace(plain, spec={**plain.spec, "executor": {"type": "dask", "address": "tcp://s:8786"}})
    line = "Executor: dask at tcp://s:8786"
    assert line in render(on_dask) and "Executor:" not in render(plain)
    console = Console(record=True, width=200)
    print_plan(on_dask, console)
    assert line in console.export_text()
