"""One writer at a time: a lock row carrying its holder's identity and a heartbeat.

A holder on this host whose pid is gone, or any holder whose heartbeat is older than
``STALE_AFTER``, is dead: its lock is taken over and the takeover is audited.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from vecmig.errors import LockError
from vecmig.state import schema as t
from vecmig.state.identity import actor, now, parse_time, pid_alive
from vecmig.state.store import StateStore

LOCK_NAME = "migration"
HEARTBEAT_EVERY = 5.0
STALE_AFTER = timedelta(seconds=60)
RACE_RETRIES = 20


def describe(holder: dict[str, Any]) -> str:
    return (f"lock {holder['lock_id']} held by {holder['user']}@{holder['host']} pid {holder['pid']} "
            f"({holder['operation']}) since {holder['created']}")


def holder_is_dead(holder: dict[str, Any], here: str) -> bool:
    if holder["host"] == here and not pid_alive(int(holder["pid"])):
        return True
    return datetime.now(UTC) - parse_time(holder["heartbeat"]) > STALE_AFTER


class Lock:
    def __init__(self, store: StateStore, operation: str) -> None:
        self.store = store
        self.operation = operation
        self.lock_id = str(uuid.uuid4())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> dict[str, Any] | None:
        with self.store.engine.connect() as c:
            row = c.execute(select(t.locks).where(t.locks.c.name == LOCK_NAME)).mappings().first()
        return dict(row) if row else None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for a live holder to let go.

        A signal (Ctrl-C, SIGTERM) may land anywhere in here, also just after the lock row was
        committed and before the caller's ``try``/``finally`` is entered: whatever stops the
        acquisition removes this process's own row (and only it) on the way out."""
        try:
            deadline = time.monotonic() + timeout
            me = actor()
            while True:
                holder = self._try_take(me)
                if holder is None:
                    break
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"the migration is locked: {describe(holder)}",
                        hint=f"wait for it to finish, or if it is gone run `vecmig force-unlock SPEC "
                             f"{holder['lock_id']}`",
                    )
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
            self._thread = threading.Thread(target=self._beat, name="vecmig-lock-heartbeat", daemon=True)
            self._thread.start()
        except BaseException as exc:
            if not isinstance(exc, LockError):
                self.release()
            raise

    def _try_take(self, me: dict[str, Any]) -> dict[str, Any] | None:
        """Take the lock, or return its live holder.

        Two processes can both see no row and both insert: the loser's insert fails on the
        primary key (on PostgreSQL it waits for the winner's commit first). That is a reason to
        look again, not a holder: the row it lost to is read on the next pass.
        """
        for _ in range(RACE_RETRIES):
            ts = now()
            row = {"name": LOCK_NAME, "lock_id": self.lock_id, "user": me["user"], "host": me["host"],
                   "pid": me["pid"], "operation": self.operation, "created": ts, "heartbeat": ts}
            try:
                with self.store.tx(conflicts_ok=True) as c:
                    holder = c.execute(select(t.locks).where(t.locks.c.name == LOCK_NAME)).mappings().first()
                    if holder is not None:
                        if not holder_is_dead(dict(holder), me["host"]):
                            return dict(holder)
                        c.execute(delete(t.locks).where(t.locks.c.lock_id == holder["lock_id"]))
                        self.store.audit(c, "lock_taken_over", {"dead_holder": dict(holder)})
                    c.execute(insert(t.locks).values(**row))
                    self.store.audit(c, "lock_acquired", {"lock_id": self.lock_id, "operation": self.operation})
            except IntegrityError:
                continue
            return None
        raise LockError("could not take the migration lock: it kept changing hands while vecmig looked",
                        hint="try again; if it persists, check `vecmig state show SPEC` for the lock holder")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                with self.store.tx() as c:
                    c.execute(update(t.locks).where(t.locks.c.lock_id == self.lock_id).values(heartbeat=now()))
            except Exception:  # a missed beat is not fatal; a long silence makes the lock stale
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.store.tx() as c:
            res = c.execute(delete(t.locks).where(t.locks.c.lock_id == self.lock_id))
            if res.rowcount:
                self.store.audit(c, "lock_released", {"lock_id": self.lock_id})

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(store: StateStore, lock_id: str) -> dict[str, Any]:
    with store.tx() as c:
        holder = c.execute(select(t.locks).where(t.locks.c.name == LOCK_NAME)).mappings().first()
        if holder is None:
            raise LockError("the migration is not locked", hint="nothing to unlock")
        if holder["lock_id"] != lock_id:
            raise LockError(f"lock ID {lock_id} does not match the current {describe(dict(holder))}",
                            hint="copy the lock ID from the error that reported the lock")
        c.execute(delete(t.locks).where(t.locks.c.lock_id == lock_id))
        store.audit(c, "lock_forced_open", {"holder": dict(holder)})
    return dict(holder)
