"""State shared on PostgreSQL (`state: {url: ...}`): a full apply, the lock raced by two
processes, concurrent audit appends, dead-holder takeover, and an explicit upgrade."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PgServer
from tests.support.cli import ROOT, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, env_for, write_spec
from vecmig.state.store import StateStore


@pytest.fixture
def state_db(pg: PgServer) -> Iterator[str]:
    """A database of its own for the state, beside the data's."""
    name = f"state_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg.url(name)
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_secret(dsn: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}application_name={SECRET}"


def pg_spec(tmp: Path) -> Path:
    return write_spec(tmp, """
        version: 1
        name: shared-state
        state: {url: "${env:STATE_URL}"}
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 fields: {id: id, vector: embedding, text: body}}
        strategy: {type: big-bang, batch_size: 100, shard_size: 1000}
        """)


def dump_text(dsn: str) -> str:
    """Every value of every table in the state database, as text."""
    out = []
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for t in tables:
            for row in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(t))):
                out.append(row[0])
    return "\n".join(out)


def open_store(url: str) -> StateStore:
    store = StateStore.open("shared-state", None, url, create=True)
    assert store is not None
    return store


def test_full_apply_with_postgres_state(pg_db: str, state_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 1500, 8)
    spec = pg_spec(tmp_path)
    env = {**env_for(pg_db), "STATE_URL": with_secret(state_db)}
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 2, r.stderr
    assert "audit" not in dump_text(state_db), "plan must not create state"
    out = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "State: postgresql://" in r.stdout and SECRET not in r.stdout
    assert table_rows(pg_db, "docs").keys() == table_rows(pg_db, "docs_v2").keys()
    assert not (tmp_path / ".vecmig").exists(), "the state lives in PostgreSQL only"
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0 and "No changes" in r.stdout
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0 and "chain intact" in r.stdout, r.stderr
    r = vecmig("state", "history", str(spec), env=env)
    assert r.returncode == 0 and "run_finished" in r.stdout
    r = vecmig("state", "export", str(spec), "--format", "jsonl", env=env)
    assert r.returncode == 0 and SECRET not in r.stdout
    assert vecmig("rollback", str(spec), "--auto-approve", env=env).returncode == 0
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stderr
    assert SECRET not in dump_text(state_db)
    # Tampering is found in PostgreSQL just as in SQLite.
    with psycopg.connect(state_db) as conn:
        conn.execute("DELETE FROM audit WHERE seq > 10")
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 1 and "events after 10 were removed" in r.stderr


RACER = textwrap.dedent("""
    import json, sys, time
    from vecmig.errors import LockError
    from vecmig.state.lock import Lock
    from vecmig.state.store import StateStore

    url, start = sys.argv[1], float(sys.argv[2])
    store = StateStore.open("shared-state", None, url, create=False)
    lock = Lock(store, "apply")
    while time.time() < start:
        pass  # spin, so both processes leave the line within microseconds of each other
    try:
        lock.acquire(timeout=0)
    except LockError as e:
        print(json.dumps({"lost": e.one_line()}))
        sys.exit(0)
    print(json.dumps({"won": lock.lock_id}), flush=True)
    time.sleep(2.0)
    lock.release()
""")


def test_two_processes_race_for_the_postgres_lock(state_db: str) -> None:
    store = open_store(state_db)
    for attempt in range(4):
        start = time.time() + 2.0
        procs = [subprocess.Popen([sys.executable, "-c", RACER, state_db, str(start)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=60)
            assert p.returncode == 0, stderr
            results.append((p.pid, json.loads(stdout)))
        winners = [(pid, r["won"]) for pid, r in results if "won" in r]
        losers = [r["lost"] for _, r in results if "lost" in r]
        assert len(winners) == 1 and len(losers) == 1, (attempt, results)
        pid, lock_id = winners[0]
        assert f"the migration is locked: lock {lock_id} held by" in losers[0] and f"pid {pid} (apply)" in losers[0]
        assert f"force-unlock SPEC {lock_id}" in losers[0]
    ok, why = store.verify_chain()
    assert ok, why
    acquired = [e for e in store.audit_events() if e["event"] == "lock_acquired"]
    assert len(acquired) == 4


APPENDER = textwrap.dedent("""
    import sys, time
    from vecmig.state.store import StateStore

    url, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    store = StateStore.open("shared-state", None, url, create=True)
    while time.time() < start:
        pass
    for i in range(n):
        store.audit_event("test_append", {"i": i})
""")


def test_concurrent_audit_appends_keep_one_chain(state_db: str) -> None:
    """Without the lock, four writers append at once: the head row queues them (FOR UPDATE)."""
    start = time.time() + 2.5
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, state_db, str(start), "25"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
    store = open_store(state_db)
    events = store.audit_events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(1 for e in events if e["event"] == "test_append") == 100
    assert sum(1 for e in events if e["event"] == "state_created") == 1, "four racing creators, one store"
    ok, why = store.verify_chain()
    assert ok, why


def test_dead_holder_is_taken_over_on_postgres(state_db: str) -> None:
    from sqlalchemy import insert

    from vecmig.state import schema as t
    from vecmig.state.identity import actor, now
    from vecmig.state.lock import Lock

    store = open_store(state_db)
    with store.tx() as c:
        c.execute(insert(t.locks).values(name="migration", lock_id="dead-one", user="ghost", host=actor()["host"],
                                         pid=2**22 + 4321, operation="apply", created=now(), heartbeat=now()))
    lock = Lock(store, "apply")
    lock.acquire()
    try:
        assert lock.current()["lock_id"] == lock.lock_id  # type: ignore[index]
    finally:
        lock.release()
    assert "lock_taken_over" in [e["event"] for e in store.audit_events()]


def test_upgrade_on_postgres_backs_up_into_a_schema(state_db: str, tmp_path: Path) -> None:
    store = open_store(state_db)
    store.audit_event("test_append", {"i": 1})
    with psycopg.connect(state_db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'audit_head'")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    spec = pg_spec(tmp_path)
    env = {"SOURCE_DSN": "postgresql://h/a", "TARGET_DSN": "postgresql://h/b", "STATE_URL": state_db}
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 1 and "vecmig state upgrade" in r.stderr
    r = vecmig("state", "upgrade", str(spec), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Backed up the state to schema vecmig_backup_v1_" in r.stdout
    with psycopg.connect(state_db) as conn:
        schema = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vecmig_backup_v1_%'").fetchone()[0]
        old = conn.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'")
                           .format(sql.Identifier(schema))).fetchone()[0]
        assert old == "1"
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stderr
