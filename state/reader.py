"""The reading half of the state store: what plan, render, verify and export read.

``StateReader`` is the protocol the planner and the renderers are typed against: reads only,
each returning the typed rows of ``state/rows.py``. ``StoreReader`` implements it over the
store's engine; nothing here opens a write transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Protocol, cast

from sqlalchemy import func, select

from vecmig.state import schema as t
from vecmig.state.db import StoreBase
from vecmig.state.redact import Redactor
from vecmig.state.rows import (
    ActionRow,
    AuditHead,
    AuditRow,
    BeforeImageRow,
    CursorRow,
    ResourceRow,
    RoundRow,
    RunRow,
    StateCounts,
)
from vecmig.state.verify import check_chain, check_records

__all__ = ["StateReader", "StoreReader"]


class StateReader(Protocol):
    """What can be read from a state store (``StateStore`` is one)."""

    # Masks the store's secrets (verify compares redacted copies, as the audit log keeps them).
    @property
    def redact(self) -> Redactor: ...

    @property
    def lineage(self) -> str: ...

    @property
    def serial(self) -> int: ...

    def meta(self) -> dict[str, str]: ...

    def audit_events(self) -> list[AuditRow]: ...

    def audit_head(self) -> AuditHead | None: ...

    def verify_chain(self) -> tuple[bool, str]: ...

    def verify_records(self) -> list[str]: ...

    def rounds(self) -> list[RoundRow]: ...

    def open_round(self) -> RoundRow | None: ...

    def last_round(self) -> RoundRow | None: ...

    def actions(self, round_no: int) -> list[ActionRow]: ...

    def action(self, round_no: int, action_id: str) -> ActionRow | None: ...

    def all_actions(self) -> list[ActionRow]: ...

    def cursor(self, round_no: int, action_id: str) -> CursorRow | None: ...

    def all_cursors(self) -> list[CursorRow]: ...

    def resources(self, round_no: int | None = None) -> list[ResourceRow]: ...

    def before_images(self, round_no: int, action_id: str) -> Iterator[BeforeImageRow]: ...

    def before_image_rows(self) -> Iterator[BeforeImageRow]: ...

    def before_image_ids(self, round_no: int, action_id: str) -> set[str]: ...

    def runs(self) -> list[RunRow]: ...

    def counts(self) -> StateCounts: ...


class StoreReader(StoreBase):
    """Every read of the state store, each on a connection of its own (no write transaction)."""

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

    # -- audit ----------------------------------------------------------------------------
    def audit_events(self) -> list[AuditRow]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.audit).order_by(t.audit.c.seq)).mappings().all()
        return [cast(AuditRow, dict(r)) for r in rows]

    def audit_head(self) -> AuditHead | None:
        raw = self.meta().get(t.AUDIT_HEAD)
        return cast(AuditHead, json.loads(raw)) if raw else None

    def verify_chain(self) -> tuple[bool, str]:
        """Recompute the chain and compare its end with the head: (intact?, what was found)."""
        return check_chain(self.audit_events(), self.audit_head())

    def verify_records(self) -> list[str]:
        """Stored checksums and results that no longer match their audit records (empty: all match)."""
        return check_records(self)

    # -- rounds and actions --------------------------------------------------------------
    def rounds(self) -> list[RoundRow]:
        with self.engine.connect() as c:
            return [cast(RoundRow, dict(r)) for r in c.execute(select(t.rounds).order_by(t.rounds.c.round)).mappings()]

    def open_round(self) -> RoundRow | None:
        for r in reversed(self.rounds()):
            if r["status"] in ("in_progress", "rolling_back"):
                return r
        return None

    def last_round(self) -> RoundRow | None:
        rs = self.rounds()
        return rs[-1] if rs else None

    def actions(self, round_no: int) -> list[ActionRow]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.actions).where(t.actions.c.round == round_no).order_by(t.actions.c.seq))
            return [cast(ActionRow, dict(r)) for r in rows.mappings()]

    def action(self, round_no: int, action_id: str) -> ActionRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.actions).where(t.actions.c.round == round_no,
                                                    t.actions.c.action_id == action_id)).mappings().first()
        return cast(ActionRow, dict(row)) if row else None

    def all_actions(self) -> list[ActionRow]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.actions).order_by(t.actions.c.round, t.actions.c.seq))
            return [cast(ActionRow, dict(r)) for r in rows.mappings()]

    # -- cursors --------------------------------------------------------------------------
    def cursor(self, round_no: int, action_id: str) -> CursorRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.cursors).where(t.cursors.c.round == round_no,
                                                    t.cursors.c.action_id == action_id)).mappings().first()
        return cast(CursorRow, dict(row)) if row else None

    def all_cursors(self) -> list[CursorRow]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.cursors).order_by(t.cursors.c.round, t.cursors.c.action_id))
            return [cast(CursorRow, dict(r)) for r in rows.mappings()]

    # -- resources ------------------------------------------------------------------------
    def resources(self, round_no: int | None = None) -> list[ResourceRow]:
        q = select(t.resources).order_by(t.resources.c.id)
        if round_no is not None:
            q = q.where(t.resources.c.round == round_no)
        with self.engine.connect() as c:
            return [cast(ResourceRow, dict(r)) for r in c.execute(q).mappings()]

    # -- before-images --------------------------------------------------------------------
    def before_images(self, round_no: int, action_id: str) -> Iterator[BeforeImageRow]:
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
            yield cast(BeforeImageRow, dict(r))

    def before_image_rows(self) -> Iterator[BeforeImageRow]:
        """Every stored image in row order (for ``state verify``), streamed."""
        with self.engine.connect() as c:
            result = c.execution_options(yield_per=2000).execute(select(t.before_images).order_by(t.before_images.c.id))
            for r in result.mappings():
                yield cast(BeforeImageRow, dict(r))

    def before_image_ids(self, round_no: int, action_id: str) -> set[str]:
        with self.engine.connect() as c:
            rows = c.execute(select(t.before_images.c.record_id)
                             .where(t.before_images.c.round == round_no, t.before_images.c.action_id == action_id))
            return {r[0] for r in rows}

    # -- runs and counts ------------------------------------------------------------------
    def runs(self) -> list[RunRow]:
        with self.engine.connect() as c:
            return [cast(RunRow, dict(r)) for r in c.execute(select(t.runs).order_by(t.runs.c.id)).mappings()]

    def counts(self) -> StateCounts:
        with self.engine.connect() as c:
            return {
                "audit_events": c.execute(select(func.count()).select_from(t.audit)).scalar_one(),
                "before_images": c.execute(select(func.count()).select_from(t.before_images)).scalar_one(),
            }
