"""Session-wide PostgreSQL (pgserver: PostgreSQL 16 + pgvector), started by the tests themselves.

Fixtures:

* ``pg`` (session): one embedded server for the whole run; ``pg.dsn`` is a URI for its
  ``postgres`` database, ``pg.url(dbname)`` one for any other database, ``pg.path`` its
  data directory.
* ``pg_db`` (function): a fresh, empty database per test (no extensions); yields its DSN
  and drops it afterwards with ``WITH (FORCE)``.
* ``pinecone_server`` (session) and ``pinecone_srv`` (function, reset around the test): the local
  Pinecone server in a child process (``tests/support/pinecone.py``), spawned once.

Both servers come from ``tests/support`` (``postgres.acquire``, ``pinecone.acquire``), where the
contract suite's stores, which get no fixtures, take the same ones.

Autouse: ``_no_internal_errors`` fails any test in which a CLI run (``tests/support/cli.py``)
printed "internal error" or a traceback without ``--debug``: no input may ever cause one.

Tiers: :func:`pytest_collection_modifyitems` gives every test one tier marker, so a new test
is tiered without anyone remembering to (an explicit tier marker on a test wins):

* ``chaos`` — under ``tests/chaos/``;
* ``unit`` — under ``tests/unit/``;
* ``e2e`` — its module runs the CLI in a subprocess (imports ``vecmig`` or ``spawn`` from
  ``tests.support.cli``, or is listed in ``E2E_MODULES``), with or without a server;
* ``integration`` — uses the PostgreSQL fixtures (``pg``, ``pg_db``, ``server_tmpdir``) or the
  local Pinecone server (``tests.pinecone_local``) in-process;
* ``unit`` — everything else: in-process, no server, no subprocess.

Suite time: under xdist the files are handed out longest first, from the checked-in table
``tests/durations.json`` (``tests/support/durations.py``; ``make durations`` refreshes it), and
before any test runs the repository's own modules are byte-compiled once: every ``vecmig``
subprocess would otherwise compile the whole engine from source again where
``PYTHONDONTWRITEBYTECODE`` is set (Python still reads bytecode that is there).
"""

from __future__ import annotations

import compileall
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support import cli as cli_utils
from tests.support import durations, postgres
from tests.support.pinecone import pinecone_server, pinecone_srv  # noqa: F401 - fixtures for every module
from tests.support.postgres import PgServer

TIERS = ("unit", "integration", "e2e", "chaos")
SERVER_FIXTURES = frozenset({"pg", "pg_db", "server_tmpdir", "pinecone_server", "pinecone_srv"})
# Modules that run the CLI in a way the rule below cannot see (a pytest child that runs it).
E2E_MODULES = frozenset({"test_no_internal_errors.py"})


def _tier(item: pytest.Item) -> str:
    path = Path(str(item.path))
    here = Path(__file__).parent
    # A test outside tests/ (an inner pytest run in a temporary folder) is tiered by its name.
    parts = path.relative_to(here).parts if path.is_relative_to(here) else (path.name,)
    if parts[0] == "chaos":
        return "chaos"
    if parts[0] == "unit":
        return "unit"
    module = vars(getattr(item, "module", None) or object())
    if parts[-1] in E2E_MODULES or module.get("vecmig") is cli_utils.vecmig or module.get("spawn") is cli_utils.spawn:
        return "e2e"
    pinecone_local = any(str(getattr(v, "__module__", "")).startswith("tests.pinecone_local") for v in module.values())
    if pinecone_local or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def pytest_configure(config: pytest.Config) -> None:
    # pyproject registers the tiers too; this covers a pytest run rooted elsewhere that loads
    # this conftest (the guard's self-test runs one in a temporary folder).
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: test tier (assigned by tests/conftest.py)")
    if hasattr(config, "workerinput"):  # an xdist worker: its collection is what gets scheduled
        config.pluginmanager.register(LongestFilesFirst(), "vecmig-longest-files-first")
    else:  # once, in the process that starts the workers
        for folder in ("engine", "providers", "state", "schemas", "tests"):
            compileall.compile_dir(Path(__file__).parents[1] / folder, quiet=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))


class LongestFilesFirst:
    """Under xdist (``--dist loadfile --no-loadscope-reorder``) the workers pull whole files in
    collection order: this puts the longest first, after pytest's own reordering (trylast), and
    keeps the order of the tests within a file."""

    def __init__(self) -> None:
        self.table = durations.load()
        self.root = Path(__file__).parents[1]

    def seconds(self, item: pytest.Item) -> float:
        path = Path(str(item.path))
        key = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.name
        return self.table.get(key, float("inf"))  # unknown: maybe long, and short costs nothing first

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=lambda item: -self.seconds(item))  # stable: a file's own order is kept


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
    server = postgres.acquire()  # shared with the contract suite's pgvector store
    try:
        yield server
    finally:
        postgres.release()


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
    """A fresh directory usable as an embedded server's parent (see ``postgres.server_tmpdir``)."""
    base = postgres.server_tmpdir("vecmig-emb-")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
