"""End to end through the CLI on a real PostgreSQL + pgvector: plan, apply, resume, rollback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.support.cli import count, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, big_bang_spec, env_for, write_spec

# Re-exported for modules that still import them from here (moved to tests.support.specs).
__all__ = ["SECRET", "big_bang_spec", "env_for", "write_spec"]


def assert_same(dsn: str, a: str, b: str) -> None:
    left, right = table_rows(dsn, a), table_rows(dsn, b)
    assert left.keys() == right.keys()
    for k in left:
        assert left[k] == right[k], f"record {k} differs"


def test_plan_apply_noop_and_secrets(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 2500, 32)
    spec = big_bang_spec(tmp_path)
    env = env_for(pg_db)

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 2, r.stderr
    assert "create_collection.target" in r.stdout and "copy.shard[0]" in r.stdout
    assert "Plan: 2 to add" in r.stdout
    assert not (tmp_path / ".vecmig").exists(), "plan must not create state"

    a = vecmig("plan", str(spec), "--json", env=env).stdout
    b = vecmig("plan", str(spec), "--json", env=env).stdout
    assert a == b, "same inputs must give a byte-identical plan"
    body = json.loads(a)
    assert body["format_version"] == 1 and body["totals"]["records"] == 2500

    out = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout
    assert_same(pg_db, "docs", "docs_v2")

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No changes" in r.stdout

    # Applying the same saved plan twice is refused: the state moved on.
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "stale" in r.stderr and "serial" in r.stderr

    state_file = tmp_path / ".vecmig" / "e2e.db"
    for f in [state_file, out, *tmp_path.glob(".vecmig/*")]:
        assert SECRET.encode() not in f.read_bytes(), f"secret leaked into {f}"
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
    listing = vecmig("state", "list", str(spec), env=env)
    assert listing.returncode == 0 and "copy.shard[0]" in listing.stdout and "done" in listing.stdout


def test_stale_plan_refused_when_source_changes(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 300, 16)
    spec = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    out = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    with psycopg.connect(pg_db) as conn:
        conn.execute("INSERT INTO docs (id, embedding) SELECT 100000, embedding FROM docs LIMIT 1")
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1
    assert "stale" in r.stderr and "source changed" in r.stderr
    assert not (tmp_path / ".vecmig" / "e2e.db").exists() or count(pg_db, "docs") == 301
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_v2')").fetchone()[0] is None, "nothing may be applied"


def test_edited_plan_refused(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 100, 8)
    spec = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    out = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    body = json.loads(out.read_text())
    body["actions"][1]["params"]["batch_size"] = 7
    out.write_text(json.dumps(body))
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "modified after it was written" in r.stderr


def test_blue_green_cutover_and_rollback(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 1200, 24, id_type="text")
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    spec = write_spec(tmp_path, """
        version: 1
        name: bg
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_green,
                 alias: docs_live, fields: {id: id, vector: embedding, text: body},
                 create: {metric: cosine, index: {type: ivfflat, lists: 10}}}
        strategy: {type: blue-green, batch_size: 100, shard_size: 1000}
        """)
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cutover.alias" in r.stdout
    assert_same(pg_db, "docs", "docs_green")
    with psycopg.connect(pg_db) as conn:
        deps = conn.execute("SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
                            "JOIN pg_class c ON c.oid = d.refobjid WHERE w.ev_class = 'docs_live'::regclass "
                            "AND c.relname <> 'docs_live'").fetchall()
        assert [d[0] for d in deps] == ["docs_green"]
        assert conn.execute("SELECT count(*) FROM docs").fetchone()[0] == 1200, "blue is kept"

    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_green')").fetchone()[0] is None
        deps = conn.execute("SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
                            "JOIN pg_class c ON c.oid = d.refobjid WHERE w.ev_class = 'docs_live'::regclass "
                            "AND c.relname <> 'docs_live'").fetchall()
        assert [d[0] for d in deps] == ["docs"]
    # After a rollback, the next plan starts over.
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 2 and "create_collection.target" in r.stdout


def test_rollback_restores_before_images_of_existing_target(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 500, 8, seed=1)
    # A target that already holds data: 200 ids overlap the source with other values, 50 are extra.
    make_docs_table(pg_db, "shared", 250, 8, seed=2, start=400)
    before = table_rows(pg_db, "shared")
    spec = big_bang_spec(tmp_path, target="shared", batch=64)
    env = env_for(pg_db)
    p = vecmig("plan", str(spec), env=env)
    assert "VM102" in p.stdout and "delete_extra.target" in p.stdout and "destructive" in p.stdout
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same(pg_db, "docs", "shared")
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == before


def test_validation_failure_names_shard_and_ids(pg_db: str, tmp_path: Path) -> None:
    from vecmig.actions import KINDS, RunContext
    from vecmig.errors import ValidationFailed
    from vecmig.model import Plan
    from vecmig.spec_loader import load_spec
    from vecmig.state.store import StateStore

    make_docs_table(pg_db, "docs", 600, 8)
    spec_path = big_bang_spec(tmp_path, shard=1000)
    env = env_for(pg_db)
    assert vecmig("apply", str(spec_path), "--auto-approve", env=env).returncode == 0
    with psycopg.connect(pg_db) as conn:
        conn.execute("UPDATE docs_v2 SET title = 'tampered' WHERE id = 17")
        conn.execute("DELETE FROM docs_v2 WHERE id = 23")
        conn.execute("INSERT INTO docs_v2 (id, embedding) SELECT 99999, embedding FROM docs LIMIT 1")
    spec = load_spec(spec_path, env=env)
    state = StateStore.open(spec.name, spec.state_path, None, create=False)
    assert state is not None
    plan = Plan.from_json(json.loads(state.rounds()[-1]["plan_json"]))
    check = next(a for a in plan.actions if a.kind == "validate_completeness")
    with pytest.raises(ValidationFailed) as e:
        KINDS[check.kind].run(RunContext(spec=spec, state=state, round=plan.round), check)
    msg = e.value.message
    assert "shard 0" in msg and "1 missing (ids 23)" in msg and "1 different (ids 17)" in msg
    assert "99999" in msg


def test_lock_refuses_second_apply_and_force_unlock(pg_db: str, tmp_path: Path) -> None:
    from vecmig.spec_loader import load_spec
    from vecmig.state.lock import Lock
    from vecmig.state.store import StateStore

    make_docs_table(pg_db, "docs", 50, 8)
    spec_path = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    spec = load_spec(spec_path, env=env)
    state = StateStore.open(spec.name, spec.state_path, None, create=True)
    assert state is not None
    held = Lock(state, "apply")
    held.acquire()
    r = vecmig("apply", str(spec_path), "--auto-approve", env=env)
    assert r.returncode == 1
    assert "locked" in r.stderr and held.lock_id in r.stderr and "pid" in r.stderr and "(apply)" in r.stderr
    r = vecmig("force-unlock", str(spec_path), "not-the-id", env=env)
    assert r.returncode == 1 and "does not match" in r.stderr
    r = vecmig("force-unlock", str(spec_path), held.lock_id, env=env)
    assert r.returncode == 0, r.stderr
    r = vecmig("apply", str(spec_path), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dead_lock_holder_is_detected(pg_db: str, tmp_path: Path) -> None:
    from sqlalchemy import insert

    from vecmig.spec_loader import load_spec
    from vecmig.state import schema as t
    from vecmig.state.identity import actor, now
    from vecmig.state.store import StateStore

    make_docs_table(pg_db, "docs", 50, 8)
    spec_path = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    spec = load_spec(spec_path, env=env)
    state = StateStore.open(spec.name, spec.state_path, None, create=True)
    assert state is not None
    with state.tx() as c:  # a lock left by a process on this host that no longer exists
        c.execute(insert(t.locks).values(name="migration", lock_id="dead-one", user="ghost", host=actor()["host"],
                                         pid=2**22 + 12345, operation="apply", created=now(), heartbeat=now()))
    r = vecmig("apply", str(spec_path), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    events = [e["event"] for e in state.audit_events()]
    assert "lock_taken_over" in events


def test_state_file_has_no_secret_and_audit_chain(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 200, 8)
    spec = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    assert vecmig("apply", str(spec), "--auto-approve", env=env).returncode == 0
    db = tmp_path / ".vecmig" / "e2e.db"
    assert SECRET.encode() not in db.read_bytes()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET data_json = data_json || ' ' WHERE seq = 3")
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 1 and "event 3" in r.stderr and "edited" in r.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET data_json = rtrim(data_json, ' ') WHERE seq = 3")
        conn.execute("DELETE FROM audit WHERE seq = 5")
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 1 and "event 5 is missing" in r.stderr


def test_decommission_is_irreversible_and_blocks_rollback(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 300, 8)
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    spec = write_spec(tmp_path, """
        version: 1
        name: retire
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 alias: docs_live, fields: {id: id, vector: embedding, text: body}}
        strategy: {type: blue-green, decommission: true}
        """)
    env = env_for(pg_db)
    p = vecmig("plan", str(spec), env=env)
    assert "decommission.source" in p.stdout and "IRREVERSIBLE" in p.stdout
    assert "Cannot be undone by rollback: decommission.source" in p.stdout
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM docs_live").fetchone()[0] == 300
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1 and "cannot be undone" in r.stderr


def test_rollback_after_sigkill_mid_copy(pg_db: str, tmp_path: Path) -> None:
    import os
    import signal
    import time

    from tests.cli_utils import spawn
    from tests.test_kill_resume import progress

    make_docs_table(pg_db, "docs", 8000, 16)
    spec = big_bang_spec(tmp_path, batch=100, shard=2000)
    env = env_for(pg_db)
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    deadline = time.monotonic() + 60
    while progress(tmp_path / ".vecmig" / "e2e.db")[0] < 1000 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_v2')").fetchone()[0] is None
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 2 and "round 2" in r.stdout
