"""The state store: one per migration, SQLite by default, PostgreSQL for teams.

Every write that changes what happened is made in one transaction together with its audit
event (Alembic's rule: state is written in the step's own transaction), so a SIGKILL can
never leave an action marked done without its record, nor a record without its action.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import SQLAlchemyError as _SAError

from vecmig import __version__
from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.identity import actor, now
from vecmig.state.redact import Redactor

GENESIS = "0" * 64


def _engine_for(path: Path | None, url: str | None) -> Engine:
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return create_engine(url, pool_pre_ping=True)
    assert path is not None
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL + NORMAL survives a killed process (only power loss could lose the last commit),
        # and lets `state show` read while an apply writes.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN instead,
    # so two writers queue on busy_timeout rather than fail half-way.
    @event.listens_for(engine, "connect")
    def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


class StateStore:
    def __init__(self, engine: Engine, migration: str, location: str, redactor: Redactor) -> None:
        self.engine = engine
        self.migration = migration
        self.location = location
        self.redact = redactor
        self._write_lock = threading.RLock()

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
    ) -> StateStore | None:
        """Open the store; with ``create=False`` a missing store is ``None`` (plan is read-only)."""
        location = url.split("@")[-1] if url else str(path)
        if path is not None and not url and not path.exists():
            if not create:
                return None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StateError(f"cannot create the state directory {path.parent}: {e.strerror}") from e
        try:
            engine = _engine_for(path, url)
            store = cls(engine, migration, location, Redactor(secrets))
            store._ensure_schema(create)
        except OperationalError as e:
            raise StateError(
                f"cannot open the state store {location}: {Redactor(secrets)(str(e.orig))}",
                hint="check that the file is writable and the disk is not full",
            ) from e
        if not store._initialised():
            if not create:
                return None
            store._initialise()
        return store

    def _ensure_schema(self, create: bool) -> None:
        if create:
            t.metadata.create_all(self.engine)

    def _initialised(self) -> bool:
        try:
            with self.engine.connect() as c:
                rows = dict(c.execute(select(t.meta.c.key, t.meta.c.value)).all())
        except _SAError:
            return False
        if not rows:
            return False
        version = int(rows.get("schema_version", "0"))
        if version != t.SCHEMA_VERSION:
            raise StateError(
                f"state store {self.location} has schema version {version}; this vecmig reads {t.SCHEMA_VERSION}",
                hint="upgrade vecmig, or run the matching version",
            )
        if rows.get("migration") != self.migration:
            raise StateError(
                f"state store {self.location} belongs to migration '{rows.get('migration')}', "
                f"not '{self.migration}'",
                hint="point `state.path` at this migration's own file",
            )
        return True

    def _initialise(self) -> None:
        with self.tx() as c:
            for key, value in {
                "schema_version": str(t.SCHEMA_VERSION),
                "migration": self.migration,
                "lineage": str(uuid.uuid4()),
                "serial": "0",
                "created": now(),
            }.items():
                c.execute(insert(t.meta).values(key=key, value=value))
            self.audit(c, "state_created", {"schema_version": t.SCHEMA_VERSION})

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        with self._write_lock:
            try:
                with self.engine.connect() as c:
                    c.execution_options(immediate=True)
                    with c.begin():
                        yield c
            except OperationalError as e:
                raise StateError(
                    f"cannot write the state store {self.location}: {self.redact(str(e.orig))}",
                    hint="check free disk space and that the state file is writable",
                ) from e

    # -- meta -----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.engine.connect() as c:
            return dict(c.execute(select(t.meta.c.key, t.meta.c.value)).all())  # type: ignore[arg-type]

    @property
    def lineage(self) -> str:
        return self.meta()["lineage"]

    @property
    def serial(self) -> int:
        return int(self.meta()["serial"])

    def bump_serial(self, c: Connection) -> int:
        current = int(c.execute(select(t.meta.c.value).where(t.meta.c.key == "serial")).scalar_one())
        c.execute(update(t.meta).where(t.meta.c.key == "serial").values(value=str(current + 1)))
        return current + 1

    # -- audit ----------------------------------------------------------------------------
    def audit(self, c: Connection, event_name: str, data: dict[str, Any]) -> None:
        """Append one hash-chained event inside the caller's transaction."""
        last = c.execute(select(t.audit.c.seq, t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)).first()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        ts = now()
        who = json.dumps(actor(), sort_keys=True)
        payload = self.redact(json.dumps({"tool_version": __version__, **data}, sort_keys=True, default=str))
        digest = event_hash(prev, seq, ts, event_name, who, payload)
        c.execute(
            insert(t.audit).values(
                seq=seq, ts=ts, event=event_name, actor_json=who, data_json=payload, prev_hash=prev, hash=digest
            )
        )

    def audit_events(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.audit).order_by(t.audit.c.seq)).mappings().all()
        return [dict(r) for r in rows]

    def verify_chain(self) -> tuple[bool, str]:
        prev = GENESIS
        expected_seq = 1
        for ev in self.audit_events():
            if ev["seq"] != expected_seq:
                return False, f"event {expected_seq} is missing (next is {ev['seq']})"
            if ev["prev_hash"] != prev:
                return False, f"event {ev['seq']} ({ev['event']}) does not follow event {ev['seq'] - 1}"
            digest = event_hash(prev, ev["seq"], ev["ts"], ev["event"], ev["actor_json"], ev["data_json"])
            if digest != ev["hash"]:
                return False, f"event {ev['seq']} ({ev['event']}) was edited"
            prev = ev["hash"]
            expected_seq += 1
        return True, f"{expected_seq - 1} events, chain intact"

    # -- rounds and actions --------------------------------------------------------------
    def rounds(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(t.rounds).order_by(t.rounds.c.round)).mappings()]

    def open_round(self) -> dict[str, Any] | None:
        for r in reversed(self.rounds()):
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
            self.audit(c, f"action_{status}", {"round": round_no, "action": action_id,
                                               **{k: v for k, v in values.items() if k != "result_json"},
                                               **(audit_data or {})})

    # -- cursors (the per-batch hot path: one small transaction, no audit) -----------------
    def cursor(self, round_no: int, action_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.cursors).where(t.cursors.c.round == round_no,
                                                    t.cursors.c.action_id == action_id)).mappings().first()
        return dict(row) if row else None

    def checkpoint(self, round_no: int, action_id: str, cursor: Any, records: int, nbytes: int,
                   checksum: dict[str, Any] | None = None) -> None:
        """Called only after the target acknowledged the batch (DESIGN: ack before checkpoint)."""
        cj = json.dumps(cursor)
        sj = json.dumps(checksum) if checksum is not None else None
        ts = now()
        with self.tx() as c:
            res = c.execute(update(t.cursors)
                            .where(t.cursors.c.round == round_no, t.cursors.c.action_id == action_id)
                            .values(cursor_json=cj, records_done=t.cursors.c.records_done + records,
                                    bytes_done=t.cursors.c.bytes_done + nbytes, checksum_json=sj, updated=ts))
            if res.rowcount == 0:
                c.execute(insert(t.cursors).values(round=round_no, action_id=action_id, cursor_json=cj,
                                                   records_done=records, bytes_done=nbytes,
                                                   checksum_json=sj, updated=ts))

    # -- resources: intent journaled before the remote side effect -------------------------
    def journal_intent(self, round_no: int, action_id: str, kind: str, side: str, name: str,
                       before: Any = None) -> int:
        ts = now()
        with self.tx() as c:
            rid = c.execute(insert(t.resources).values(
                round=round_no, action_id=action_id, kind=kind, side=side, name=name, state="intent",
                before_json=json.dumps(before), created=ts, updated=ts)).inserted_primary_key[0]
            self.audit(c, "intent", {"round": round_no, "action": action_id, "kind": kind, "side": side,
                                     "name": name, "before": before})
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
        if not rows:
            return
        with self.tx() as c:
            c.execute(insert(t.before_images), [
                {"round": round_no, "action_id": action_id, "record_id": rid, "existed": existed, "payload": p}
                for rid, existed, p in rows])

    def before_images(self, round_no: int, action_id: str) -> Iterator[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.before_images)
                             .where(t.before_images.c.round == round_no, t.before_images.c.action_id == action_id)
                             .order_by(t.before_images.c.id)).mappings().all()
        # First image of an id wins: a replayed batch must not capture vecmig's own write.
        seen: set[str] = set()
        for r in rows:
            if r["record_id"] not in seen:
                seen.add(r["record_id"])
                yield dict(r)

    def before_image_ids(self, round_no: int, action_id: str) -> set[str]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.before_images.c.record_id)
                             .where(t.before_images.c.round == round_no, t.before_images.c.action_id == action_id))
            return {r[0] for r in rows}

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, round_no: int | None, operation: str, plan_hash: str | None, approval: str) -> int:
        who = actor()
        with self.tx() as c:
            run_id = c.execute(insert(t.runs).values(
                round=round_no, operation=operation, status="running", started=now(), user=who["user"],
                host=who["host"], pid=who["pid"], tool_version=__version__, plan_hash=plan_hash,
                approval=approval)).inserted_primary_key[0]
            self.bump_serial(c)
            self.audit(c, "run_started", {"run": run_id, "round": round_no, "operation": operation,
                                          "plan_hash": plan_hash, "approval": approval})
        return int(run_id)

    def finish_run(self, run_id: int, status: str, error: str | None = None, **data: Any) -> None:
        err = self.redact(error) if error else None
        with self.tx() as c:
            c.execute(update(t.runs).where(t.runs.c.id == run_id).values(status=status, finished=now(), error=err))
            self.bump_serial(c)
            self.audit(c, "run_finished", {"run": run_id, "status": status, "error": err, **data})

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(t.runs).order_by(t.runs.c.id)).mappings()]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                "audit_events": c.execute(select(func.count()).select_from(t.audit)).scalar_one(),
                "before_images": c.execute(select(func.count()).select_from(t.before_images)).scalar_one(),
            }


def event_hash(prev: str, seq: int, ts: str, event_name: str, actor_json: str, data_json: str) -> str:
    h = hashlib.sha256()
    for part in (prev, str(seq), ts, event_name, actor_json, data_json):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()
