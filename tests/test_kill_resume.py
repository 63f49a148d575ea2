"""SIGKILL a real `vecmig apply` at random points, resume each time, then compare every record."""

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

RECORDS = 12_000
BATCH = 150
CONCURRENCY = 2


def progress(db: Path) -> tuple[int, set[str]]:
    """Records checkpointed so far, and the actions currently running."""
    if not db.exists():
        return 0, set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            done = c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()[0]
            running = {r[0] for r in c.execute("SELECT action_id FROM actions WHERE status = 'running'")}
            return int(done), running
    except sqlite3.Error:
        return 0, set()


def kill_at(spec: Path, env: dict[str, str], db: Path, point: tuple[str, object], jitter: float,
            timeout: float = 120) -> bool:
    """Start an apply and SIGKILL it when ``point`` is reached; False if it finished first."""
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    deadline = time.monotonic() + timeout
    kind, value = point
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        done, running = progress(db)
        reached = (
            (kind == "records" and done >= int(str(value)))
            or (kind == "action" and value in running)
            or (kind == "time" and time.monotonic() - started >= float(str(value)))
        )
        if reached:
            time.sleep(jitter)  # land anywhere: mid-COPY, between commit and checkpoint, mid-scan
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.communicate(timeout=30)
    return False


def test_sigkill_at_random_points_then_resume(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", RECORDS, 48, seed=5)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: chaos
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_v2,
                 fields: {{id: id, vector: embedding, text: body}}, create: {{index: {{type: hnsw}}}}}}
        strategy: {{type: big-bang, batch_size: {BATCH}, concurrency: {CONCURRENCY}, shard_size: 3000}}
        """)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "chaos.db"
    rng = random.Random(int(os.environ.get("VECMIG_CHAOS_SEED", "20261125")))
    thresholds = sorted(rng.sample(range(1, RECORDS - BATCH * 4), 5))
    points: list[tuple[str, object]] = [("time", rng.uniform(0.2, 1.2))]
    points += [("records", t) for t in thresholds]
    points += [("action", "build_index.target"), ("action", "validate.completeness")]
    kills = 0
    started = time.monotonic()
    for point in points:
        if kill_at(spec, env, db, point, rng.uniform(0, 0.03)):
            kills += 1
    assert kills >= 5, f"only {kills} kills landed"
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    elapsed = time.monotonic() - started

    source, target = table_rows(pg_db, "docs"), table_rows(pg_db, "docs_v2")
    assert len(target) == RECORDS and source.keys() == target.keys()
    assert all(source[k] == target[k] for k in source), "every record equal, vectors bit for bit"

    # Records written more than once: an upsert of an id that was already committed is an UPDATE.
    with psycopg.connect(pg_db, autocommit=True) as conn:
        ins = upd = 0
        for _ in range(100):
            conn.execute("SELECT pg_stat_clear_snapshot()")
            ins, upd = conn.execute("SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables "
                                    "WHERE relname = 'docs_v2'").fetchone()
            if ins >= RECORDS:
                break
            time.sleep(0.1)
        assert ins >= RECORDS, f"statistics never showed the {RECORDS} inserts ({ins})"
        redone = upd
    # At most one batch per shard in flight per kill (doubled: an aborted replay counts too).
    assert redone <= kills * CONCURRENCY * BATCH * 2, redone
    print(f"\nkill-and-resume: {kills} kills at {points}, {ins} inserted, {redone} rewritten, {elapsed:.1f}s total")

    plan = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
