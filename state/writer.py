"""The writing half of the state store: runs, rounds, actions, checkpoints, the resources
journal, before-images and audit appends.

Every write that changes what happened is made in one transaction together with its audit
event (Alembic's rule: state is written in the step's own transaction), so a SIGKILL can
never leave an action marked done without its record, nor a record without its action.
Checkpoints are the exception by design: the per-batch hot path, one small upsert, no audit.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError, OperationalError

from vecmig import __version__
from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.db import _SQLITE_TIMEOUT, StoreBase, _is_damage, _sqlite_pragmas, _StateDbError
from vecmig.state.identity import actor, now
from vecmig.state.redact import Redactor
from vecmig.state.verify import event_hash, id_ranges, image_digest

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

def _inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an insert just added."""
    key = result.inserted_primary_key
    assert key is not None  # (SQLAlchemy gives one for every single-row insert)
    return int(key[0])


class StoreWriter(StoreBase):
    """Every write of the state store. ``tx()`` is the one write transaction; ``audit()``
    appends to the hash chain inside it."""

    def __init__(self, engine: Engine, migration: str, location: str, redactor: Redactor) -> None:
        super().__init__(engine, migration, location, redactor)
        # Serialises this process's writers: tx() and the checkpoint connection below.
        self._write_lock = threading.RLock()
        # SQLite: checkpoints go through one dedicated sqlite3 connection (opened on first
        # use, guarded by _write_lock) instead of a pooled SQLAlchemy transaction.
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        # (The file is the engine's: SQLAlchemy's pysqlite dialect also makes the path absolute.)
        self._sqlite_path = os.path.abspath(db) if db and db != ":memory:" and not db.startswith("file:") else None
        self._ckpt_conn: sqlite3.Connection | None = None

    # -- transactions ---------------------------------------------------------------------
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

    # -- rounds and actions ---------------------------------------------------------------
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
