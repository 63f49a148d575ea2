"""parallel-run and rollback triggers through the CLI against real PostgreSQL + pgvector.

A recorded query log replayed against both tables beside the catch-up of a live source (a
concurrent writer), the report kept in state and rendered as Markdown; a poor target index
failing the gate with exit 1 and nothing switched; `vecmig watch` passing over a healthy
target and, once the target's index is swapped for a poor IVFFlat one after the cutover,
switching the view back to the old table, saying why in the audit log and exiting 3."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from tests.support.cli import spawn, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.support.writer import Writer
from vecmig.quality.report import render_markdown

DIM = 16


def exact_source(dsn: str) -> None:
    """The source answers by exact search (no index): its metric declared as vecmig reads it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("COMMENT ON COLUMN docs.embedding IS 'vecmig:metric=cosine'")


def write_log(path: Path, n: int = 25, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    lines = [json.dumps({"id": f"q{i}", "vector": [round(float(x), 5) for x in rng.standard_normal(DIM)], "k": 10})
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def spec(tmp: Path, *, strategy: str, index: str = "{type: none}", extra: str = "") -> Path:
    return write_spec(tmp, f"""
        version: 1
        name: prun
        state: {{path: {tmp}/state.db}}
        source:
          provider: pgvector
          connection: {{dsn: "${{env:SOURCE_DSN}}"}}
          collection: docs
          fields: {{id: id, vector: embedding, text: body}}
        target:
          provider: pgvector
          connection: {{dsn: "${{env:TARGET_DSN}}"}}
          collection: docs_v2
          fields: {{id: id, vector: embedding, text: body}}
          create: {{metric: cosine, index: {index}}}
          alias: docs_live
        strategy: {strategy}
        """ + extra)


def actions(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        rows = c.execute("SELECT * FROM actions ORDER BY round, seq").fetchall()
    return {r["action_id"]: dict(r) for r in rows}


def audit(db: Path, event: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT data_json FROM audit WHERE event = ? ORDER BY seq", (event,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def view_table(dsn: str, view: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT definition FROM pg_views WHERE viewname = %s", (view,)).fetchone()
    if row is None:
        return None
    return "docs_v2" if "docs_v2" in row[0] else "docs"


def test_replay_beside_the_catch_up_of_a_live_source(pg_db: str, tmp_path: Path) -> None:
    data = make_docs_table(pg_db, "docs", 3000, DIM)
    exact_source(pg_db)
    write_log(tmp_path / "queries.jsonl")
    path = spec(tmp_path, strategy="{type: parallel-run, batch_size: 500, concurrency: 2, max_lag: 50, "
                                   "freeze_writes: true, replay: {file: queries.jsonl, queries: 300, "
                                   "concurrency: 2}, gate: {min_overlap: 0.8, max_error_rate: 0}}")
    env = env_for(pg_db)
    plan = vecmig("plan", str(path), env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "replay.queries" in plan.stdout and "measured whole" in plan.stdout
    writer = Writer(pg_db, "docs", list(data.ids), DIM)
    writer.start()
    try:
        time.sleep(0.3)
        r = vecmig("apply", str(path), "--auto-approve", env=env)
    finally:
        ops = writer.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replay.queries: 300 queries · overlap@10" in r.stdout  # the running comparison, shown live
    assert "done replay.queries" in r.stdout and "gate passed" in r.stdout
    assert ops["transactions"] > 10, ops
    rows = actions(tmp_path / "state.db")
    replay, catch_up = rows["replay.queries"], rows["catch_up.source"]
    # Beside each other: the replay started before the catch-up ended, and the catch-up went on
    # until the replay was done (the target kept up with the source for the whole window).
    assert replay["started"] < catch_up["finished"] and replay["finished"] <= catch_up["finished"]
    caught = json.loads(catch_up["result_json"])
    assert caught["changes"] > 0 and caught["frozen"] is True
    result = json.loads(replay["result_json"])
    agg = result["report"]["aggregate"]
    assert result["failures"] == [] and agg["queries"] == 300 and agg["overlap"] >= 0.8
    assert agg["error_rate_source"] == 0.0 and agg["error_rate_target"] == 0.0
    assert agg["latency_source"]["p95"] > 0 and agg["latency_target"]["p95"] > 0 and agg["qps_target"] > 0
    assert view_table(pg_db, "docs_live") == "docs_v2"
    print(f"parallel-run beside catch-up: {agg['queries']} queries in {result['seconds']}s, overlap {agg['overlap']}, "
          f"p95 {agg['latency_source']['p95']} / {agg['latency_target']['p95']} ms, "
          f"{caught['changes']} changes caught up, writer {ops}")
    md = render_markdown(result["report"], title=result["title"], failures=result["failures"])
    assert "## Parallel run: pgvector:docs → pgvector:docs_v2" in md and "**Gate: passed**" in md
    assert "| latency p95 (ms) |" in md
    assert any(e.get("result", {}).get("title", "").startswith("Parallel run")
               for e in audit(tmp_path / "state.db", "action_done"))


def test_a_poor_target_index_fails_the_gate_and_nothing_switches(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 3000, DIM)
    exact_source(pg_db)
    write_log(tmp_path / "queries.jsonl")
    path = spec(tmp_path, index="{type: ivfflat, lists: 100}",
                strategy="{type: parallel-run, batch_size: 1000, concurrency: 2, replay: {file: queries.jsonl, "
                         "queries: 50, exact: true}, gate: {min_overlap: 0.9, min_recall: 0.9}}")
    r = vecmig("apply", str(path), "--auto-approve", env=env_for(pg_db))
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr.replace("\n", "")
    assert "parallel-run gate failed: overlap@10" in err and "ivfflat" in err and "probes" in err
    assert "nothing was switched" in err
    assert view_table(pg_db, "docs_live") is None
    row = actions(tmp_path / "state.db")["replay.queries"]
    assert row["status"] == "failed"
    result = json.loads(row["result_json"])
    agg = result["report"]["aggregate"]
    assert agg["recall_source"] == 1.0 and agg["recall_target"] < 0.9 and result["failures"]
    print(f"poor ivfflat target: overlap {agg['overlap']}, recall {agg['recall_target']}; {result['failures'][0]}")


def test_watch_passes_then_switches_back_when_the_index_degrades(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 2000, DIM)
    exact_source(pg_db)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")  # readers are on the old table
    path = spec(tmp_path, strategy="{type: blue-green, batch_size: 1000, concurrency: 2}",
                extra="rollback_on: {min_overlap: 0.9, max_error_rate: 0, queries: {sample: 30}, interval: 30s}\n")
    env = env_for(pg_db)
    bad = vecmig("watch", str(path), "--for", "soon", env=env)
    assert bad.returncode == 1 and "--for 'soon' is not a duration — write e.g. 30s, 15m or 1h" in bad.stderr
    nothing = vecmig("watch", str(path), "--for", "2s", env=env)
    assert nothing.returncode == 1 and "nothing to watch: this migration was never applied" in nothing.stderr
    r = vecmig("apply", str(path), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert view_table(pg_db, "docs_live") == "docs_v2"
    healthy = vecmig("watch", str(path), "--for", "2s", "--interval", "0.5s", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "round 1: 30 queries · overlap@10 1.000" in healthy.stdout and "Watch passed" in healthy.stdout
    assert view_table(pg_db, "docs_live") == "docs_v2"
    # After the cutover the new table's index is swapped for a poor one (many lists, probes 1).
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE INDEX poor_ivf ON docs_v2 USING ivfflat (embedding vector_cosine_ops) "
                     "WITH (lists = 100)")
        conn.execute("ANALYZE docs_v2")
    fired = vecmig("watch", str(path), "--for", "60s", "--interval", "0.5s", env=env)
    assert fired.returncode == 3, fired.stdout + fired.stderr
    assert "TRIGGERED: overlap" in fired.stdout
    assert "rollback triggered in watch round 1: overlap" in fired.stderr.replace("\n", " ")
    assert view_table(pg_db, "docs_live") == "docs"  # readers are back on the old table
    (event,) = audit(tmp_path / "state.db", "rollback_triggered")
    assert event["trigger"] == "min_overlap" and event["threshold"] == 0.9 and event["value"] < 0.9
    assert len(audit(tmp_path / "state.db", "watch_round")) >= 2
    with psycopg.connect(pg_db) as conn:  # only the switch went back: the data stayed
        assert conn.execute("SELECT count(*) FROM docs_v2").fetchone()[0] == 2000
    again = vecmig("watch", str(path), "--for", "2s", env=env)
    assert again.returncode == 1 and "no cutover of this migration is live" in again.stderr
    verify = vecmig("state", "verify", str(path), env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_ctrl_c_during_the_replay_stops_it_and_the_next_apply_replays_it_whole(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 500, DIM)
    exact_source(pg_db)
    write_log(tmp_path / "queries.jsonl", n=5)
    path = spec(tmp_path, strategy="{type: parallel-run, batch_size: 500, concurrency: 2, replay: {file: "
                                   "queries.jsonl, duration: 10m, concurrency: 2, rate: 50}, gate: {min_overlap: 0.9}}")
    env = env_for(pg_db)
    proc = spawn("apply", str(path), "--auto-approve", env=env)
    db = tmp_path / "state.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and actions(db).get("replay.queries", {}).get("status") == "running":
            break
        time.sleep(0.1)
    time.sleep(1.0)  # some queries compared
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    # The replay and the catch-up beside it both stopped after what they had in flight.
    assert "interrupted: every action in flight finished its batch" in err.replace("\n", " ")
    rows = actions(db)
    assert rows["replay.queries"]["status"] == "running" and rows["replay.queries"]["error"] == "interrupted"
    assert view_table(pg_db, "docs_live") is None  # nothing switched
    plan = vecmig("plan", str(path), env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "resuming round 1" in plan.stdout and "replay.queries  10m" in plan.stdout
    assert "replays it again from the start" in plan.stdout.replace("\n", " ")
    back = vecmig("rollback", str(path), "--auto-approve", env=env)
    assert back.returncode == 0, back.stdout + back.stderr
