"""catch_up: apply the source's changes since the feed opened until the target is close enough.

Each batch is whole source transactions in commit order, reduced to the ids they touched;
the current records of those ids are read from the source (``fetch``) and upserted, and ids
the source no longer has are deleted. Re-reading instead of decoding the rows keeps values
exact (float32 bits, metadata types as the snapshot copy wrote them) and makes a replayed
batch harmless. The order per batch is the apply invariant: before-images (a target vecmig
did not create), the target acknowledges, the feed position is checkpointed as the action's
cursor, and only then is the feed confirmed -- a SIGKILL anywhere replays at most one batch.

The loop ends when the lag is at most ``max_lag`` (records, or seconds). With
``freeze_writes`` it then blocks the source's writers (``ChangeFeed.freeze``: reads go on),
drains what committed before the block and returns with the freeze held in the run context
(``RunContext.hold``), so validation and cutover see a source that no longer moves;
``close_feed`` ends it. Why a held session rather than one action doing freeze, validate and
cutover: the shared pipeline's validation and cutover keep their own kinds, checkpoints and
inverses. A run killed in between loses the session and with it the lock (the server ends
both), so nothing stays locked; the resumed run calls :meth:`CatchUp.resume`, which freezes
and drains again before the remaining actions run, so the switch stays exact.
"""

from __future__ import annotations

import json
import time
from typing import Any

from vecmig.actions import images
from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.open_feed import source_feed
from vecmig.actions.params import CatchUpParams
from vecmig.errors import Interrupted, TerminalError
from vecmig.model import Action
from vecmig.providers import Provider
from vecmig.providers.base import ChangeBatch, ChangeFeed
from vecmig.records import Batch, RecordId, same_record_key
from vecmig.state.rows import ActionRow

HOLD = "cdc.freeze"
NOTE_EVERY_S = 2.0  # progress notes (lag, rate, retained WAL) at most this often
IDLE_SLEEP_S = 0.2  # between reads when the feed is empty but the lag condition is not met
DRAIN_WAIT_S = 30.0  # how long the last drain waits for the source to flush its WAL
# Changes read from the feed at a time (written to the target in batch_size pieces, checkpointed
# and confirmed once): each read decodes the WAL from the slot's restart point, so small reads
# cost ~0.1 s each whatever they hold (measured: 1,000 changes per read 2,900 changes/s, 5,000
# per read 10,900/s, on 384-dim rows).
READ_CHANGES = 20_000


def _still_running(ctx: RunContext, ids: tuple[str, ...]) -> bool:
    """Whether an action this catch-up keeps the target in sync for (a parallel-run's replay,
    running beside it) has not finished yet: until it has, the catch-up goes on."""
    for aid in ids:
        row = ctx.state.action(ctx.round, aid)
        if row is not None and row["status"] != "done":
            return True
    return False


class _Frozen:
    """The freeze as the run context holds it: closing it ends the freeze and the session."""

    def __init__(self, src: Provider, feed: ChangeFeed) -> None:
        self.src, self.feed = src, feed

    def close(self) -> None:
        try:
            self.feed.unfreeze()
            self.feed.close()
        finally:
            self.src.close()


class _Stats:
    def __init__(self, done: int) -> None:
        self.started = time.monotonic()
        self.changes = 0
        self.transactions = 0
        self.upserted = 0
        self.deleted = 0
        self.batches = 0
        self.done = done
        self.noted = 0.0

    def rate(self) -> float:
        return self.changes / max(time.monotonic() - self.started, 1e-6)


