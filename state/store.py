"""The state store: one per migration, SQLite by default, PostgreSQL for teams.

Every write that changes what happened is made in one transaction together with its audit
event (Alembic's rule: state is written in the step's own transaction), so a SIGKILL can
never leave an action marked done without its record, nor a record without its action.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from vecmig import __version__, safe_paths
from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.identity import actor, now
from vecmig.state.redact import Redactor
from vecmig.state.verify import GENESIS, check_chain, check_records, event_hash, id_ranges, image_digest

__all__ = ["GENESIS", "StateStore", "event_hash", "safe_location"]

# Any constant works; it only has to be the same for every vecmig process sharing a database.
_PG_BOOTSTRAP_LOCK = 0x7665636D6967  # "vecmig"


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
    ``StateStore._translate_db_error``); ``detail`` is the driver's message, redacted."""

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


# The storage classes SQLite may hold in a column of each of the schema's types.
_SQLITE_TYPES = {"Integer": "'integer', 'null'", "Float": "'integer', 'real', 'null'",
                 "Boolean": "'integer', 'null'", "String": "'text', 'null'", "Text": "'text', 'null'",
                 "LargeBinary": "'blob', 'null'"}

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


# The checkpoint as one statement: the first checkpoint of an action inserts its cursor row,
# every later one replaces the cursor and checksum and adds its batch to the totals.
_CHECKPOINT_SQL = (
    'INSERT INTO cursors ("round", action_id, cursor_json, records_done, bytes_done, checksum_json, updated) '
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    'ON CONFLICT ("round", action_id) DO UPDATE SET cursor_json = excluded.cursor_json, '
    "records_done = cursors.records_done + excluded.records_done, "
    "bytes_done = cursors.bytes_done + excluded.bytes_done, "
    "checksum_json = excluded.checksum_json, updated = excluded.updated"
)


def _checkpoint_stmt(dialect_insert: Any) -> Any:
    """``_CHECKPOINT_SQL`` in SQLAlchemy, built once (bound parameters named after the columns)."""
    stmt = dialect_insert(t.cursors).values({c.name: bindparam(c.name) for c in t.cursors.c})
    return stmt.on_conflict_do_update(
        index_elements=[t.cursors.c.round, t.cursors.c.action_id],
        set_={"cursor_json": stmt.excluded.cursor_json,
              "records_done": t.cursors.c.records_done + stmt.excluded.records_done,
              "bytes_done": t.cursors.c.bytes_done + stmt.excluded.bytes_done,
              "checksum_json": stmt.excluded.checksum_json,
              "updated": stmt.excluded.updated})


_CHECKPOINT_STMT = {"sqlite": _checkpoint_stmt(sqlite_dialect.insert),
                    "postgresql": _checkpoint_stmt(pg_dialect.insert)}


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


