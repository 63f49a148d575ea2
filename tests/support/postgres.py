"""The one embedded PostgreSQL (pgserver: PostgreSQL 16 + pgvector) a test process starts.

The ``pg`` fixture (``tests/conftest.py``) and the contract suite's pgvector store
(``tests/contract/stores/pgvector.py``, which gets no fixtures) both take it from here, so a
session starts one server however many of them ask. Each :func:`acquire` is paired with a
:func:`release`; the last release stops the server and removes its directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class PgServer:
    dsn: str
    path: Path

    def url(self, dbname: str) -> str:
        parts = urlsplit(self.dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))


def server_tmpdir(prefix: str) -> Path:
    """A short directory under /tmp the ``pgserver`` system user can traverse.

    As root, pgserver runs postgres as an unprivileged user; pytest's tmp_path_factory
    dirs are 0700 root-owned (and deep enough to threaten the 107-byte unix socket limit).
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    return base


_lock = threading.Lock()
_base: Path | None = None


def acquire() -> PgServer:
    """The process's server, started on first use (a reference on it: pair with :func:`release`)."""
    from vecmig.providers.pgvector import embedded

    global _base
    with _lock:
        if _base is None:
            _base = server_tmpdir("vecmig-pg-")
        data = _base / "data"
        first = embedded.references(data) == 0
        dsn = embedded.acquire(data)
        if first:
            _no_fsync(dsn)
        return PgServer(dsn=dsn, path=data)


def _no_fsync(dsn: str) -> None:
    """The shared test server skips fsync: a commit waited ~6 ms for the disk, a CREATE DATABASE
    twice as long. What the tests prove is unchanged: without fsync every commit still reaches the
    operating system before the client hears of it, so a killed client or a killed server loses
    nothing (only a machine crash would). The restart tests start servers of their own, as users
    run them."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")


def release() -> None:
    """Give back one reference; the last one stops the server and removes its directory."""
    from vecmig.providers.pgvector import embedded

    global _base
    with _lock:
        if _base is None:
            return
        data = _base / "data"
        embedded.release(data)
        if embedded.references(data) == 0:
            shutil.rmtree(_base, ignore_errors=True)
            _base = None
