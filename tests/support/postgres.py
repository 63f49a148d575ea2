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
        return PgServer(dsn=embedded.acquire(data), path=data)


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
