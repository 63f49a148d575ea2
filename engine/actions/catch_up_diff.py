"""catch_up_diff: catch up a source that has no change feed by repeated record-level diffs.

Each pass diffs the source against the target (``vecmig.diff``, the plan's own diff), writes
what it found missing or different (re-read from the source by id, or the whole shard where
most of it changed) and deletes what the source no longer has; the pass number is then
checkpointed. A pass is idempotent (it writes the source's current records and removes
extras), so a SIGKILL replays at most the pass in flight. The loop ends when a diff finds at
most ``max_lag`` records to move: that is the lag, in records (a store without a change feed
cannot say how old a change is, so the plan refuses a lag in seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from vecmig.actions import images
from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.params import CatchUpDiffParams
from vecmig.diff import RecordDiff, current_shards, diff_records
from vecmig.diff.baseline import last_versions
from vecmig.errors import Interrupted
from vecmig.model import Action
from vecmig.providers import Provider
from vecmig.records import Batch
from vecmig.state.rows import ActionRow

IDLE_SLEEP_S = 0.5  # between passes that found too much to move, so a busy source is not hammered
MAX_PASSES = 1000  # a source that changes faster than a pass can copy never converges: say so


class CatchUpByDiff(ActionKind):
    kind = "catch_up_diff"
    runs_beside_others = True

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        saved = ctx.state.cursor(ctx.round, action.id)
        done_passes = int(json.loads(saved["cursor_json"]).get("pass", 0)) if saved and saved["cursor_json"] else 0
        moved = saved["records_done"] if saved else 0
        ctx.reporter.start(action, 0, moved)
        p = CatchUpDiffParams.from_json(action.params)
        max_lag = p.max_lag
        shards: list[dict[str, Any] | None] = list(p.shards or [None])
        started = time.monotonic()
        passes = 0
        # A fixed number of passes (cdc's resync after its feed opens: one, whatever it finds;
        # the feed catches up the rest). None: until the lag is small enough.
        limit = p.passes
        lag = 0
        method = "none"
        while limit is None or done_passes + passes < int(limit):
            if ctx.stop.is_set():
                raise Interrupted(f"interrupted: {action.id} stopped after pass {done_passes + passes}",
                                  hint="run `vecmig apply` again to resume")
            # Cut again each pass: a file that grew has records past the planned byte ranges.
            shards = current_shards(ctx.spec, shards, p.shard_size)
            # Against the last validation's row versions where the stores keep them: a pass
            # hashes only the buckets written since (vecmig.diff.versions).
            diff = diff_records(ctx.spec, shards, versions_baseline=last_versions(ctx.state),
                                batch_size=p.batch_size, concurrency=p.concurrency)
            lag, method = diff.counts.moves, diff.method
            ctx.reporter.note(f"{action.id}: pass {done_passes + passes + 1}: {lag:,} record(s) differ "
                              f"({diff.counts.add:,} to add, {diff.counts.change:,} to change, "
                              f"{diff.counts.delete:,} to delete)")
            if lag <= max_lag:
                break
            if passes >= MAX_PASSES:
                raise Interrupted(f"{action.id}: {MAX_PASSES} passes and still {lag:,} records differ: the source "
                                  "changes faster than it can be caught up by diffs",
                                  hint="raise strategy.max_lag, or pause the source's writers and apply again")
            n = self._apply(ctx, action, shards, diff)
            passes += 1
            moved += n
            ctx.state.checkpoint(ctx.round, action.id, {"pass": done_passes + passes}, n, 0)
            ctx.reporter.advance(action, n)
            if limit is None and lag and n < lag:
                time.sleep(IDLE_SLEEP_S)
        return {"passes": done_passes + passes, "records_moved": moved, "lag_records": lag,
                "seconds": round(time.monotonic() - started, 3), "method": method}

    def _apply(self, ctx: RunContext, action: Action, shards: list[dict[str, Any] | None],
               diff: RecordDiff) -> int:
        p = CatchUpDiffParams.from_json(action.params)
        size, keep = p.batch_size, p.before_images
        src, tgt = ctx.source(), ctx.target()
        n = 0
        try:
            for delta in diff.shards:
                if not (delta.counts.add or delta.counts.change):
                    continue
                shard = shards[delta.index]
                batches: Iterator[Batch]
                if delta.ids is not None:
                    ids = list(delta.ids)
                    batches = (src.fetch_in(shard, ids[i:i + size]) for i in range(0, len(ids), size))
                else:
                    batches = src.scan(shard, None, size)
                for batch in batches:
                    n += self._write(ctx, action, tgt, batch, keep)
            n += images.delete_listed(ctx, action, tgt, list(diff.delete_ids or []), size, advance=False)
            if type(tgt).needs_finalize:
                tgt.finalize()  # the next pass's diff must see this one's writes (files stage them)
        finally:
            src.close()
            tgt.close()
        return n

    def _write(self, ctx: RunContext, action: Action, tgt: Provider, batch: Batch, keep: bool) -> int:
        if not len(batch):
            return 0
        mapping = ctx.spec.mapping  # the mapping stays in the spec (see vecmig.actions.params)
        mapped = Batch(ids=batch.ids, vectors=batch.vectors, metadata=[mapping.apply(m) for m in batch.metadata],
                       texts=batch.texts, extra=batch.extra)
        if keep:
            ctx.state.save_before_images(ctx.round, action.id, images.capture(tgt, mapped.ids))
        tgt.upsert(mapped)  # returns once acknowledged
        return len(mapped)

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        images.undo_writes(ctx, action)
