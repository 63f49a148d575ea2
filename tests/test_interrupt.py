"""Ctrl-C during apply: the batch in flight is finished and checkpointed, the lock released, exit non-zero."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from tests.support.cli import count, spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.test_kill_resume import progress


def test_sigint_checkpoints_and_releases_lock(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 15_000, 32, seed=3)
    spec = write_spec(tmp_path, """
        version: 1
        name: sigint
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 fields: {id: id, vector: embedding, text: body}, create: {index: {type: none}}}
        strategy: {type: big-bang, batch_size: 100, concurrency: 2, shard_size: 5000}
        """)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "sigint.db"
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    deadline = time.monotonic() + 120
    while progress(db)[0] < 1500 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "apply" in err

    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM locks").fetchone()[0] == 0, "lock must be released"
        checkpointed = c.execute("SELECT sum(records_done) FROM cursors").fetchone()[0]
        run = c.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert run == "interrupted"
    # Every acknowledged batch was checkpointed, and nothing beyond: the two agree exactly.
    assert count(pg_db, "docs_v2") == checkpointed
    assert 0 < checkpointed < 15_000

    plan = vecmig("plan", str(spec), env=env)
    assert "(resume)" in plan.stdout and "resuming round 1" in plan.stdout
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")
