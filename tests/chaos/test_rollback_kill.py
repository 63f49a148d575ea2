"""SIGKILL during rollback, then rollback again: the migration ends fully rolled back."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import psycopg

from tests.support.cli import spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec


def undone(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
        return int(c.execute("SELECT count(*) FROM actions WHERE status = 'rolled_back'").fetchone()[0])


def test_killed_rollbacks_converge(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 6000, 16, seed=1)
    # A target that already held data: 4,000 ids overlap (their before-images must come
    # back) and 1,000 are extras (deleted by the apply, restored by the rollback).
    make_docs_table(pg_db, "shared", 5000, 16, seed=2, start=2001)
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW shared_live AS SELECT * FROM docs")
    before = table_rows(pg_db, "shared")
    spec = write_spec(tmp_path, """
        version: 1
        name: rb
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: shared, alias: shared_live,
                 fields: {id: id, vector: embedding, text: body}, create: {index: {type: none}}}
        strategy: {type: big-bang, batch_size: 100, concurrency: 2, shard_size: 2000}
        """)
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == table_rows(pg_db, "docs")

    db = tmp_path / ".vecmig" / "rb.db"
    rng = random.Random(3)
    kills = 0
    for step in range(12):
        # Kill right after the step-th undo is recorded (+ jitter): every phase of the
        # rollback gets interrupted once, including mid-restore of before-images.
        proc = spawn("rollback", str(spec), "--auto-approve", env=env)
        deadline = time.monotonic() + 30
        while proc.poll() is None and undone(db) < step and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 4, "rollback finished before it could be interrupted"
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == before, "every overwritten and deleted record is back"
    with psycopg.connect(pg_db) as conn:
        live = conn.execute("SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
                            "JOIN pg_class c ON c.oid = d.refobjid WHERE w.ev_class = 'shared_live'::regclass "
                            "AND c.relname <> 'shared_live'").fetchall()
        assert [x[0] for x in live] == ["docs"]
    with sqlite3.connect(db) as c:
        statuses = {s for (s,) in c.execute("SELECT status FROM rounds")}
        assert statuses == {"rolled_back"}
        assert c.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
    assert "Nothing to roll back" in vecmig("rollback", str(spec), "--auto-approve", env=env).stdout
