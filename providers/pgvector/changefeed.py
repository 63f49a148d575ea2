"""Change-data capture from PostgreSQL: a publication on the source table and a logical
replication slot decoded with ``pgoutput`` over plain SQL (``pgoutput.py``).

* The publication exists before the slot (pgoutput resolves it as of each change), and the
  slot before the snapshot copy starts, so every change the copy may miss is in the slot.
* ``read`` peeks (never gets): nothing is consumed until ``confirm`` advances the slot, which
  the caller does after the target acknowledged the batch and the position is checkpointed.
* Names are deterministic: ``vecmig_<migration>_<hash of the database>``, the same for the
  slot and the publication, so plan finds what a killed run left behind.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.providers.base import ChangeBatch, ChangeFeed, FeedLag, FeedReport, FeedSlot
from vecmig.providers.pgvector import pgoutput
from vecmig.records import RecordId

if TYPE_CHECKING:
    from vecmig.providers.pgvector.provider import PgvectorProvider

PREFIX = "vecmig_"
MAX_NAME = 63  # NAMEDATALEN - 1
LOCK_TIMEOUT = "60s"  # how long freeze waits for the writers in flight before it gives up
BUSY_WAIT_S = 30.0  # how long a slot another session still uses is waited for

_OPTIONS = "'proto_version', '1', 'publication_names', "
_SLOTS_SQL = (
    "SELECT slot_name::text, active, COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint "
    "FROM pg_replication_slots WHERE slot_name LIKE 'vecmig\\_%' AND database = current_database() "
    "ORDER BY slot_name"
)


def feed_name(migration: str, database: str) -> str:
    """``vecmig_<migration>_<6 hex>``: slot names are unique per server, not per database, so
    the same migration name against two databases of one server must not collide."""
    tag = hashlib.sha256(database.encode()).hexdigest()[:6]
    base = re.sub(r"[^a-z0-9_]", "_", migration.lower())
    room = MAX_NAME - len(PREFIX) - len(tag) - 1
    if len(base) > room:
        base = base[:room - 7] + "_" + hashlib.sha256(base.encode()).hexdigest()[:6]
    return f"{PREFIX}{base}_{tag}"


class PgChangeFeed(ChangeFeed):
    def __init__(self, provider: PgvectorProvider, migration: str) -> None:
        self._p = provider
        self._migration = migration
        self._name: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._frozen: psycopg.Connection[Any] | None = None
        self._frozen_at = ""

    # ---- sessions -------------------------------------------------------------------------

    def _session(self) -> psycopg.Connection[Any]:
        """An autocommit session of its own: slot functions refuse a transaction that wrote."""
        if self._conn is None or self._conn.closed:
            self._p.connect()  # holds the embedded server, if that is the source
            try:
                self._conn = psycopg.connect(self._p._conninfo(), autocommit=True)
            except psycopg.Error as exc:
                raise self._p._classify(exc, connecting=True) from None
        return self._conn

    def _run(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            conn = self._session()
            try:
                cur = conn.execute(query, params)
                return list(cur.fetchall()) if cur.description else []
            except (psycopg.errors.ObjectInUse, psycopg.errors.DuplicateObject) as exc:
                # A killed run's server session can outlive it for a moment, still decoding from
                # the slot or still creating it: wait for it rather than fail the resumed run.
                if time.monotonic() > deadline:
                    raise self._p._classify(exc) from None
                time.sleep(0.2)
            except psycopg.Error as exc:
                if conn.broken:
                    self._conn = None
                raise self._p._classify(exc) from None

    @property
    def name(self) -> str:  # type: ignore[override]
        if self._name is None:
            database = str(self._run("SELECT current_database()")[0][0])
            self._name = feed_name(self._migration, database)
        return self._name

    def _table(self) -> sql.Composable:
        rel = self._p._require_layout().relation
        return sql.Identifier(rel.schema, rel.name)

    # ---- plan ----------------------------------------------------------------------------

    def report(self) -> FeedReport:
        name = self.name
        feeds = tuple(FeedSlot(str(n), int(b), bool(a)) for n, a, b in self._run(_SLOTS_SQL))
        problem, hint = self._problem(name, feeds)
        return FeedReport(name=name, problem=problem, hint=hint, feeds=feeds)

    def _problem(self, name: str, feeds: tuple[FeedSlot, ...]) -> tuple[str | None, str]:
        where = self._p._where
        level = str(self._run("SHOW wal_level")[0][0])
        if level != "logical":
            if self._p._embedded is not None:
                return (f"{where} runs with wal_level={level} and is shared with another running process, so "
                        "vecmig cannot restart it for logical decoding",
                        "stop the other processes using it and run again (vecmig then restarts it with "
                        "wal_level=logical)")
            return (f"the source PostgreSQL {where} runs with wal_level={level}; strategy cdc needs logical decoding",
                    "run `ALTER SYSTEM SET wal_level = logical;` as a superuser and restart the server")
        slots = int(self._run("SHOW max_replication_slots")[0][0])
        used = int(self._run("SELECT count(*) FROM pg_replication_slots")[0][0])
        if not any(f.name == name for f in feeds) and used >= slots:
            return (f"the source PostgreSQL {where} has no free replication slot ({used} of "
                    f"max_replication_slots={slots} in use)",
                    "drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots "
                    "and restart")
        row = self._run("SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user")
        if not (row and row[0][0]):
            return (f"the source role on {where} may not create replication slots",
                    "ALTER ROLE <user> REPLICATION, or connect as a role that has it")
        return self._identity_problem()

    def _identity_problem(self) -> tuple[str | None, str]:
        """Deletes and updates carry only the replica identity: it must hold the id. A table
        without one would also refuse every UPDATE and DELETE once it is published."""
        layout = self._p._require_layout()
        rel = layout.relation
        if not rel.is_table:
            return (f"source {rel.name} is a {rel.kind_name}: logical decoding publishes tables only",
                    "name the table behind it as source.collection")
        rows = self._run(
            "SELECT c.relreplident, (SELECT array_agg(a.attname::text) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) "
            "OR (c.relreplident = 'i' AND i.indisreplident))) FROM pg_class c WHERE c.oid = %s",
            (rel.oid,))
        ident, keys = (rows[0][0], rows[0][1] or []) if rows else ("n", [])
        if ident == "f" or (ident in ("d", "i") and layout.id.name in keys):
            return None, ""
        table = rel.name if rel.schema == "public" else f"{rel.schema}.{rel.name}"
        return (f"source table {table} has no replica identity holding its id column '{layout.id.name}', so "
                "logical decoding cannot say which record an update or delete touched",
                f"add a primary key on {layout.id.name}, or run `ALTER TABLE {table} REPLICA IDENTITY FULL`")

    def _id_is_the_identity(self) -> bool:
        """The replica identity is exactly the id column, and the server takes column lists
        (PostgreSQL 15+): a publication of the id alone then still carries every change."""
        layout = self._p._require_layout()
        rows = self._run(
            "SELECT current_setting('server_version_num')::int >= 150000 AND c.relreplident IN ('d', 'i') AND "
            "(SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) "
            "OR (c.relreplident = 'i' AND i.indisreplident))) = ARRAY[%s::text] FROM pg_class c WHERE c.oid = %s",
            (layout.id.name, layout.relation.oid))
        return bool(rows and rows[0][0])

    # ---- lifecycle -----------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self._run("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.name,)))

    def create(self) -> str:
        problem, hint = self._problem(self.name, ())
        if problem:
            raise TerminalError(problem, hint=hint)
        name = self.name
        # The publication first: pgoutput looks it up as of every change it decodes.
        if not self._run("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)):
            columns: sql.Composable = sql.SQL("")
            if self._id_is_the_identity():
                # Only the id is read from the stream (the rows are re-read from the table), and
                # decoding a 384-float vector to text per change cost ~10x the rest of the catch-up.
                columns = sql.SQL(" ({})").format(sql.Identifier(self._p._require_layout().id.name))
            self._run(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(
                sql.Identifier(name), self._table(), columns))
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            found = self._run("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                              (name,))
            if not found:
                break
            if found[0][0] is not None:
                return str(found[0][0])
            # Still being created by a killed run's session: it either finishes or goes away.
            if time.monotonic() > deadline:
                raise TerminalError(f"replication slot {name} on {self._p._where} stays half-created",
                                    hint=f"SELECT pg_drop_replication_slot('{name}'); then apply again")
            time.sleep(0.2)
        # Waits for the transactions in flight to end: from its consistent point on, the slot
        # holds every commit, and the snapshot copy starts after that.
        row = self._run("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        return str(row[0][0])

    def drop(self) -> None:
        name = self.name
        self._run("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                  (name,))
        self._run(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))

    def close(self) -> None:
        self.unfreeze()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    # ---- reading -------------------------------------------------------------------------

    def _peek(self, rows_limit: int | None, upto: int | None) -> list[bytes]:
        query = sql.SQL("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
                        + _OPTIONS + "%s)")
        return [bytes(r[0]) for r in self._run(
            query, (self.name, pgoutput.format_lsn(upto) if upto is not None else None, rows_limit, self.name))]

    def read(self, after: str | None, max_changes: int, upto: str | None = None) -> ChangeBatch:
        done = pgoutput.parse_lsn(after) if after else 0
        limit = max(1, max_changes)
        # Taken before the peek, which decodes at least this far unless it hits the limit.
        flushed = str(self._run("SELECT pg_current_wal_flush_lsn()::text")[0][0]) if upto is None else None
        messages = self._peek(limit, pgoutput.parse_lsn(upto) if upto else None)
        layout = self._p._require_layout()
        rel = layout.relation
        out = ChangeBatch()
        seen: dict[RecordId, None] = {}
        now = None
        for tx in pgoutput.transactions(messages):
            if tx.end_lsn <= done:
                continue  # applied and checkpointed before a kill, not yet confirmed to the slot
            if now is None:
                now = time.time()
                out.oldest_age_s = max(0.0, now - tx.commit_time.timestamp())
            out.transactions += 1
            out.end = pgoutput.format_lsn(tx.end_lsn)
            if any(r.name == rel.name and r.namespace == rel.schema for r in tx.truncated):
                out.everything = True
            for op, relation, values, old in tx.changes:
                if relation.name != rel.name or relation.namespace != rel.schema:
                    continue
                out.changes += 1
                for rid in _ids(op, relation, values, old, layout.id.name, layout.id_type == "int"):
                    seen[rid] = None
        out.ids = list(seen)
        if out.end is None and flushed is not None and len(messages) < limit:
            out.skip_to = flushed
        return out

    def confirm(self, position: str) -> None:
        row = self._run("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                        (self.name,))
        if not row:
            raise TerminalError(f"replication slot {self.name} is gone from {self._p._where}",
                                hint="the changes since it went are lost to vecmig: roll back and apply again")
        # Advancing backwards is an error, and a resumed run may confirm what a killed one did.
        if row[0][0] is None or pgoutput.parse_lsn(str(row[0][0])) < pgoutput.parse_lsn(position):
            self._run("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.name, position))

    def lag(self, limit: int) -> FeedLag:
        rows_limit = 4 * max(limit, 1) + 16  # a change costs a row, a transaction two more
        messages = self._peek(rows_limit, None)
        txs = pgoutput.transactions(messages)
        changes = sum(len(t.changes) + len(t.truncated) for t in txs)
        seconds = max(0.0, time.time() - txs[0].commit_time.timestamp()) if txs else 0.0
        return FeedLag(records=changes, exact=len(messages) < rows_limit, seconds=seconds,
                       retained_bytes=self.retained_bytes())

    def retained_bytes(self) -> int:
        row = self._run("SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint "
                        "FROM pg_replication_slots WHERE slot_name = %s", (self.name,))
        return int(row[0][0]) if row else 0

    # ---- freezing writes -----------------------------------------------------------------

    def freeze(self) -> str:
        """LOCK TABLE ... IN EXCLUSIVE MODE in a transaction left open: it waits for the writers
        in flight, then blocks writers (reads go on) until :meth:`unfreeze` or the session ends
        -- a killed vecmig never leaves the source locked. Returns the WAL insert position taken
        under the lock: every write committed before lies before it."""
        if self._frozen is not None:
            return str(self._frozen_at)
        try:
            conn = psycopg.connect(self._p._conninfo(), autocommit=False)
        except psycopg.Error as exc:
            raise self._p._classify(exc, connecting=True) from None
        try:
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(self._table()))
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise self._p._classify(exc) from None
        assert row is not None
        self._frozen, self._frozen_at = conn, str(row[0])
        return self._frozen_at

    def flushed(self, position: str) -> bool:
        """Whether the WAL up to ``position`` is on disk, where logical decoding reads it."""
        row = self._run("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (position,))
        return bool(row[0][0])

    def unfreeze(self) -> None:
        conn, self._frozen = self._frozen, None
        if conn is not None and not conn.closed:
            try:
                conn.rollback()  # the transaction wrote nothing: ending it is what releases the lock
            finally:
                conn.close()


def _ids(op: str, relation: pgoutput.Relation, values: pgoutput.Values, old: pgoutput.Values | None,
         id_column: str, int_ids: bool) -> list[RecordId]:
    """The record ids one row change touched: the new id, and the old one when it changed."""
    names = [c.name for c in relation.columns]
    if id_column not in names:
        raise TerminalError(f"the change stream of {relation.namespace}.{relation.name} has no column {id_column}",
                            hint="check source.fields.id")
    at = names.index(id_column)
    out: list[RecordId] = []
    for tup in (values, old):
        if tup is None or at >= len(tup):
            continue
        raw = tup[at]
        if raw is None or raw is pgoutput.UNCHANGED:
            continue
        rid: RecordId = int(str(raw)) if int_ids else str(raw)
        if rid not in out:
            out.append(rid)
    if not out:
        raise TerminalError(f"a {'delete' if op == 'D' else 'change'} on {relation.name} arrived without its id",
                            hint=f"give the table a primary key on {id_column} or REPLICA IDENTITY FULL")
    return out
