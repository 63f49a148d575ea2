"""The state store: one per migration, SQLite by default, PostgreSQL for teams.

``StateStore`` is the one object callers hold: it opens (or creates) a store and refuses a
damaged one, and it is both halves of the store — ``StoreReader`` (``state/reader.py``: every
read, returning the typed rows of ``state/rows.py``; the ``StateReader`` protocol is what plan
and render are typed against) and ``StoreWriter`` (``state/writer.py``: runs, rounds, actions,
checkpoints, before-images, the resources journal and audit appends, each in one transaction
with its audit event). ``state/db.py`` holds the engine and the translation of database errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import OperationalError

from vecmig import safe_paths
from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.db import DAMAGED_HINT, _engine_for, _StateDbError, safe_location
from vecmig.state.identity import now
from vecmig.state.reader import StateReader, StoreReader
from vecmig.state.redact import Redactor
from vecmig.state.verify import GENESIS, event_hash
from vecmig.state.writer import StoreWriter

__all__ = ["DAMAGED_HINT", "GENESIS", "StateReader", "StateStore", "event_hash", "safe_location"]

# Any constant works; it only has to be the same for every vecmig process sharing a database.
_PG_BOOTSTRAP_LOCK = 0x7665636D6967  # "vecmig"

# The storage classes SQLite may hold in a column of each of the schema's types.
_SQLITE_TYPES = {"Integer": "'integer', 'null'", "Float": "'integer', 'real', 'null'",
                 "Boolean": "'integer', 'null'", "String": "'text', 'null'", "Text": "'text', 'null'",
                 "LargeBinary": "'blob', 'null'"}

class StateStore(StoreWriter, StoreReader):
    """One migration's state store: its reads (``StoreReader``) and writes (``StoreWriter``),
    and how it is opened, created and checked."""

    def __init__(self, engine: Engine, migration: str, location: str, redactor: Redactor) -> None:
        super().__init__(engine, migration, location, redactor)
        self._check_lock = True

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