class CatchUp(ActionKind):
    kind = "catch_up"
    runs_beside_others = True

    def summarise(self, result: dict[str, Any]) -> str:
        if "changes_per_s" not in result:
            return ""
        return (f" · {result['changes']:,} changes at {result['changes_per_s']:,.0f}/s · lag {result['lag_records']:,}"
                f"{' · source frozen' if result.get('frozen') else ''}")

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        saved = ctx.state.cursor(ctx.round, action.id)
        position = json.loads(saved["cursor_json"]) if saved and saved["cursor_json"] else None
        stats = _Stats(saved["records_done"] if saved else 0)
        ctx.reporter.start(action, 0, stats.done)
        src, feed = source_feed(ctx)
        tgt = ctx.target()
        keep = False
        try:
            if position:
                feed.confirm(position)  # killed after the checkpoint, before the confirm
            lag_records, lag_seconds = self._until_close(ctx, action, src, tgt, feed, position, stats)
            position = self._position(ctx, action)
            frozen_at = None
            if action.params.get("freeze_writes"):
                frozen_at = self._freeze_and_drain(ctx, action, src, tgt, feed, stats)
                ctx.hold(HOLD, _Frozen(src, feed))
                keep = True
                lag_records, lag_seconds = 0, 0.0
            if type(tgt).needs_finalize:
                tgt.finalize()  # a store that stages writes (files) holds them only once merged
            retained = feed.retained_bytes()
        finally:
            tgt.close()
            if not keep:
                feed.close()
                src.close()
        seconds = time.monotonic() - stats.started
        return {"changes": stats.changes, "transactions": stats.transactions, "upserted": stats.upserted,
                "records_deleted": stats.deleted, "batches": stats.batches, "seconds": round(seconds, 3),
                "changes_per_s": round(stats.rate(), 1), "lag_records": lag_records,
                "lag_seconds": round(lag_seconds, 3), "retained_bytes": retained,
                "position": self._position(ctx, action) or position, "frozen": frozen_at is not None,
                "frozen_at": frozen_at}

    def resume(self, ctx: RunContext, action: Action) -> None:
        """A resumed round after this action finished: the freeze it held died with the killed
        run, and writes since then are in the feed. Freeze again and drain them, unless the
        feed was closed already (the round's cdc work is over)."""
        if not action.params.get("freeze_writes") or HOLD in ctx.holds:
            return
        closer = ctx.state.action(ctx.round, str(action.params.get("closed_by", "")))
        if closer is not None and closer["status"] == "done":
            return
        saved = ctx.state.cursor(ctx.round, action.id)
        stats = _Stats(saved["records_done"] if saved else 0)
        src, feed = source_feed(ctx)
        tgt = ctx.target()
        keep = False
        try:
            if not feed.exists():
                return
            position = self._position(ctx, action)
            if position:
                feed.confirm(position)
            ctx.reporter.note(f"{action.id}: resuming: writes to the source are frozen again and drained")
            self._freeze_and_drain(ctx, action, src, tgt, feed, stats)
            ctx.hold(HOLD, _Frozen(src, feed))
            keep = True
        finally:
            tgt.close()
            if not keep:
                feed.close()
                src.close()

    # ---- the loop --------------------------------------------------------------------------

    def _position(self, ctx: RunContext, action: Action) -> str | None:
        saved = ctx.state.cursor(ctx.round, action.id)
        return json.loads(saved["cursor_json"]) if saved and saved["cursor_json"] else None

    def _until_close(self, ctx: RunContext, action: Action, src: Provider, tgt: Provider, feed: ChangeFeed,
                     position: str | None, stats: _Stats) -> tuple[int, float]:
        """Apply batches until the lag is within ``max_lag``; returns the lag it ended with."""
        p = CatchUpParams.from_json(action.params)
        size, max_records, max_seconds = p.batch_size, p.max_lag, p.max_lag_seconds
        while True:
            if ctx.stop.is_set():
                raise Interrupted(f"interrupted: {action.id} stopped after {stats.done:,} changes, "
                                  "last batch checkpointed", hint="run `vecmig apply` again to resume")
            batch = feed.read(position, max(size, READ_CHANGES))
            if batch.end is not None:
                position = self._apply(ctx, action, src, tgt, feed, batch, stats)
            elif batch.skip_to is not None:
                feed.confirm(batch.skip_to)  # not checkpointed: nothing of ours lies before it
            if batch.end is not None and batch.changes >= max(size, READ_CHANGES):
                continue  # more is waiting: no need to measure
            lag = feed.lag(max_records)
            self._note(ctx, action, feed, stats, lag.records, lag.seconds, lag.retained_bytes, force=False)
            ok = (lag.seconds <= float(max_seconds)) if max_seconds is not None else (
                lag.exact and lag.records <= max_records)
            if ok and not _still_running(ctx, p.until_done):
                return lag.records, lag.seconds
            if batch.end is None:
                time.sleep(IDLE_SLEEP_S)

    def _freeze_and_drain(self, ctx: RunContext, action: Action, src: Provider, tgt: Provider,
                          feed: ChangeFeed, stats: _Stats) -> str:
        at = feed.freeze()
        ctx.reporter.note(f"{action.id}: writes to the source are frozen (reads go on); draining the last changes")
        position = self._position(ctx, action)
        deadline = time.monotonic() + DRAIN_WAIT_S
        while True:
            # Decoding reads only flushed WAL: a commit made with synchronous_commit=off may
            # still be in memory, and must not be mistaken for the end of the stream.
            flushed = feed.flushed(at)
            batch = feed.read(position, max(int(action.params["batch_size"]), READ_CHANGES), upto=at)
            if batch.end is not None:
                position = self._apply(ctx, action, src, tgt, feed, batch, stats)
                continue
            if flushed:
                break
            if time.monotonic() > deadline:
                raise TerminalError(f"{action.id}: the source did not flush its WAL up to {at} in "
                                    f"{DRAIN_WAIT_S:.0f}s", hint="check the source server, then apply again")
            time.sleep(0.05)
        self._note(ctx, action, feed, stats, 0, 0.0, feed.retained_bytes(), force=True)
        return at

    def _apply(self, ctx: RunContext, action: Action, src: Provider, tgt: Provider, feed: ChangeFeed,
               batch: ChangeBatch, stats: _Stats) -> str:
        """One batch: re-read, write, checkpoint, confirm -- in that order."""
        assert batch.end is not None
        size = int(action.params["batch_size"])
        ids: list[RecordId] = list(batch.ids)
        if batch.everything:
            # The source was emptied: every record the target holds must be checked.
            known = {same_record_key(r) for r in ids}
            for b in tgt.scan(None, None, size):
                ids.extend(r for r in b.ids if same_record_key(r) not in known)
        nbytes = 0
        for i in range(0, len(ids), size):
            chunk = ids[i:i + size]
            current = src.fetch(chunk)
            present = {same_record_key(r) for r in current.ids}
            gone = [r for r in chunk if same_record_key(r) not in present]
            mapping = ctx.spec.mapping  # the mapping stays in the spec (see vecmig.actions.params)
            mapped = Batch(ids=current.ids, vectors=current.vectors,
                           metadata=[mapping.apply(m) for m in current.metadata],
                           texts=current.texts, extra=current.extra)
            if action.params.get("before_images"):
                ctx.state.save_before_images(ctx.round, action.id, images.capture(tgt, chunk))
            if len(mapped):
                tgt.upsert(mapped)  # returns once acknowledged
            if gone:
                tgt.delete(gone)
            stats.upserted += len(mapped)
            stats.deleted += len(gone)
            nbytes += current.nbytes
        ctx.state.checkpoint(ctx.round, action.id, batch.end, batch.changes, nbytes)
        feed.confirm(batch.end)
        stats.changes += batch.changes
        stats.transactions += batch.transactions
        stats.batches += 1
        stats.done += batch.changes
        ctx.reporter.advance(action, batch.changes)
        self._note(ctx, action, feed, stats, None, batch.oldest_age_s, None, force=False)
        return batch.end

    def _note(self, ctx: RunContext, action: Action, feed: ChangeFeed, stats: _Stats, lag_records: int | None,
              lag_seconds: float, retained: int | None, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - stats.noted < NOTE_EVERY_S:
            return
        stats.noted = now
        if retained is None:
            retained = feed.retained_bytes()
        lag = f"{lag_records:,} change(s) / {lag_seconds:.1f}s" if lag_records is not None else f"{lag_seconds:.1f}s"
        ctx.reporter.note(f"{action.id}: lag {lag} · {stats.rate():,.0f} changes/s · "
                          f"{stats.done:,} applied · source retains {retained / 1e6:.1f} MB of WAL")

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        images.undo_writes(ctx, action)