def _inserted_id(result: CursorResult[Any]) -> int:
    """The id of the one row an ``INSERT ... VALUES`` added (SQLAlchemy types the key as optional:
    it is None only for statements that are not a single-row insert)."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class StateStore:
    def __init__(self, engine: Engine, migration: str, location: str, redactor: Redactor) -> None:
        self.engine = engine
        self.migration = migration
        self.location = location
        self.redact = redactor
        # Serialises this process's writers: tx() and the checkpoint connection below.
        self._write_lock = threading.RLock()
        # SQLite: checkpoints go through one dedicated sqlite3 connection (opened on first
        # use, guarded by _write_lock) instead of a pooled SQLAlchemy transaction.
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        # (The file is the engine's: SQLAlchemy's pysqlite dialect also makes the path absolute.)
        self._sqlite_path = os.path.abspath(db) if db and db != ":memory:" and not db.startswith("file:") else None
        self._ckpt_conn: sqlite3.Connection | None = None
        self._check_lock = True
        # Every database error of this store becomes a StateError where SQLAlchemy raises it:
        # one place, so no command shows a driver's exception as an internal error.
        event.listen(engine, "handle_error", self._translate_db_error)

    def _translate_db_error(self, ctx: Any) -> None:
        e = ctx.original_exception
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

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        migration: str,
        path: Path | None,
        url: str | None,
        *,
        create: bool,
        secrets: frozenset[str] = frozenset(),
        redactor: Redactor | None = None,
        check_lock: bool = True,
    ) -> StateStore | None:
        """Open the store; with ``create=False`` a missing store is ``None`` (plan is read-only).

        A store of an older schema version is refused with a hint to run ``vecmig state
        upgrade``: upgrades are explicit and backed up first, never done behind an apply. A store
        that is damaged, tampered with (tables, columns, meta rows, stored JSON, the lock row) or
        not a vecmig store at all is refused in one line before anything reads or writes it.
        """
        location = safe_location(url) if url else str(path)
        if path is not None and not url:
            safe_paths.ensure_file(path, "state file", error=StateError,
                                   hint="point state.path at a regular file (or a new path); "
                                   + safe_paths.REGULAR_ONLY)
        redact = redactor or Redactor(secrets if not url else {*secrets, url})
        if path is not None and not url:
            if path.exists():
                if path.stat().st_size == 0:
                    # vecmig creates a store whole (see _create_sqlite), so an empty file is one
                    # that lost its contents: never treat it as "never applied".
                    raise StateError(f"the state store {location} is damaged or not a vecmig state store: "
                                     "the file is empty (0 bytes)", hint=DAMAGED_HINT)
            elif not create:
                return None
            else:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StateError(f"cannot create the state directory {path.parent}: {e.strerror}") from e
                cls._create_sqlite(migration, path, redact)
        try:
            engine = _engine_for(path, url)
            store = cls(engine, migration, location, redact)
            store._check_lock = check_lock  # force-unlock opens a store whose lock row is not vecmig's
            if create and url:
                store._create()
            if not store._initialised():
                if not create:
                    return None
                raise store.damaged("its tables could not be created")
        except _StateDbError as e:
            raise StateError(
                f"cannot open the state store {location}: {e.detail}" if not e.message.startswith("the state store")
                else e.message,
                hint=e.hint if e.message.startswith("the state store") else
                "check that the file is writable and the disk is not full" if not url
                else "check the state URL, that the database exists and that it accepts connections",
            ) from e
        except OperationalError as e:  # raised before the store's translation was in place
            raise StateError(
                f"cannot open the state store {location}: {redact(str(e.orig))}",
                hint="check that the file is writable and the disk is not full" if not url
                else "check the state URL, that the database exists and that it accepts connections",
            ) from e
        return store

    @classmethod
    def _create_sqlite(cls, migration: str, path: Path, redact: Redactor) -> None:
        """Create a new SQLite store whole: built in a temporary file beside ``path`` and linked
        into place only once its tables and first rows are committed, so a kill at any moment
        leaves either no store or a complete one (never an empty or half-made file). Two
        processes creating it at once: the first link wins, the other's file is discarded."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.creating")
        try:
            engine = _engine_for(tmp, None)
            try:
                store = cls(engine, migration, str(path), redact)
                store._create()
                with engine.connect() as c:
                    c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                engine.dispose()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # created meanwhile by another vecmig: use that one
                os.link(tmp, path)
        except OSError as e:
            raise StateError(f"cannot create the state store {path}: {e.strerror}",
                             hint="check that the state directory is writable and the disk is not full") from e
        except _StateDbError as e:
            raise StateError(f"cannot create the state store {path}: {e.detail}",
                             hint="check that the state directory is writable and the disk is not full") from e
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _initialised(self) -> bool:
        """Whether this is an initialised vecmig store (False: none yet); raises if it is damaged,
        another migration's, of another schema version, or not a vecmig store."""
        tables = set(inspect(self.engine).get_table_names())
        ours = {tb.name for tb in t.metadata.sorted_tables}
        if t.meta.name not in tables:
            if tables & ours:
                raise self.damaged(f"its table '{t.meta.name}' is missing")
            if tables and not self.is_postgres:
                raise self.damaged(f"it holds other tables ({', '.join(sorted(tables)[:5])})")
            return False
        rows = self.meta()
        if not rows:
            if tables - {t.meta.name}:
                raise self.damaged("its table 'meta' is empty (schema version, migration, lineage and audit "
                                   "head are gone)")
            return False
        raw_version = rows.get("schema_version", "")
        try:
            version = int(raw_version)
        except ValueError:
            raise self.damaged(f"its schema_version is {raw_version!r}, not a number") from None
        self.check_version(version)
        if rows.get("migration") != self.migration:
            raise StateError(
                f"state store {self.location} belongs to migration '{rows.get('migration')}', "
                f"not '{self.migration}'",
                hint="point `state.path` (or `state.url`) at this migration's own store",
            )
        self._check_shape(tables, rows)
        return True

    def _check_shape(self, tables: set[str], rows: dict[str, str]) -> None:
        """Everything every command relies on is there and readable: each table with its
        columns, the meta rows, the stored JSON, the lock row. (What the values say is the audit
        chain's business: ``state verify``.)"""
        insp = inspect(self.engine)
        for tb in t.metadata.sorted_tables:
            if tb.name not in tables:
                raise self.damaged(f"its table '{tb.name}' is missing")
            have = {col["name"] for col in insp.get_columns(tb.name)}
            missing = [col.name for col in tb.columns if col.name not in have]
            if missing:
                raise self.damaged(f"table '{tb.name}' lacks column(s) {', '.join(missing)}")
        if not rows.get("lineage"):
            raise self.damaged("its meta row 'lineage' is missing")
        try:
            if int(rows.get("serial", "")) < 0:
                raise ValueError
        except ValueError:
            raise self.damaged(f"its meta row 'serial' is {rows.get('serial')!r}, not a count") from None
        head = rows.get(t.AUDIT_HEAD)
        try:
            # (A missing head is for `state verify` to report: "the chain head is missing from meta".)
            parsed = json.loads(head) if head is not None else {"seq": 0, "hash": ""}
            if not (isinstance(parsed, dict) and isinstance(parsed.get("seq"), int)
                    and isinstance(parsed.get("hash"), str)):
                raise ValueError
        except ValueError:
            raise self.damaged(f"its meta row '{t.AUDIT_HEAD}' is {str(head)[:40]!r}, not the audit chain's "
                               "head") from None
        checks = ((t.rounds, ("plan_json",), ("round",)),
                  (t.actions, ("params_json", "result_json"), ("round", "action_id")),
                  (t.cursors, ("cursor_json", "checksum_json"), ("round", "action_id")),
                  (t.resources, ("before_json",), ("id",)))
        with self.engine.connect() as c:
            for tb, cols, keys in checks:
                for r in c.execute(select(*[tb.c[k] for k in keys], *[tb.c[x] for x in cols])).mappings():
                    for col in cols:
                        value = r[col]
                        try:
                            if value is not None:
                                json.loads(value)
                        except (ValueError, TypeError):
                            where = ", ".join(f"{k} {r[k]}" for k in keys)
                            raise self.damaged(f"{tb.name}.{col} of {where} is not JSON") from None
            if not self.is_postgres:  # SQLite stores whatever it is given; PostgreSQL enforces the types
                for tb in t.metadata.sorted_tables:
                    if tb is t.locks:
                        continue  # judged below, with a hint force-unlock can act on
                    for column in tb.columns:
                        allowed = _SQLITE_TYPES.get(type(column.type).__name__)
                        if allowed is None:
                            continue
                        bad = c.execute(text(f'SELECT count(*) FROM "{tb.name}" WHERE typeof("{column.name}") '
                                             f"NOT IN ({allowed})")).scalar_one()
                        if bad:
                            raise self.damaged(f"{tb.name}.{column.name} holds {bad} value(s) of the wrong type")
            lock = c.execute(select(t.locks)).mappings().first()
        if lock is not None and self._check_lock:
            from vecmig.state.identity import parse_time
            try:
                int(lock["pid"])
                parse_time(str(lock["heartbeat"]))
                parse_time(str(lock["created"]))
            except (TypeError, ValueError):
                raise StateError(
                    f"the state store {self.location} holds a lock row that is not vecmig's "
                    f"(lock {lock['lock_id']}: pid {lock['pid']!r}, heartbeat {lock['heartbeat']!r})",
                    hint=f"if no vecmig runs this migration, remove it with `vecmig force-unlock SPEC "
                    f"{lock['lock_id']}`; then run `vecmig state verify SPEC`") from None

    def check_version(self, version: int) -> None:
        if version < t.SCHEMA_VERSION:
            raise StateError(
                f"state store {self.location} has schema version {version}; this vecmig reads {t.SCHEMA_VERSION}",
                hint="run `vecmig state upgrade SPEC` (it backs the store up first)",
            )
        if version > t.SCHEMA_VERSION:
            raise StateError(
                f"state store {self.location} has schema version {version}; this vecmig reads {t.SCHEMA_VERSION}",
                hint="upgrade vecmig, or run the version that wrote it",
            )

    def _create(self) -> None:
        """Create the tables and first rows of a new store — once, even when several processes
        start together. A store that exists is never touched here: a table missing from it was
        removed outside vecmig, and recreating it empty would hide that (``_initialised`` refuses
        it); changing what exists is an upgrade (``state/upgrade.py``)."""
        with self.tx() as c:
            if self.is_postgres:
                # Concurrent CREATE TABLEs collide in PostgreSQL's catalog; serialise bootstrap.
                c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_BOOTSTRAP_LOCK})
            existing = set(inspect(c).get_table_names())
            if existing & {tb.name for tb in t.metadata.sorted_tables}:
                return  # created before (perhaps by another process while we waited): _initialised judges it
            t.metadata.create_all(c)
            for key, value in {
                "schema_version": str(t.SCHEMA_VERSION),
                "migration": self.migration,
                "lineage": str(uuid.uuid4()),
                "serial": "0",
                "created": now(),
                t.AUDIT_HEAD: json.dumps({"seq": 0, "hash": GENESIS}),
            }.items():
                c.execute(insert(t.meta).values(key=key, value=value))
            self.audit(c, "state_created", {"schema_version": t.SCHEMA_VERSION})

    def close(self) -> None:
        with self._write_lock:
            conn, self._ckpt_conn = self._ckpt_conn, None
            if conn is not None:
                conn.close()
        self.engine.dispose()

    def _write_error(self, detail: str) -> StateError:
        return StateError(
            f"cannot write the state store {self.location}: {self.redact(detail)}",
            hint="check free disk space and that the state file is writable",
        )

    @contextlib.contextmanager
    def tx(self, *, conflicts_ok: bool = False) -> Iterator[Connection]:
        """One write transaction. A constraint violation means the store was edited outside
        vecmig (say, rows deleted from ``meta``), except where a caller expects a lost race
        (``conflicts_ok``: the lock's insert)."""
        with self._write_lock:
            try:
                with self.engine.connect() as c:
                    c.execution_options(immediate=True)
                    with c.begin():
                        yield c
            except _StateDbError as e:
                if e.message.startswith("the state store"):
                    raise
                raise self._write_error(e.detail) from e
            except OperationalError as e:
                raise self._write_error(str(e.orig)) from e
            except IntegrityError as e:
                if conflicts_ok:
                    raise
                raise self.damaged(f"a write broke one of its constraints ({self.redact(str(e.orig))})") from e

    # -- meta -----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.engine.connect() as c:
            return dict(c.execute(select(t.meta.c.key, t.meta.c.value)).all())

    @property
    def lineage(self) -> str:
        return self.meta()["lineage"]

    @property
    def serial(self) -> int:
        return int(self.meta()["serial"])

    def bump_serial(self, c: Connection) -> int:
        # FOR UPDATE: on PostgreSQL two writers must not both read N and both write N+1.
        current = int(c.execute(select(t.meta.c.value).where(t.meta.c.key == "serial").with_for_update())
                      .scalar_one())
        c.execute(update(t.meta).where(t.meta.c.key == "serial").values(value=str(current + 1)))
        return current + 1

    # -- audit ----------------------------------------------------------------------------
    def audit(self, c: Connection, event_name: str, data: dict[str, Any]) -> None:
        """Append one hash-chained event inside the caller's transaction.

        The chain head in ``meta`` is read FOR UPDATE and rewritten in the same transaction,
        so concurrent writers on PostgreSQL queue for the next seq instead of colliding, and
        an audit log cut short afterwards no longer matches its head.
        """
        head_row = c.execute(select(t.meta.c.value).where(t.meta.c.key == t.AUDIT_HEAD).with_for_update()).first()
        if head_row is None:
            raise StateError(f"state store {self.location} has no audit chain head",
                             hint="run `vecmig state upgrade SPEC`")
        head = json.loads(head_row[0])
        seq, prev = int(head["seq"]) + 1, str(head["hash"])
        ts = now()
        who = json.dumps(actor(), sort_keys=True)
        # Redacted as a structure, not as JSON text: a secret JSON escapes (a quote, a
        # backslash, non-ASCII) would not match in the text.
        public = self.redact.walk(json.loads(json.dumps({"tool_version": __version__, **data}, default=str)))
        payload = json.dumps(public, sort_keys=True, default=str)
        digest = event_hash(prev, seq, ts, event_name, who, payload)
        c.execute(
            insert(t.audit).values(
                seq=seq, ts=ts, event=event_name, actor_json=who, data_json=payload, prev_hash=prev, hash=digest
            )
        )
        c.execute(update(t.meta).where(t.meta.c.key == t.AUDIT_HEAD)
                  .values(value=json.dumps({"seq": seq, "hash": digest})))

    def audit_event(self, event_name: str, data: dict[str, Any]) -> None:
        """Record one event in its own transaction (e.g. what an apply was authorised to do)."""
        with self.tx() as c:
            self.audit(c, event_name, data)

    def audit_events(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.audit).order_by(t.audit.c.seq)).mappings().all()
        return [dict(r) for r in rows]

    def audit_head(self) -> dict[str, Any] | None:
        raw = self.meta().get(t.AUDIT_HEAD)
        return json.loads(raw) if raw else None

    def verify_chain(self) -> tuple[bool, str]:
        """Recompute the chain and compare its end with the head: (intact?, what was found)."""
        return check_chain(self.audit_events(), self.audit_head())

    def verify_records(self) -> list[str]:
        """Stored checksums and results that no longer match their audit records (empty: all match)."""
        return check_records(self)

    # -- rounds and actions --------------------------------------------------------------
    def rounds(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(t.rounds).order_by(t.rounds.c.round)).mappings()]

    def open_round(self) -> dict[str, Any] | None:
        for r in self.rounds()[::-1]:  # (mypy types reversed() of a list of dicts as Any)
            if r["status"] in ("in_progress", "rolling_back"):
                return r
        return None

    def last_round(self) -> dict[str, Any] | None:
        rs = self.rounds()
        return rs[-1] if rs else None

    def start_round(self, round_no: int, plan_hash: str, spec_hash: str, plan_json: str,
                    actions: list[dict[str, Any]], source_fp: str, target_fp: str) -> None:
        ts = now()
        with self.tx() as c:
            c.execute(insert(t.rounds).values(
                round=round_no, status="in_progress", plan_hash=plan_hash, spec_hash=spec_hash,
                plan_json=plan_json, source_fingerprint=source_fp, target_fingerprint=target_fp,
                created=ts, updated=ts))
            for seq, a in enumerate(actions):
                c.execute(insert(t.actions).values(
                    round=round_no, action_id=a["id"], seq=seq, kind=a["kind"], status="pending",
                    params_json=json.dumps(a, sort_keys=True),
                    est_seconds_low=a["estimate"]["seconds_low"], est_seconds_high=a["estimate"]["seconds_high"],
                    records=0, bytes=0))
            self.bump_serial(c)
            self.audit(c, "round_started", {"round": round_no, "plan_hash": plan_hash, "spec_hash": spec_hash,
                                            "actions": [a["id"] for a in actions]})

    def set_round_status(self, round_no: int, status: str, **fp: str) -> None:
        with self.tx() as c:
            c.execute(update(t.rounds).where(t.rounds.c.round == round_no).values(status=status, updated=now(), **fp))
            self.bump_serial(c)
            self.audit(c, f"round_{status}", {"round": round_no, **fp})

    def actions(self, round_no: int) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.actions).where(t.actions.c.round == round_no).order_by(t.actions.c.seq))
            return [dict(r) for r in rows.mappings()]

    def all_actions(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.actions).order_by(t.actions.c.round, t.actions.c.seq))
            return [dict(r) for r in rows.mappings()]

    def set_action(self, round_no: int, action_id: str, status: str, *, audit_data: dict[str, Any] | None = None,
                   **values: Any) -> None:
        if values.get("error"):
            values["error"] = self.redact(str(values["error"]))
        if status in ("running",):
            values.setdefault("started", now())
        if status in ("done", "failed", "rolled_back"):
            values.setdefault("finished", now())
        with self.tx() as c:
            c.execute(update(t.actions)
                      .where(t.actions.c.round == round_no, t.actions.c.action_id == action_id)
                      .values(status=status, **values))
            extra: dict[str, Any] = {}
            if status == "done":
                # The checkpointed totals (and a shard checksum, when a kind keeps one) go on record.
                cur = c.execute(select(t.cursors.c.records_done, t.cursors.c.bytes_done, t.cursors.c.checksum_json)
                                .where(t.cursors.c.round == round_no, t.cursors.c.action_id == action_id)).first()
                if cur is not None:
                    extra["checkpointed"] = {"records": cur[0], "bytes": cur[1],
                                             "checksum": json.loads(cur[2]) if cur[2] else None}
            self.audit(c, f"action_{status}", {"round": round_no, "action": action_id,
                                               **{k: v for k, v in values.items() if k != "result_json"},
                                               **extra, **(audit_data or {})})

    def reset_action(self, round_no: int, action_id: str, reason: str) -> None:
        """Run an action of an open round again from its start (a shard validation found
        different or missing): its cursor goes, its status returns to pending, and why is
        recorded. Idempotent; one transaction, so a kill leaves either the old or the new state."""
        with self.tx() as c:
            c.execute(t.cursors.delete().where(t.cursors.c.round == round_no, t.cursors.c.action_id == action_id))
            c.execute(update(t.actions)
                      .where(t.actions.c.round == round_no, t.actions.c.action_id == action_id)
                      .values(status="pending", error=self.redact(reason), started=None, finished=None))
            self.bump_serial(c)
            self.audit(c, "action_reset", {"round": round_no, "action": action_id, "reason": reason})

    # -- cursors (the per-batch hot path: one small transaction, no audit) -----------------
    def cursor(self, round_no: int, action_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.cursors).where(t.cursors.c.round == round_no,
                                                    t.cursors.c.action_id == action_id)).mappings().first()
        return dict(row) if row else None

    def checkpoint(self, round_no: int, action_id: str, cursor: Any, records: int, nbytes: int,
                   checksum: dict[str, Any] | None = None) -> None:
        """Called only after the target acknowledged the batch (ARCHITECTURE.md: ack before checkpoint).

        One upsert statement in its own transaction, committed when this returns: the first
        checkpoint of an action creates its cursor row, later ones replace the cursor (and
        checksum) and add ``records``/``nbytes`` to the totals. Safe from many shard threads.
        """
        cj = json.dumps(cursor)
        sj = json.dumps(checksum) if checksum is not None else None
        ts = now()
        if self._sqlite_path is None:
            self._checkpoint_tx(round_no, action_id, cj, records, nbytes, sj, ts)
            return
        with self._write_lock:
            try:
                conn = self._ckpt_conn
                if conn is None:
                    conn = self._ckpt_conn = self._open_checkpoint_conn(self._sqlite_path)
                # Autocommit: the single statement is its own transaction (taking the write
                # lock, waiting up to the busy timeout for another process's writer).
                conn.execute(_CHECKPOINT_SQL, (round_no, action_id, cj, records, nbytes, sj, ts))
            except sqlite3.Error as e:
                # Start afresh next time (a failed write can leave a connection mid-transaction).
                bad, self._ckpt_conn = self._ckpt_conn, None
                if bad is not None:
                    with contextlib.suppress(sqlite3.Error):
                        bad.close()
                if isinstance(e, sqlite3.OperationalError) and not _is_damage(e):  # full disk, read-only, locked
                    raise self._write_error(str(e)) from e
                raise self.damaged(self.redact(str(e))) from e

    @staticmethod
    def _open_checkpoint_conn(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=_SQLITE_TIMEOUT, check_same_thread=False, isolation_level=None)
        try:
            _sqlite_pragmas(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkpoint_tx(self, round_no: int, action_id: str, cj: str, records: int, nbytes: int,
                       sj: str | None, ts: str) -> None:
        """The same upsert through SQLAlchemy, in tx(): PostgreSQL's path (and any SQLite without a file)."""
        stmt = _CHECKPOINT_STMT["postgresql" if self.is_postgres else "sqlite"]
        with self.tx() as c:
            c.execute(stmt, {"round": round_no, "action_id": action_id, "cursor_json": cj, "records_done": records,
                             "bytes_done": nbytes, "checksum_json": sj, "updated": ts})

    def all_cursors(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.cursors).order_by(t.cursors.c.round, t.cursors.c.action_id))
            return [dict(r) for r in rows.mappings()]

    # -- resources: intent journaled before the remote side effect -------------------------
    def journal_intent(self, round_no: int, action_id: str, kind: str, side: str, name: str,
                       before: Any = None) -> int:
        ts = now()
        name = self.redact(name)  # a label, for people: as written, never a resolved ${env:...}
        with self.tx() as c:
            rid = _inserted_id(c.execute(insert(t.resources).values(
                round=round_no, action_id=action_id, kind=kind, side=side, name=name, state="intent",
                before_json=json.dumps(before), created=ts, updated=ts)))
            self.audit(c, "intent", {"round": round_no, "action": action_id, "kind": kind, "side": side,
                                     "name": name, "before": before, "resource": int(rid)})
        return int(rid)

    def journal_state(self, resource_id: int, state: str) -> None:
        with self.tx() as c:
            c.execute(update(t.resources).where(t.resources.c.id == resource_id).values(state=state, updated=now()))
            self.audit(c, f"resource_{state}", {"resource": resource_id})

    def resources(self, round_no: int | None = None) -> list[dict[str, Any]]:
        q = select(t.resources).order_by(t.resources.c.id)
        if round_no is not None:
            q = q.where(t.resources.c.round == round_no)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # -- before-images --------------------------------------------------------------------
    def save_before_images(self, round_no: int, action_id: str, rows: list[tuple[str, bool, bytes | None]]) -> None:
        """Store one batch of images and, in the same transaction, its audit event: the row ids
        it took and a digest of the rows (``verify.image_digest``), so that editing, deleting or
        adding an image afterwards breaks ``state verify`` and makes rollback refuse. One hash
        over the batch's bytes and one audit append per batch: no re-hashing of older images."""
        if not rows:
            return
        params: list[dict[str, Any]] = [{"round": round_no, "action_id": action_id, "record_id": rid,
                                         "existed": bool(existed), "payload": p} for rid, existed, p in rows]
        with self.tx() as c:
            ids = c.execute(insert(t.before_images).returning(t.before_images.c.id, sort_by_parameter_order=True),
                            params).scalars().all()
            stored = sorted(zip(ids, params, strict=True), key=lambda x: x[0])
            digest = image_digest((rid, p["round"], p["action_id"], p["record_id"], p["existed"], p["payload"])
                                  for rid, p in stored)
            self.audit(c, "before_images", {"round": round_no, "action": action_id,
                                            "rows": id_ranges([rid for rid, _ in stored]), "count": len(stored),
                                            "digest": digest})

    def before_images(self, round_no: int, action_id: str) -> Iterator[dict[str, Any]]:
        """The images of one action that rollback restores: for every id, only its earliest image
        in the whole round. Later captures of the same id (a replayed batch, another action of the
        round touching it again) saw vecmig's own writes, not what was there before."""
        b = t.before_images
        first = (select(b.c.id, func.row_number().over(partition_by=b.c.record_id, order_by=b.c.id).label("n"),
                        b.c.action_id)
                 .where(b.c.round == round_no).subquery())
        earliest = select(first.c.id).where(first.c.n == 1, first.c.action_id == action_id)
        q = select(b).where(b.c.id.in_(earliest)).order_by(b.c.id)
        with self.engine.connect() as c:
            rows = c.execute(q).mappings().all()
        for r in rows:
            yield dict(r)

    def before_image_rows(self) -> Iterator[dict[str, Any]]:
        """Every stored image in row order (for ``state verify``), streamed."""
        with self.engine.connect() as c:
            result = c.execution_options(yield_per=2000).execute(select(t.before_images).order_by(t.before_images.c.id))
            for r in result.mappings():
                yield dict(r)

    def before_image_ids(self, round_no: int, action_id: str) -> set[str]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.before_images.c.record_id)
                             .where(t.before_images.c.round == round_no, t.before_images.c.action_id == action_id))
            return {r[0] for r in rows}

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, round_no: int | None, operation: str, plan_hash: str | None, approval: str,
                  **data: Any) -> int:
        """Open a run; its audit event says who, with which spec and plan, approved how."""
        who = actor()
        with self.tx() as c:
            spec_hash = None
            if round_no is not None:
                # The round carries the spec hash, so callers need not pass it (the executor does not).
                spec_hash = c.execute(select(t.rounds.c.spec_hash).where(t.rounds.c.round == round_no)).scalar()
            run_id = _inserted_id(c.execute(insert(t.runs).values(
                round=round_no, operation=operation, status="running", started=now(), user=who["user"],
                host=who["host"], pid=who["pid"], tool_version=__version__, plan_hash=plan_hash,
                approval=approval)))
            self.bump_serial(c)
            self.audit(c, "run_started", {"run": run_id, "round": round_no, "operation": operation,
                                          "plan_hash": plan_hash, "spec_hash": spec_hash, "approval": approval,
                                          **data})
        return int(run_id)

    def finish_run(self, run_id: int, status: str, error: str | None = None, **data: Any) -> None:
        err = self.redact(error) if error else None
        with self.tx() as c:
            c.execute(update(t.runs).where(t.runs.c.id == run_id).values(status=status, finished=now(), error=err))
            self.bump_serial(c)
            self.audit(c, "run_finished", {"run": run_id, "status": status, "error": err,
                                           **self._run_totals(c, run_id), **data})

    def _run_totals(self, c: Connection, run_id: int) -> dict[str, Any]:
        """What the run's round moved and what its validations found, for the auditor's copy."""
        round_no = c.execute(select(t.runs.c.round).where(t.runs.c.id == run_id)).scalar()
        if round_no is None:
            return {}
        rows = c.execute(select(t.actions.c.action_id, t.actions.c.kind, t.actions.c.status, t.actions.c.records,
                                t.actions.c.bytes, t.actions.c.result_json)
                         .where(t.actions.c.round == round_no)).mappings().all()
        validations: dict[str, Any] = {}
        for r in rows:
            if r["kind"].startswith("validate") and r["result_json"]:
                res = json.loads(r["result_json"])
                validations[r["action_id"]] = {"ok": res.get("ok"), "source": res.get("source"),
                                               "target": res.get("target")}
        done = [r for r in rows if r["status"] == "done"]
        return {"round": round_no,
                "actions_done": len(done), "actions_total": len(rows),
                "records_copied": sum(int(r["records"] or 0) for r in done if r["kind"] == "copy_shard"),
                "bytes_copied": sum(int(r["bytes"] or 0) for r in done if r["kind"] == "copy_shard"),
                "validations": validations}

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(t.runs).order_by(t.runs.c.id)).mappings()]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                "audit_events": c.execute(select(func.count()).select_from(t.audit)).scalar_one(),
                "before_images": c.execute(select(func.count()).select_from(t.before_images)).scalar_one(),
            }
