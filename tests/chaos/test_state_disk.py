"""A full disk or a read-only state file: one clear error, the target untouched beyond the last checkpoint."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.chaos.storm import progress
from tests.support.cli import count, spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec

BATCH = 100
CONCURRENCY = 2


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=False)


def spec_for(tmp: Path, state: Path) -> Path:
    return write_spec(tmp, f"""
        version: 1
        name: disk
        state: {{path: {state}}}
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_v2,
                 fields: {{id: id, vector: embedding, text: body}}, create: {{index: {{type: none}}}}}}
        strategy: {{type: big-bang, batch_size: {BATCH}, concurrency: {CONCURRENCY}, shard_size: 4000}}
        """)


def interrupt_midway(spec: Path, env: dict[str, str], db: Path) -> None:
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    deadline = time.monotonic() + 60
    while progress(db) < 2000 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def checkpointed(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return int(c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()[0])


def assert_one_clear_line(r: subprocess.CompletedProcess[str], *words: str) -> None:
    print(f"\n{r.stderr.strip()}")
    assert r.returncode == 1, r.stdout + r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, r.stderr
    assert all(w in line for w in words), line


def test_disk_full_under_state(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 12_000, 32)
    env = env_for(pg_db)
    with tiny_disk(tmp_path / "disk") as disk:
        db = disk / "disk.db"
        spec = spec_for(tmp_path, db)
        interrupt_midway(spec, env, db)
        before = count(pg_db, "docs_v2")
        assert before == checkpointed(db)
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        r = vecmig("apply", str(spec), "--auto-approve", env=env)
        assert_one_clear_line(r, "state store", "disk")
        # At most the batches acknowledged in flight before the state refused its checkpoint.
        assert count(pg_db, "docs_v2") <= checkpointed(db) + BATCH * CONCURRENCY
        filler.unlink()
        r = vecmig("apply", str(spec), "--auto-approve", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")


def test_read_only_state_file(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 12_000, 32)
    env = env_for(pg_db)
    state_dir = tmp_path / "state"
    db = state_dir / "disk.db"
    spec = spec_for(tmp_path, db)
    interrupt_midway(spec, env, db)
    before = count(pg_db, "docs_v2")
    files = [p for p in state_dir.iterdir()]
    with immutable(state_dir, *files):
        r = vecmig("apply", str(spec), "--auto-approve", env=env)
        assert_one_clear_line(r, "state store", "writable")
        assert count(pg_db, "docs_v2") == before, "nothing may be written when the state cannot record it"
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")
