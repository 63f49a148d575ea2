"""executor: {type: dask}: copy shards on Dask workers, state on the tests' PostgreSQL.

One LocalCluster of 2 worker processes (1 thread each) for the module, started here with the
environment the specs' ${env:...} name (the workers resolve them from their own environment:
the DSNs never travel with a task). `vecmig apply` runs as a CLI child that connects to it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PgServer
from tests.support.cli import ROOT, _RecordedPopen, spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, write_spec
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore

RECORDS = 4000
BATCH = 50
SHARD = 1000  # 4 shards of 20 batches
STATES = ("STATE_KILL", "STATE_UNREACHABLE", "STATE_WORKER_ENV")


@dataclass(frozen=True)
class Env:
    data: str  # DSN of the data database (source table docs)
    states: dict[str, str]  # env name -> state database URL
    address: str  # the module's scheduler
    client: Any  # distributed.Client
    env: dict[str, str]


def _create_db(pg: PgServer, name: str) -> str:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg.url(name)


def _drop_db(pg: PgServer, name: str) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _marked(dsn: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={SECRET}"


@pytest.fixture(scope="module")
def cluster(pg: PgServer) -> Iterator[Env]:
    from distributed import Client, LocalCluster

    tag = uuid.uuid4().hex[:10]
    names = {"data": f"dask_data_{tag}", **{s: f"dask_{s.lower()}_{tag}" for s in STATES}}
    urls = {k: _create_db(pg, n) for k, n in names.items()}
    make_docs_table(urls["data"], "docs", RECORDS, 8)
    with psycopg.connect(urls["data"], autocommit=True) as c:
        c.execute(COUNT_WRITES)  # triggers on docs_kill and docs_lc as soon as an apply creates them
    env = {"SOURCE_DSN": _marked(urls["data"]), "TARGET_DSN": _marked(urls["data"]),
           **{s: _marked(urls[s]) for s in STATES}}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # before the workers start: they inherit it, as a real worker has its own
    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(local)
    try:
        yield Env(urls["data"], {s: urls[s] for s in STATES}, local.scheduler_address, client, env)
    finally:
        client.close()
        local.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for n in names.values():
            _drop_db(pg, n)


def dask_spec(tmp: Path, target: str, state_env: str, executor: str) -> Path:
    return write_spec(tmp, f"""
        version: 1
        name: dask-{target}
        {f'state: {{url: "${{env:{state_env}}}"}}' if state_env else ""}
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: {target},
                 fields: {{id: id, vector: embedding, text: body}}}}
        strategy: {{type: big-bang, batch_size: {BATCH}, shard_size: {SHARD}}}
        executor: {executor}
        """)


def progress(state_url: str) -> tuple[int, int]:
    """(records checkpointed, shards running) in the state database, (0, 0) before it exists."""
    try:
        with psycopg.connect(state_url) as c:
            done = c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()
            running = c.execute("SELECT count(*) FROM actions WHERE status = 'running'").fetchone()
            return int(done[0] if done else 0), int(running[0] if running else 0)
    except psycopg.Error:
        return 0, 0


COUNT_WRITES = """
CREATE TABLE IF NOT EXISTS write_log (tbl text NOT NULL, id bigint NOT NULL);
CREATE OR REPLACE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO write_log VALUES (TG_TABLE_NAME, NEW.id); RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;
CREATE OR REPLACE FUNCTION count_writes_of_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    IF r.object_identity = 'public.docs_kill' THEN
      EXECUTE format('CREATE TRIGGER count_writes AFTER INSERT OR UPDATE ON %s FOR EACH ROW '
                     'EXECUTE FUNCTION log_write()', r.object_identity);
    END IF;
    -- shards long enough to be killed or stopped in, whatever the machine's load
    IF r.object_identity IN ('public.docs_kill', 'public.docs_lc') THEN
      EXECUTE format('CREATE TRIGGER slow_writes BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                     'EXECUTE FUNCTION slow_write()', r.object_identity);
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER count_writes ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION count_writes_of_new_tables();
"""


def committed_writes(dsn: str, table: str) -> dict[int, int]:
    """Per id, the inserts and updates of ``table`` that committed (a row trigger's log rolls
    back with its transaction, so an attempt PostgreSQL undid is not counted)."""
    with psycopg.connect(dsn) as c:
        rows = c.execute("SELECT id, count(*) FROM write_log WHERE tbl = %s GROUP BY id", (table,)).fetchall()
    return {int(i): int(n) for i, n in rows}


def executing(dask_worker: Any) -> tuple[int, list[str]]:
    """Run on each worker: its pid and the keys of the tasks it executes now."""
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def shard_of(key: str) -> str | None:
    """The action id in a shard task's key (``vecmig-<action id>-<8 hex>``)."""
    return key[len("vecmig-"):-9] if key.startswith("vecmig-copy") else None


def shard_done(state_url: str, action_id: str) -> int:
    with psycopg.connect(state_url) as c:
        row = c.execute("SELECT records_done FROM cursors WHERE action_id = %s", (action_id,)).fetchone()
    return int(row[0]) if row else 0


def store_of(env: Env, name: str, state_env: str) -> StateStore:
    store = StateStore.open(name, None, env.states[state_env], create=False)
    assert store is not None
    return store


def test_killed_worker_loses_nothing_and_doubles_nothing(cluster: Env, tmp_path: Path) -> None:
    spec = dask_spec(tmp_path, "docs_kill", "STATE_KILL", f"{{type: dask, address: {cluster.address}}}")
    proc = spawn("apply", str(spec), "--auto-approve", env=cluster.env)
    killed: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not killed:
        done, running = progress(cluster.states["STATE_KILL"])
        if 0 < done < RECORDS - 2 * SHARD and running:
            # What each worker executes now (the scheduler's processing() also lists queued tasks).
            busy = cluster.client.run(executing)
            for victim, (pid, keys) in sorted(busy.items()):
                shard = next((shard_of(k) for k in keys if shard_of(k)), None)
                if shard is not None and shard_done(cluster.states["STATE_KILL"], shard) < SHARD:
                    os.kill(pid, signal.SIGKILL)
                    killed = {"worker": victim, "pid": pid, "shard": shard, "at": done}
                    break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=180)
    assert killed, f"no shard was seen running on a worker to kill (apply: {proc.returncode}, {err[-500:]})"
    assert proc.returncode == 0, err
    assert SECRET not in out + err
    assert f"Executor: dask at {cluster.address}" in out, "the plan says where the shards run"

    assert table_rows(cluster.data, "docs_kill") == table_rows(cluster.data, "docs"), "every record, equal"
    # Nothing doubled beyond the one batch the killed worker had in flight (1 thread: one shard):
    # committed but not yet checkpointed when it died, so written again where the shard resumed.
    writes = committed_writes(cluster.data, "docs_kill")
    assert sorted(writes) == sorted(table_rows(cluster.data, "docs")), "every record written"
    again = sorted(i for i, n in writes.items() if n > 1)
    assert len(again) <= BATCH and max(writes.values()) <= 2, (len(again), killed)

    store = store_of(cluster, "dask-docs_kill", "STATE_KILL")
    try:
        cursors = [store.cursor(1, a["action_id"]) for a in store.actions(1) if a["kind"] == "copy_shard"]
        assert sum(c["records_done"] for c in cursors if c) == RECORDS, "checkpoints count each record once"
        starts: dict[str, int] = {}
        for e in store.audit_events():
            if e["event"] == "action_running":
                action = str(json.loads(e["data_json"])["action"])
                starts[action] = starts.get(action, 0) + 1
        assert starts[killed["shard"]] == 2, f"the killed worker's shard ran again: {starts}, {killed}"
        assert Lock(store, "apply").current() is None, "the coordinator released the lock"
    finally:
        store.close()
    verify = vecmig("state", "verify", str(spec), env=cluster.env)  # the workers' audit events chain
    assert verify.returncode == 0, verify.stdout + verify.stderr


