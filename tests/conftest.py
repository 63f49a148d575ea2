"""Session-wide PostgreSQL (pgserver: PostgreSQL 16 + pgvector), started by the tests themselves.

Fixtures:

* ``pg`` (session): one embedded server for the whole run; ``pg.dsn`` is a URI for its
  ``postgres`` database, ``pg.url(dbname)`` one for any other database, ``pg.path`` its
  data directory.
* ``pg_db`` (function): a fresh, empty database per test (no extensions); yields its DSN
  and drops it afterwards with ``WITH (FORCE)``.

Autouse: ``_no_internal_errors`` fails any test in which a CLI run (``tests/cli_utils.py``)
printed "internal error" or a traceback without ``--debug``: no input may ever cause one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests import cli_utils


@dataclass(frozen=True)
class PgServer:
    dsn: str
    path: Path

    def url(self, dbname: str) -> str:
        parts = urlsplit(self.dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))


def _server_tmpdir(prefix: str) -> Path:
    """A short directory under /tmp the ``pgserver`` system user can traverse.

    As root, pgserver runs postgres as an unprivileged user; pytest's tmp_path_factory
    dirs are 0700 root-owned (and deep enough to threaten the 107-byte unix socket limit).
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    return base


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    start = len(cli_utils.OUTPUTS)
    yield
    found = cli_utils.internal_failures(cli_utils.OUTPUTS[start:])
    del cli_utils.OUTPUTS[start:]  # keep memory flat over a long session
    if found:
        pytest.fail("the CLI must never print an internal error or a traceback:\n" + "\n".join(found),
                    pytrace=False)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    from vecmig.providers.pgvector import embedded

    base = _server_tmpdir("vecmig-pg-")
    data = base / "data"
    uri = embedded.acquire(data)
    try:
        yield PgServer(dsn=uri, path=data)
    finally:
        embedded.release(data)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_db(pg: PgServer) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg.url(name)
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def server_tmpdir() -> Iterator[Path]:
    """A fresh directory usable as an embedded server's parent (see ``_server_tmpdir``)."""
    base = _server_tmpdir("vecmig-emb-")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
