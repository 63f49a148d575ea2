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
import threading
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
from tests.openai_local import OpenAILocal
from tests.openai_local.server import DEFAULT_API_KEY, ApiFailure
from tests.support.cli import ROOT, _RecordedPopen, spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.embed import MODEL, local_model
from tests.support.specs import SECRET, write_spec
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore

RECORDS = 4000
BATCH = 50
SHARD = 1000  # 4 shards of 20 batches
STATES = ("STATE_KILL", "STATE_UNREACHABLE", "STATE_WORKER_ENV", "STATE_EMBED")
CACHE_APP = "vecmig_embed_cache"  # names the embedding cache's sessions in pg_stat_activity


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
    env = {"SOURCE_DSN": _marked(urls["data"]), "TARGET_DSN": _marked(urls["data"]), "EMBED_KEY": DEFAULT_API_KEY,
           "EMBED_CACHE": f"{urls['data']}{'&' if '?' in urls['data'] else '?'}application_name={CACHE_APP}",
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


# --- re-embedding on the cluster -------------------------------------------------------------------

NOTES = 2500
NOTE_BATCH = 100
NOTE_SHARD = 1000  # 3 shards (the least shard_size is 1000)
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"]


def note(i: int) -> str:
    # Every odd record repeats the text of the record before it, in the same shard (shards are
    # id ranges of 1000): a text is paid for once however often it appears.
    j = i - 1 if i % 2 else i
    return f"note {j}: {WORDS[j % 11]} {WORDS[(j * 3) % 11]} {WORDS[(j * 7) % 11]}"


class WorkerKillingServer(OpenAILocal):
    """SIGKILLs the Dask worker that sends a request once ``armed`` says yes, and refuses that
    request: the kill lands while the worker waits for its vectors, so the provider never
    finished what the worker loses (a kill between answer and cache commit would pay again)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._peer = threading.local()  # the port a request came from, per handler thread
        super().__init__(*args, **kwargs)
        self.armed: Any = None  # (worker pid) -> bool, asked for requests from a worker
        self.workers: dict[int, str] = {}  # pid -> worker address, set by the test
        self.killed: dict[str, Any] = {}

    def _handler(self) -> type[Any]:
        base = super()._handler()
        peer = self._peer

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:
                peer.port = self.client_address[1]
                super().do_POST()

        return Handler

    def _sender(self) -> int | None:
        import psutil

        port = getattr(self._peer, "port", None)
        for pid in list(self.workers):
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(c.laddr and c.laddr.port == port for c in conns):
                return pid
        return None

    def _fault(self) -> None:
        super()._fault()
        if self.killed or self.armed is None:
            return
        pid = self._sender()
        if pid is not None and self.armed(pid):
            os.kill(pid, signal.SIGKILL)
            self.killed = {"pid": pid, "worker": self.workers[pid], "request": self.stats.requests}
            raise ApiFailure(503, "the worker was killed", kind="server_error")


@pytest.fixture(scope="module")
def embed_server() -> Iterator[WorkerKillingServer]:
    with WorkerKillingServer(local_model(batch_size=64), model_name=MODEL) as srv:
        yield srv


class CountLoads:
    """A worker plugin (so a worker the nanny restarts counts too): per worker process, the
    models built (``make_model``) and the shard tasks run."""

    name = "vecmig-count-loads"

    def setup(self, worker: Any) -> None:
        import importlib

        # (vecmig.embed re-exports the function ``loaded``, which hides the module of that name)
        loaded = importlib.import_module("vecmig.embed.loaded")
        shard = importlib.import_module("vecmig.cluster_shard")

        counts = {"loads": 0, "shards": 0}
        make, open_ = loaded.make_model, shard._open

        def counting_make(config: Any) -> Any:
            counts["loads"] += 1
            return make(config)

        def counting_open(job: Any) -> Any:
            counts["shards"] += 1
            return open_(job)

        loaded.make_model = counting_make  # type: ignore[assignment]
        shard._open = counting_open  # type: ignore[assignment]
        worker.vecmig_counts = counts


def counts_of(dask_worker: Any) -> dict[str, int]:
    return dict(getattr(dask_worker, "vecmig_counts", {"loads": -1, "shards": -1}))


def cache_sessions_open(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (CACHE_APP,)).fetchone()
    return int(row[0]) if row else 0


def make_notes(dsn: str) -> None:
    import numpy as np

    vectors = np.random.default_rng(5).normal(size=(NOTES, 8)).astype(np.float32)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE notes (id bigint PRIMARY KEY, embedding vector(8) NOT NULL, body text NOT NULL)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO notes VALUES (%s, %s::vector, %s)",
                            [(i, str(vectors[i].tolist()), note(i)) for i in range(NOTES)])


def test_reembedding_on_the_cluster_survives_a_worker_killed_mid_shard_and_pays_each_text_once(
        cluster: Env, embed_server: WorkerKillingServer, tmp_path: Path) -> None:
    import numpy as np
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin = type("CountLoadsPlugin", (CountLoads, WorkerPlugin), {})()
    cluster.client.register_plugin(plugin)
    make_notes(cluster.data)
    state_url = cluster.states["STATE_EMBED"]
    spec = write_spec(tmp_path, f"""
        version: 1
        name: dask-embed
        state: {{url: "${{env:STATE_EMBED}}"}}
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: notes,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: notes_embedded,
                 fields: {{id: id, vector: embedding, text: body}}}}
        transform:
          embed:
            model: {MODEL}
            text: body
            batch_size: {NOTE_BATCH}
            cache: "${{env:EMBED_CACHE}}"
            api: {{base_url: "{embed_server.url}", api_key: "${{env:EMBED_KEY}}", tokenizer: {MODEL}, dimension: 384}}
        strategy: {{type: big-bang, batch_size: {NOTE_BATCH}, shard_size: {NOTE_SHARD}}}
        executor: {{type: dask, address: {cluster.address}}}
        """)

    def mid_shard(pid: int) -> bool:
        """The sender executes a shard that has checkpointed a batch and has more to do."""
        busy = cluster.client.run(executing)
        keys = next((k for _, (p, k) in busy.items() if p == pid), [])
        shard = next((shard_of(k) for k in keys if shard_of(k)), None)
        if shard is None or not 0 < shard_done(state_url, shard) < NOTE_SHARD:
            return False
        cache_sessions.append(cache_sessions_open(cluster.data))
        return True

    cache_sessions: list[int] = []  # the cache's sessions when the kill landed
    embed_server.reset()
    embed_server.killed = {}
    embed_server.workers = {pid: w for w, (pid, _) in cluster.client.run(executing).items()}
    embed_server.armed = mid_shard
    try:
        r = vecmig("apply", str(spec), "--auto-approve", env=cluster.env)
    finally:
        embed_server.armed = None
    killed = embed_server.killed
    assert killed, f"no request came from a worker in the middle of a shard (apply: {r.returncode}, {r.stderr[-500:]})"
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr and DEFAULT_API_KEY not in r.stdout + r.stderr

    # Every record re-embedded: the model's own vector of its text.
    with psycopg.connect(cluster.data) as c:
        rows = c.execute("SELECT id, embedding::text, body FROM notes_embedded ORDER BY id").fetchall()
    assert [int(i) for i, _, _ in rows] == list(range(NOTES))
    assert [b for _, _, b in rows] == [note(i) for i in range(NOTES)]
    have = np.array([json.loads(v) for _, v, _ in rows], dtype=np.float32)
    want = embed_server.model.embed([note(i) for i in range(NOTES)])
    cos = np.sum(have * want, axis=1) / (np.linalg.norm(have, axis=1) * np.linalg.norm(want, axis=1))
    assert have.shape == (NOTES, 384) and float(cos.min()) >= 0.9999

    # Each distinct text embedded exactly once, across the kill and the shard's second start (the
    # plan learns the endpoint's width from a sampled text embedded through the cache: no probe text).
    assert set(embed_server.stats.texts) == {note(i) for i in range(NOTES)}
    assert max(embed_server.stats.texts.values()) == 1, embed_server.stats.texts.most_common(3)
    store = store_of(cluster, "dask-embed", "STATE_EMBED")
    try:
        starts: dict[str, int] = {}
        for e in store.audit_events():
            if e["event"] == "action_running":
                action = str(json.loads(e["data_json"])["action"])
                starts[action] = starts.get(action, 0) + 1
        assert max(starts.values()) == 2, f"the killed worker's shard ran again: {starts}, {killed}"
    finally:
        store.close()

    # The model is built once per worker process, not once per shard (the restarted worker too).
    counts = cluster.client.run(counts_of)
    assert killed["pid"] not in [p for p, _ in cluster.client.run(executing).values()]
    assert all(n["loads"] == (1 if n["shards"] else 0) for n in counts.values()), counts
    assert max(n["shards"] for n in counts.values()) >= 2, counts
    # The shards closed their cache sessions (the worker processes live on).
    assert cache_sessions and cache_sessions[0] >= 1, "the running shards' cache sessions are seen"
    assert cache_sessions_open(cluster.data) == 0, "a shard left its embedding cache's connection open on its worker"
    cluster.client.unregister_worker_plugin(CountLoads.name)
