"""SIGKILLs across cdc applies while a writer inserts, updates and deletes on the source:
after a final resume the target equals the source record for record, and no replication
slot or publication is left behind."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import psycopg

from tests.chaos.storm import _utc_now, apply_phase
from tests.support.cli import spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.support.writer import Writer

KILLS = int(os.environ.get("VECMIG_CDC_KILLS", "5"))
SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "7"))


def closing(db: Path) -> bool:
    """The newest round's close_feed started: the switch is made."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            row = c.execute("SELECT status FROM actions WHERE action_id = 'close_feed.source' ORDER BY round DESC"
                            ).fetchone()
            return bool(row and row[0] in ("running", "done"))
    except sqlite3.Error:
        return False


def test_cdc_kill_storm_with_a_live_writer(pg_db: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data = make_docs_table(pg_db, "docs", 6000, 16)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: cdc-storm
        state: {{path: {tmp_path}/state.db}}
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                  fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_v2,
                  fields: {{id: id, vector: embedding, text: body}}, create: {{index: {{type: none}}}}}}
        strategy: {{type: cdc, batch_size: 100, concurrency: 2, shard_size: 1000, max_lag: 30, freeze_writes: true}}
        """)
    env = env_for(pg_db)
    db = tmp_path / "state.db"
    writer = Writer(pg_db, "docs", list(data.ids), 16, seed=SEED, pause=0.002)
    writer.start()
    landed: list[str] = []
    aims = ("time", "validate", "catch_up", "time", "validate", "between actions")
    try:
        while len(landed) < KILLS:
            aim = aims[len(landed) % len(aims)]
            since = _utc_now()
            proc = spawn("apply", str(spec), "--auto-approve", env=env)
            if aim == "time":
                time.sleep(rng.uniform(0.8, 3.0))
            else:
                # Aimed: validation runs under the freeze this process holds, and "between
                # actions" of a resumed round is the re-freeze and drain; the resumed run must
                # freeze and drain again in both cases for the switch to stay exact.
                deadline = time.monotonic() + 20
                while (proc.poll() is None and time.monotonic() < deadline
                       and apply_phase(tmp_path / "state.db", proc.pid, since) != aim):
                    time.sleep(0.002)
            where = apply_phase(db, proc.pid, since)
            if proc.poll() is not None or closing(db):
                # Finished, or the feed is being closed: writes from then on are the new
                # collection's business, not the feed's, so a kill there would leave a target that
                # rightly lacks them. Let it finish; the next apply starts a new round.
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, out + err
                continue
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            landed.append(where)
    finally:
        ops = writer.stop()
    final = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert final.returncode == 0, final.stdout + final.stderr
    source, target = table_rows(pg_db, "docs"), table_rows(pg_db, "docs_v2")
    assert len(source) == len(target) and source == target  # ids, float32 text (exact bits), metadata, body
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0] == 0
    verify = vecmig("state", "verify", str(spec), env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT round, result_json FROM actions WHERE kind = 'catch_up' AND status = 'done'"
                         ).fetchall()
    print(f"kills landed in {landed}; writer did {ops}; catch-up results {rows}")
    assert "validate" in landed and ("catch_up" in landed or "copy" in landed), landed
