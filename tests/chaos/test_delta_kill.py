"""SIGKILL a delta apply (only the records the diff found, fetched by id, with before-images
of an existing target) at random points, resume, compare every record; then roll back and
find the target exactly as it was before vecmig touched it."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import psycopg

from tests.support.cli import spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.test_kill_resume import progress

SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "20261206"))
KILLS = 6


def test_delta_apply_killed_and_resumed_then_rolled_back(pg_db: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    make_docs_table(pg_db, "docs", 4000, 16)
    with psycopg.connect(pg_db) as conn:
        # A target that exists before vecmig: yesterday's copy, since drifted both ways.
        conn.execute("CREATE TABLE docs_v2 (LIKE docs INCLUDING ALL)")
        conn.execute("INSERT INTO docs_v2 SELECT * FROM docs")
        conn.execute("UPDATE docs SET title = 'now ' || id WHERE id % 7 = 0")  # ~570 changed in the source
        conn.execute("UPDATE docs SET embedding = embedding + embedding WHERE id % 97 = 0")
        conn.execute("DELETE FROM docs WHERE id % 113 = 0")  # extras in the target
        conn.execute("CREATE TEMP TABLE fresh AS SELECT * FROM docs WHERE id <= 150")
        conn.execute("UPDATE fresh SET id = id + 100000")
        conn.execute("INSERT INTO docs SELECT * FROM fresh")
    before = table_rows(pg_db, "docs_v2")
    spec = write_spec(tmp_path, """
        version: 1
        name: delta
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 fields: {id: id, vector: embedding, text: body}}
        strategy: {batch_size: 25, concurrency: 2, shard_size: 1000}
        """)
    env = env_for(pg_db)
    plan = json.loads(vecmig("plan", str(spec), "--json", env=env).stdout)
    copies = [a for a in plan["actions"] if a["kind"] == "copy_shard"]
    # Shards of edited records are fetched by id; the shard of only new ids is copied whole.
    assert any(len(a["params"].get("ids", [])) > 500 for a in copies), "the delta is fetched by id"
    assert plan["records"]["delete"] == len([i for i in range(1, 4001) if i % 113 == 0])
    total = sum(a["estimate"]["records"] for a in copies)
    db = tmp_path / ".vecmig" / "delta.db"
    kills = 0
    for _ in range(40):
        proc = spawn("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
        target = rng.randint(1, total)
        while proc.poll() is None:
            done, _ = progress(db)
            if done >= target:
                time.sleep(rng.random() * 0.05)
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.003)
        proc.communicate(timeout=60)
        if proc.returncode == 0:
            break
        if kills >= KILLS:
            r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
            assert r.returncode == 0, r.stdout + r.stderr
            break
    assert kills >= 2, "the storm must land kills inside the delta copy"
    assert table_rows(pg_db, "docs_v2") == table_rows(pg_db, "docs")
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs_v2") == before
