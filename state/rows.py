"""The rows the state store hands out, one ``TypedDict`` per table (``state/schema.py``).

They are plain dicts at run time, so ``row["status"]`` works as it always has; the types let
mypy check the keys and the value types callers rely on. Nullable columns are ``X | None``.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["ActionRow", "AuditHead", "AuditRow", "BeforeImageRow", "CursorRow", "ResourceRow", "RoundRow",
           "RunRow", "StateCounts"]


class RoundRow(TypedDict):
    """One planned-and-applied pass of the migration (table ``rounds``)."""

    round: int
    status: str  # in_progress | complete | superseded | rolling_back | rolled_back
    plan_hash: str
    spec_hash: str
    plan_json: str
    source_fingerprint: str | None
    target_fingerprint: str | None
    created: str
    updated: str


class ActionRow(TypedDict):
    """One action of a round (table ``actions``)."""

    round: int
    action_id: str
    seq: int
    kind: str
    status: str  # pending | running | done | failed | rolled_back
    params_json: str
    started: str | None
    finished: str | None
    records: int | None
    bytes: int | None
    est_seconds_low: float | None
    est_seconds_high: float | None
    actual_seconds: float | None
    result_json: str | None
    error: str | None


class CursorRow(TypedDict):
    """Where an action stopped, and what it checkpointed so far (table ``cursors``)."""

    round: int
    action_id: str
    cursor_json: str | None
    records_done: int
    bytes_done: int
    checksum_json: str | None
    updated: str


class RunRow(TypedDict):
    """One apply or rollback process (table ``runs``)."""

    id: int
    round: int | None
    operation: str  # apply | rollback
    status: str  # running | succeeded | failed | interrupted
    started: str
    finished: str | None
    user: str | None
    host: str | None
    pid: int | None
    tool_version: str | None
    plan_hash: str | None
    approval: str | None
    error: str | None


class ResourceRow(TypedDict):
    """A remote side effect, journaled as intent before it happens (table ``resources``)."""

    id: int
    round: int
    action_id: str
    kind: str
    side: str  # source | target
    name: str
    state: str  # intent | done | reverted
    before_json: str | None
    created: str
    updated: str


class BeforeImageRow(TypedDict):
    """A record as it was before vecmig overwrote or deleted it (table ``before_images``)."""

    id: int
    round: int
    action_id: str
    record_id: str  # canonical JSON of the id
    existed: bool
    payload: bytes | None


class AuditRow(TypedDict):
    """One hash-chained audit event (table ``audit``)."""

    seq: int
    ts: str
    event: str
    actor_json: str
    data_json: str
    prev_hash: str
    hash: str


class AuditHead(TypedDict):
    """The chain head kept in ``meta`` (its last event's seq and hash)."""

    seq: int
    hash: str


class StateCounts(TypedDict):
    """How many audit events and before-images the store holds."""

    audit_events: int
    before_images: int
