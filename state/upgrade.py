"""Explicit, backed-up state schema upgrades (`vecmig state upgrade SPEC`).

Opening a store of an older schema version is refused everywhere else, so an upgrade only
ever happens when a person asks for it. Before any step runs, the store is copied: a SQLite
file to ``<name>.schema-v<N>.<UTC time>.db`` beside it (SQLite's backup API, so a WAL in
use is included), a PostgreSQL store to a schema ``vecmig_backup_v<N>_<UTC time>``. Each
step runs in one transaction with the version bump and an audit event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, inspect, select, text, update

from vecmig import safe_paths
from vecmig.errors import StateError
from vecmig.state import schema as t
from vecmig.state.db import _engine_for, safe_location
from vecmig.state.redact import Redactor
from vecmig.state.store import StateStore
from vecmig.state.verify import GENESIS, ImageDigest, check_chain, id_ranges


@dataclass(frozen=True)
class UpgradeReport:
    from_version: int
    to_version: int
    backup: str | None  # where the copy taken before the first step is
    steps: tuple[str, ...]


def _v1_to_v2(store: StateStore, c: Connection) -> str:
    """Version 2 keeps the audit chain head in meta; compute it from the existing log."""
    last = c.execute(select(t.audit.c.seq, t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)).first()
    head = {"seq": int(last[0]), "hash": str(last[1])} if last else {"seq": 0, "hash": GENESIS}
    c.execute(insert(t.meta).values(key=t.AUDIT_HEAD, value=json.dumps(head)))
    return f"1 → 2: recorded the audit chain head (event {head['seq']})"


def _v2_to_v3(store: StateStore, c: Connection) -> str:
    """Version 3 covers before-images by the audit chain: seal the ones already stored.

    One ``before_images`` event per action, over its rows as they are now (marked
    ``sealed_at_upgrade``: the chain vouches for them from this point, not from their
    capture; the upgrade refuses a store whose chain is already broken). Also creates the
    indexes rollback reads images through.
    """
    for index in t.BEFORE_IMAGE_INDEXES:
        index.create(c, checkfirst=True)
    b = t.before_images
    groups = c.execute(select(b.c.round, b.c.action_id).distinct().order_by(b.c.round, b.c.action_id)).all()
    sealed = 0
    for round_no, action_id in groups:
        digest = ImageDigest()
        ids: list[int] = []
        rows = c.execution_options(yield_per=2000).execute(
            select(b).where(b.c.round == round_no, b.c.action_id == action_id).order_by(b.c.id))
        for r in rows.mappings():
            payload = None if r["payload"] is None else bytes(r["payload"])
            digest.update(r["id"], r["round"], r["action_id"], r["record_id"], bool(r["existed"]), payload)
            ids.append(int(r["id"]))
        store.audit(c, "before_images", {"round": round_no, "action": action_id, "rows": id_ranges(ids),
                                         "count": len(ids), "digest": digest.hexdigest(),
                                         "sealed_at_upgrade": True})
        sealed += len(ids)
    return f"2 → 3: sealed {sealed} before-image(s) of {len(groups)} action(s) into the audit chain"


# from version N: the step that makes it N + 1
STEPS: dict[int, Callable[[StateStore, Connection], str]] = {1: _v1_to_v2, 2: _v2_to_v3}


def upgrade(migration: str, path: Path | None, url: str | None, secrets: frozenset[str] = frozenset(),
            redactor: Redactor | None = None) -> UpgradeReport:
    location = safe_location(url) if url else str(path)
    if path is not None and not url:
        safe_paths.ensure_file(path, "state file", error=StateError)
    if path is not None and not url and not path.exists():
        raise StateError(f"no state store at {location}", hint="nothing to upgrade")
    engine = _engine_for(path, url)
    store = StateStore(engine, migration, location, redactor or Redactor(secrets))
    try:
        if not inspect(engine).has_table(t.meta.name) or not store.meta():
            raise StateError(f"no state store at {location}", hint="nothing to upgrade")
        meta = store.meta()
        if meta.get("migration") != migration:
            raise StateError(f"state store {location} belongs to migration '{meta.get('migration')}', "
                             f"not '{migration}'", hint="point the spec's state at this migration's own store")
        version = int(meta.get("schema_version", "0"))
        if version > t.SCHEMA_VERSION:
            store.check_version(version)  # raises: written by a newer vecmig
        if version == t.SCHEMA_VERSION:
            return UpgradeReport(version, version, None, ())
        if version not in STEPS:
            raise StateError(f"state store {location} has schema version {version}, which this vecmig cannot "
                             "upgrade", hint="upgrade with the vecmig release that followed it first")
        _refuse_if_locked(store)
        # A chain already broken must not be blessed with a fresh head.
        ok, why = check_chain(store.audit_events(), None, head_required=False)
        if not ok:
            raise StateError(f"not upgrading: the audit chain is already broken ({why})",
                             hint="run `vecmig state verify SPEC` and investigate before upgrading")
        backup = _backup(store, path, version)
        done = []
        while version < t.SCHEMA_VERSION:
            step = STEPS[version]
            with store.tx() as c:
                done.append(step(store, c))
                c.execute(update(t.meta).where(t.meta.c.key == "schema_version").values(value=str(version + 1)))
                store.audit(c, "state_upgraded", {"from": version, "to": version + 1, "backup": backup})
            version += 1
        return UpgradeReport(int(meta["schema_version"]), version, backup, tuple(done))
    finally:
        engine.dispose()


def _refuse_if_locked(store: StateStore) -> None:
    from vecmig.state.identity import actor
    from vecmig.state.lock import LOCK_NAME, describe, holder_is_dead

    with store.engine.connect() as c:
        holder = c.execute(select(t.locks).where(t.locks.c.name == LOCK_NAME)).mappings().first()
    if holder is not None and not holder_is_dead(dict(holder), actor()["host"]):
        raise StateError(f"not upgrading while the migration is locked: {describe(dict(holder))}",
                         hint="wait for it to finish, then run `vecmig state upgrade SPEC` again")


def _backup(store: StateStore, path: Path | None, version: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if store.is_postgres:
        name = f"vecmig_backup_v{version}_{stamp.lower()}"
        with store.tx() as c:
            c.execute(text(f'CREATE SCHEMA "{name}"'))  # name is built from digits and letters only
            for table in t.metadata.sorted_tables:
                c.execute(text(f'CREATE TABLE "{name}"."{table.name}" AS TABLE "{table.name}"'))
        return f"schema {name}"
    assert path is not None
    dest = path.with_name(f"{path.stem}.schema-v{version}.{stamp}{path.suffix}")
    src = sqlite3.connect(path)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()
    return str(dest)