def sqlite_progress(db: Path) -> list[int]:
    """records_done of every shard checkpointed so far in a SQLite state file."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return [int(r[0]) for r in c.execute("SELECT records_done FROM cursors")]
    except sqlite3.Error:
        return []


def test_ctrl_c_stops_a_local_cluster_mid_shard_and_the_resumed_copy_equals_the_local_executors(
        cluster: Env, tmp_path: Path) -> None:
    """`workers: 1`: a LocalCluster started by apply, state in SQLite beside the spec (one
    machine). Ctrl-C reaches the whole process group, the cluster's processes too: the
    coordinator asks the shard to stop after its batch, releases the lock and exits 130."""
    (tmp_path / "local").mkdir()
    (tmp_path / "lc").mkdir()
    local = dask_spec(tmp_path / "local", "docs_local", "", "{type: local}")
    on_cluster = dask_spec(tmp_path / "lc", "docs_lc", "", "{type: dask, workers: 1}")
    r = vecmig("apply", str(local), "--auto-approve", env=cluster.env)
    assert r.returncode == 0, r.stderr

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **cluster.env}
    args = ("apply", str(on_cluster), "--auto-approve")
    proc = _RecordedPopen(args, [sys.executable, "-m", "vecmig.cli", *args], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          start_new_session=True)
    db = tmp_path / "lc" / ".vecmig" / "dask-docs_lc.db"
    deadline = time.monotonic() + 120
    interrupted = False
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(sqlite_progress(db)) > 0:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
            interrupted = True
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=120)
    assert interrupted, f"the copy never showed progress (apply: {proc.returncode}, {err[-500:]})"
    assert proc.returncode == 130, out[-800:] + err
    assert "Executor: dask (local cluster, 1 worker)" in out
    assert "interrupted" in err
    done = sqlite_progress(db)
    assert any(0 < n < SHARD for n in done), f"the shard stopped after a batch, not at its end: {done}"
    store = StateStore.open("dask-docs_lc", db, None, create=False)
    assert store is not None
    try:
        assert Lock(store, "apply").current() is None, "the lock was released"
    finally:
        store.close()

    r = vecmig("apply", str(on_cluster), "--auto-approve", env=cluster.env)
    assert r.returncode == 0, r.stderr
    assert table_rows(cluster.data, "docs_lc") == table_rows(cluster.data, "docs_local")
    assert table_rows(cluster.data, "docs_local") == table_rows(cluster.data, "docs")
    verify = vecmig("state", "verify", str(on_cluster), env=cluster.env)  # worker processes wrote the SQLite chain
    assert verify.returncode == 0, verify.stdout + verify.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_is_one_line_and_leaves_the_state_untouched(cluster: Env, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    spec = dask_spec(tmp_path, "docs_never", "STATE_UNREACHABLE", f"{{type: dask, address: {address}}}")
    r = vecmig("apply", str(spec), "--auto-approve", env=cluster.env)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot reach the Dask scheduler at {address}" in lines[0], r.stderr
    assert "/executor/address" in lines[0] and "dask scheduler" in lines[0]
    with psycopg.connect(cluster.states["STATE_UNREACHABLE"]) as c:
        tables = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,), "no state was created, locked or written"
    with psycopg.connect(cluster.data) as c:
        assert c.execute("SELECT to_regclass('public.docs_never')").fetchone() == (None,)


def test_workers_resolve_the_specs_variables_from_their_own_environment(cluster: Env, tmp_path: Path) -> None:
    """A variable set only where apply runs never reaches a worker (nothing secret travels with a
    task): the shard fails there, in one line that says so, and the run is closed as failed."""
    spec = dask_spec(tmp_path, "docs_env", "STATE_WORKER_ENV", f"{{type: dask, address: {cluster.address}}}")
    spec.write_text(spec.read_text().replace("${env:SOURCE_DSN}", "${env:ONLY_WHERE_APPLY_RUNS}"))
    here_only = {**cluster.env, "ONLY_WHERE_APPLY_RUNS": cluster.env["SOURCE_DSN"]}
    r = vecmig("apply", str(spec), "--auto-approve", env=here_only)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "a Dask worker (pid " in lines[0] and "ONLY_WHERE_APPLY_RUNS" in lines[0], r.stderr
    assert SECRET not in r.stdout + r.stderr
    store = store_of(cluster, "dask-docs_env", "STATE_WORKER_ENV")
    try:
        assert {a["status"] for a in store.actions(1) if a["kind"] == "copy_shard"} <= {"failed", "pending"}
        assert Lock(store, "apply").current() is None
    finally:
        store.close()
