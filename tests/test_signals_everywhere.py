"""Stop signals outside apply's graceful path: rollback, a wait for the lock, a second signal
during apply. Each ends with exit 128 + the signal's number and a line saying so (never a
silent 130, which Typer makes of any KeyboardInterrupt), the lock free, no run left
"running", and the same command run again finishes the job (every record compared).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.cli_utils import spawn, table_rows, vecmig
from tests.helpers import make_docs_table
from tests.test_e2e_pgvector import big_bang_spec, env_for
from tests.test_kill_resume import progress


def _state(db: Path) -> tuple[int, list[tuple[str, str]]]:
    with sqlite3.connect(db) as c:
        locks = c.execute("SELECT count(*) FROM locks").fetchone()[0]
        runs = c.execute("SELECT operation, status FROM runs ORDER BY id").fetchall()
    return locks, runs


def _wait_for(cond, proc, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"vecmig ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _running(db: Path, operation: str) -> bool:
    try:
        with sqlite3.connect(db, timeout=0.05) as c:
            row = c.execute("SELECT status FROM runs WHERE operation = ? ORDER BY id DESC LIMIT 1",
                            (operation,)).fetchone()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == "running"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_rollback_exits_128_plus_signum_and_rollback_again_restores(
        pg_db: str, tmp_path: Path, signum: int) -> None:
    make_docs_table(pg_db, "docs", 20_000, 32, seed=1)
    make_docs_table(pg_db, "shared", 20_000, 32, seed=2, start=5000)  # a target that held data
    before = table_rows(pg_db, "shared")
    spec = big_bang_spec(tmp_path, target="shared", batch=500, shard=5000)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "e2e.db"
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    proc = spawn("rollback", str(spec), "--auto-approve", env=env)
    _wait_for(lambda: _running(db, "rollback"), proc, "the rollback run started")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    if proc.returncode != 0:  # it may have finished just before the signal
        assert proc.returncode == 128 + signum, err
        assert f"Interrupted by {name}" in err, err
    locks, runs = _state(db)
    assert locks == 0, "the lock must be released"
    assert runs[-1][0] == "rollback" and runs[-1][1] in ("interrupted", "succeeded"), runs
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == before
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
    assert all(status != "running" for _, status in _state(db)[1])


def test_sigterm_while_waiting_for_the_lock_leaves_the_holder_alone(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 300, 8, seed=1)
    spec = big_bang_spec(tmp_path, batch=100)
    env = env_for(pg_db)
    assert vecmig("init", str(spec), env=env).returncode == 0
    db = tmp_path / ".vecmig" / "e2e.db"
    # A live holder: this test process, on this host.
    from vecmig.state.identity import actor, now

    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO locks (name, lock_id, user, host, pid, operation, created, heartbeat) "
                  "VALUES ('migration', 'held-by-test', 'tester', ?, ?, 'apply', ?, ?)",
                  (actor()["host"], os.getpid(), now(), now()))
    proc = spawn("apply", str(spec), "--auto-approve", "--lock-timeout", "60", env=env)
    time.sleep(3)  # planned, now waiting for the lock
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Interrupted by SIGTERM" in err, err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT lock_id FROM locks").fetchall() == [("held-by-test",)]
        assert c.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        c.execute("DELETE FROM locks")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")


def test_a_second_sigterm_during_apply_stops_now_and_still_closes_the_run(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 30_000, 32, seed=4)
    spec = big_bang_spec(tmp_path, batch=100, shard=5000)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "e2e.db"
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    _wait_for(lambda: progress(db)[0] >= 1000, proc, "1,000 records were checkpointed")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err, err
    locks, runs = _state(db)
    assert locks == 0
    assert runs[-1] == ("apply", "interrupted"), runs
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0


def test_quickstart_completes_a_seeding_a_signal_stopped(server_tmpdir: Path) -> None:
    """A SIGTERM while quickstart seeds leaves part of the sample in the source; the next
    quickstart must seed the rest, not migrate the part (it said "already holds N records")."""
    from tests.test_examples import copy_plans
    from vecmig import sample
    from vecmig.providers import provider_class
    from vecmig.providers.base import CollectionSchema
    from vecmig.spec_loader import load_spec

    plans = copy_plans(server_tmpdir)
    spec_path = plans / "quickstart.yaml"
    spec = load_spec(spec_path)
    # What the stopped seeding left: the table and the first 1,000 of 3,000 sample records.
    with provider_class("pgvector")(spec.source) as src:
        src.create_collection(CollectionSchema(dimension=384, metric="cosine", id_type="int",
                                               metadata=dict(sample.METADATA_TYPES), text=True))
        src.upsert(next(iter(sample.batches(3000, 384, seed=7))))
    r = vecmig("quickstart", str(spec_path), "--records", "3000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "seeding the rest" in r.stdout and "3,000 records match" in r.stdout, r.stdout
    with provider_class("pgvector")(spec.source) as src:
        assert src.inventory().count == 3000
    r = vecmig("plan", str(spec_path), "--detailed-exitcode")
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
