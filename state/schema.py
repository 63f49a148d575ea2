"""The state store's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

``SCHEMA_VERSION`` is written into ``meta``; a store of another version is refused rather
than guessed at, and upgrades are explicit and backed up first (``state/upgrade.py``).

Version history:
  1  the tables below.
  2  ``meta`` gains ``audit_head`` (the last audit event's seq and hash, written in the same
     transaction as every append), so a truncated audit log is detectable.
  3  before-images are covered by the audit chain: every saved batch appends a
     ``before_images`` event naming its rows (id ranges) and a digest of them
     (``state/verify.py: image_digest``), and ``intent`` events name their resource row. Two
     indexes serve rollback's per-action and per-record reads of ``before_images``. The
     upgrade from 2 seals the images already stored (one event per action, marked
     ``sealed_at_upgrade``) and creates the indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 3
# meta key of the audit chain head: JSON {"seq": N, "hash": "..."} (schema version 2).
AUDIT_HEAD = "audit_head"

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One round is one planned-and-applied pass of the migration; a resumed apply continues the
# open round with the exact actions (and shard bounds) it was started with.
rounds = Table(
    "rounds",
    metadata,
    Column("round", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # in_progress | complete | superseded | rolling_back | rolled_back
    Column("plan_hash", String(64), nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("plan_json", Text, nullable=False),
    Column("source_fingerprint", String(32)),
    Column("target_fingerprint", String(32)),
    Column("created", String(32), nullable=False),
    Column("updated", String(32), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("round", Integer),
    Column("operation", String(16), nullable=False),  # apply | rollback
    Column("status", String(16), nullable=False),  # running | succeeded | failed | interrupted
    Column("started", String(32), nullable=False),
    Column("finished", String(32)),
    Column("user", String(128)),
    Column("host", String(256)),
    Column("pid", Integer),
    Column("tool_version", String(32)),
    Column("plan_hash", String(64)),
    Column("approval", String(32)),
    Column("error", Text),
)

actions = Table(
    "actions",
    metadata,
    Column("round", Integer, primary_key=True),
    Column("action_id", String(200), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | running | done | failed | rolled_back
    Column("params_json", Text, nullable=False),
    Column("started", String(32)),
    Column("finished", String(32)),
    Column("records", Integer, default=0),
    Column("bytes", Integer, default=0),
    Column("est_seconds_low", Float),
    Column("est_seconds_high", Float),
    Column("actual_seconds", Float),
    Column("result_json", Text),
    Column("error", Text),
)

cursors = Table(
    "cursors",
    metadata,
    Column("round", Integer, primary_key=True),
    Column("action_id", String(200), primary_key=True),
    Column("cursor_json", Text),
    Column("records_done", Integer, nullable=False, default=0),
    Column("bytes_done", Integer, nullable=False, default=0),
    Column("checksum_json", Text),
    Column("updated", String(32), nullable=False),
)

# Intent is written before the remote create/drop/swap; the row's state moves on after.
resources = Table(
    "resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("round", Integer, nullable=False),
    Column("action_id", String(200), nullable=False),
    Column("kind", String(32), nullable=False),  # collection | index | alias | drop
    Column("side", String(8), nullable=False),  # source | target
    Column("name", String(256), nullable=False),
    Column("state", String(16), nullable=False),  # intent | done | reverted
    Column("before_json", Text),  # what was there before (e.g. the alias's previous table)
    Column("created", String(32), nullable=False),
    Column("updated", String(32), nullable=False),
)

before_images = Table(
    "before_images",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("round", Integer, nullable=False),
    Column("action_id", String(200), nullable=False),
    Column("record_id", Text, nullable=False),  # canonical JSON of the id
    Column("existed", Boolean, nullable=False),
    Column("payload", LargeBinary),  # the record as it was, when it existed
)
# (schema version 3) rollback reads one action's images, and the earliest image of each id.
BEFORE_IMAGE_INDEXES = (
    Index("before_images_by_action", before_images.c.round, before_images.c.action_id, before_images.c.id),
    Index("before_images_by_record", before_images.c.round, before_images.c.record_id, before_images.c.id),
)

locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("lock_id", String(64), nullable=False),
    Column("user", String(128)),
    Column("host", String(256)),
    Column("pid", Integer),
    Column("operation", String(32)),
    Column("created", String(32), nullable=False),
    Column("heartbeat", String(32), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("ts", String(32), nullable=False),
    Column("event", String(64), nullable=False),
    Column("actor_json", Text, nullable=False),
    Column("data_json", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
