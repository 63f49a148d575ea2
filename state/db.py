"""What both halves of the state store stand on: the database engine, its SQLite settings, and
the translation of every database error into one clear ``StateError``.

``StoreBase`` holds the engine, the migration's name, where the store is (for messages, never
a password) and the redactor; ``StoreReader`` (``reader.py``) and ``StoreWriter``
(``writer.py``) build on it, and ``StateStore`` (``store.py``) is both.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.redact import Redactor


def _pg_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_location(url: str) -> str:
    """Where a URL points, for messages: never its password or query (which may hold secrets)."""
    try:
        u = make_url(_pg_url(url))
    except Exception:  # an unparsable URL: say nothing that could be a secret
        return "the configured state URL"
    host = f"{u.host}:{u.port}" if u.port else (u.host or "")
    return f"{u.get_backend_name()}://{host}/{u.database or ''}"


# How to get out of a state store that is damaged, tampered with or not vecmig's: one hint for all.
DAMAGED_HINT = ("restore the state store from a backup and check it with `vecmig state verify SPEC` (or move "
                "it aside to start over: a new store no longer knows what earlier applies did)")


class _StateDbError(StateError):
    """A database error of the state store, translated where SQLAlchemy raises it (see
    ``StoreBase._translate_db_error``); ``detail`` is the driver's message, redacted."""

    def __init__(self, message: str, *, detail: str, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.detail = detail


# Driver messages that mean the store itself is damaged, truncated, edited or not a vecmig store
# (rather than a busy, full or read-only one, which tx() and open() word themselves).
_DAMAGED_WORDS = ("not a database", "malformed", "no such table", "no such column", "has no column",
                  "datatype mismatch", "does not exist", "corrupt", "undefinedtable", "undefinedcolumn")


def _is_damage(e: BaseException) -> bool:
    msg = str(e).lower()
    return any(w in msg for w in _DAMAGED_WORDS)


_OUR_TABLES = ", ".join(f"'{tb.name}'" for tb in t.metadata.sorted_tables)

_SQLITE_TIMEOUT = 30.0  # seconds a writer waits for another process's write lock (busy timeout)


def _sqlite_pragmas(dbapi_conn: Any) -> None:
    # WAL + NORMAL survives a killed process (only power loss could lose the last commit),
    # and lets `state show` read while an apply writes.
    cur = dbapi_conn.cursor()
    # The journal mode is written into the file: switch only a vecmig store (or a new, empty file),
    # never a database of another application that open() is about to refuse.
    if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and not cur.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN ({_OUR_TABLES})").fetchone()[0]:
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _engine_for(path: Path | None, url: str | None) -> Engine:
    if url:
        try:
            parsed = make_url(_pg_url(url))
        except Exception:  # never echoed: the URL holds the password
            raise StateError(
                "the state URL (state.url) cannot be parsed as a database URL",
                hint="percent-encode the characters / @ : # ? % in its user name and password "
                     "(/ as %2F, @ as %40, : as %3A, # as %23, ? as %3F, % as %25)") from None
        return create_engine(parsed, pool_pre_ping=True)
    assert path is not None
    engine = create_engine(f"sqlite:///{path}",
                           connect_args={"timeout": _SQLITE_TIMEOUT, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        _sqlite_pragmas(dbapi_conn)

    # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN instead,
    # so two writers queue on busy_timeout rather than fail half-way.
    @event.listens_for(engine, "connect")
    def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


class StoreBase:
    """The engine and the identity of one migration's store, and its database errors."""

    def __init__(self, engine: Engine, migration: str, location: str, redactor: Redactor) -> None:
        self.engine = engine
        self.migration = migration
        self.location = location
        self.redact = redactor
        # Every database error of this store becomes a StateError where SQLAlchemy raises it:
        # one place, so no command shows a driver's exception as an internal error.
        event.listen(engine, "handle_error", self._translate_db_error)

    def _translate_db_error(self, ctx: Any) -> None:
        e = ctx.original_exception
        if getattr(ctx, "is_exit_exception", False) or not isinstance(e, Exception):
            return  # SIGINT/SIGTERM raised mid-statement: an interruption to unwind, not damage
        if isinstance(ctx.sqlalchemy_exception, IntegrityError) or isinstance(e, sqlite3.IntegrityError):
            return  # a lost race (the lock) or tampering: tx() decides which
        raise self._db_error(e) from ctx.sqlalchemy_exception

    def _db_error(self, e: BaseException) -> StateError:
        detail = self.redact(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        operational = isinstance(e, sqlite3.OperationalError) or type(e).__name__ in ("OperationalError",
                                                                                       "InterfaceError")
        if _is_damage(e) or not operational:
            return _StateDbError(f"the state store {self.location} is damaged or not a vecmig state store: {detail}",
                                 detail=detail, hint=DAMAGED_HINT)
        return _StateDbError(f"cannot use the state store {self.location}: {detail}", detail=detail,
                             hint="check that the state file is readable and writable and the disk is not full"
                             if not self.is_postgres else
                             "check the state URL, that the database exists and that it accepts connections")

    def damaged(self, what: str) -> StateError:
        return StateError(f"the state store {self.location} is damaged or not a vecmig state store: {what}",
                          hint=DAMAGED_HINT)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"
