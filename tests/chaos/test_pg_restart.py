"""PostgreSQL stopped and restarted in the middle of an apply: nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.chaos.storm import progress
from tests.support.cli import spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import write_spec
from vecmig.providers.pgvector import embedded


def postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().splitlines()[0])


def restart(data: Path, down_for: float) -> None:
    import pgserver

    os.kill(postmaster_pid(data), signal.SIGINT)  # fast shutdown: clients are cut off
    deadline = time.monotonic() + 30
    while embedded.is_running(data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not embedded.is_running(data)
    time.sleep(down_for)
    server = pgserver.get_server(data, cleanup_mode="stop")
    with server._lock:
        server.ensure_postgres_running()


def test_postgres_restart_mid_apply(server_tmpdir: Path, tmp_path: Path) -> None:
    data = server_tmpdir / "pg"
    dsn = embedded.acquire(data)
    try:
        make_docs_table(dsn, "docs", 20_000, 32, seed=11)
        spec = write_spec(tmp_path, """
            version: 1
            name: restart
            source: {provider: pgvector, connection: {dsn: "${env:DSN}"}, collection: docs,
                     fields: {id: id, vector: embedding, text: body}}
            target: {provider: pgvector, connection: {dsn: "${env:DSN}"}, collection: docs_v2,
                     fields: {id: id, vector: embedding, text: body}, create: {index: {type: none}}}
            strategy: {type: big-bang, batch_size: 100, concurrency: 2, shard_size: 5000}
            """)
        env = {"DSN": dsn}
        db = tmp_path / ".vecmig" / "restart.db"
        proc = spawn("apply", str(spec), "--auto-approve", env=env)
        deadline = time.monotonic() + 60
        while progress(db) < 3000 and time.monotonic() < deadline:
            time.sleep(0.005)
        restart(data, down_for=1.5)
        out, err = proc.communicate(timeout=180)
        print(f"\napply across a PostgreSQL restart: exit {proc.returncode}; {err.strip()[:200]}")
        # Either it waited and continued, or it failed with one clear line.
        assert proc.returncode in (0, 1), err
        assert "Traceback" not in err
        if proc.returncode == 1:
            assert len(err.strip().splitlines()) == 1, err
        else:
            assert "retrying" in out
        r = vecmig("apply", str(spec), "--auto-approve", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert table_rows(dsn, "docs") == table_rows(dsn, "docs_v2")
    finally:
        embedded.release(data)
