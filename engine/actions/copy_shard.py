"""copy_shard: read → map → write, one acknowledged batch at a time, checkpointed after each.

The order inside the loop is the apply invariant: before-images are saved, the target
acknowledges the upsert, and only then is the cursor committed. A kill anywhere in between
redoes at most that one batch, which an idempotent upsert makes harmless.
"""

from __future__ import annotations

import random
import time
from typing import Any

from vecmig import namespaces, waves
from vecmig.actions import images
from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.params import EmbedParams
from vecmig.actions.reembed import reembed
from vecmig.errors import Interrupted, TerminalError, TransientError
from vecmig.model import Action
from vecmig.prefetch import prefetch
from vecmig.providers import Provider, stores_that
from vecmig.records import Batch, sparse_of
from vecmig.state.rows import ActionRow, CursorRow

MAX_ATTEMPTS = 8  # consecutive transient failures without progress before the action fails


class CopyShard(ActionKind):
    kind = "copy_shard"
    runs_beside_others = True

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        saved = ctx.state.cursor(ctx.round, action.id)
        cursor = _load_cursor(saved)
        done = saved["records_done"] if saved else 0
        ctx.reporter.start(action, action.estimate.records + (done if action.status == "resume" else 0), done)
        attempts = 0
        last_failure_at = -1
        while True:
            src: Provider | None = None
            tgt: Provider | None = None
            try:
                src, tgt = ctx.source(), ctx.target()
                cursor, moved, finished = self._copy(ctx, action, src, tgt, cursor)
                done += moved
                if not finished:
                    raise Interrupted(
                        f"interrupted: {action.id} stopped after {done:,} records, last batch checkpointed",
                        hint="run `vecmig apply` again to resume")
                break
            except TransientError as e:
                # Reconnect and continue from the last checkpoint: the batch in flight was
                # not checkpointed, so it is read and written again (idempotently). The
                # budget counts failures without progress, so a long run survives many blips.
                saved = ctx.state.cursor(ctx.round, action.id)
                cursor = _load_cursor(saved)
                done = saved["records_done"] if saved else 0
                attempts = 1 if done > last_failure_at else attempts + 1
                last_failure_at = done
                if attempts > MAX_ATTEMPTS or ctx.stop.is_set():
                    raise
                delay = e.retry_after if e.retry_after is not None else min(10.0, 0.25 * 2**attempts)
                delay *= random.uniform(0.5, 1.0)  # jitter: shards must not retry in lockstep
                ctx.reporter.note(f"{action.id}: {e.message}; retrying in {delay:.1f}s")
                time.sleep(delay)
            finally:
                if src is not None:
                    src.close()
                if tgt is not None:
                    tgt.close()
        return {"records": done}

    def _copy(self, ctx: RunContext, action: Action, src: Provider, tgt: Provider,
              cursor: Any) -> tuple[Any, int, bool]:
        keep_images = bool(action.params.get("before_images"))
        if action.params.get("fresh_target"):
            tgt.expect_new_records()
        moved = 0
        if action.params.get("ids") is not None:
            return self._copy_ids(ctx, action, src, tgt, cursor)
        # A wave writes only the records it takes: every record passes through select, so no
        # store-to-store path. The mapping stays in the spec (actions.params).
        # Nor when re-embedding: every vector is computed here, so every record passes through.
        embed = _embed_of(action)
        if ctx.spec.mapping.is_identity and not keep_images and action.params.get("wave") is None and embed is None:
            # Store-to-store transfer (e.g. raw binary COPY between two PostgreSQL tables):
            # each yield comes after the target committed the batch, so it is checkpointed
            # exactly like an acknowledged upsert.
            native = tgt.native_copy(src, action.params["shard"], cursor, int(action.params["batch_size"]))
            if native is not None:
                t_ack = time.perf_counter()
                for cursor, n, nbytes in native:
                    t0 = time.perf_counter()
                    ctx.state.checkpoint(ctx.round, action.id, cursor, n, nbytes)
                    t1 = time.perf_counter()
                    ctx.spent("native", t0 - t_ack)
                    ctx.spent("checkpoint", t1 - t0)
                    t_ack = t1
                    moved += n
                    ctx.reporter.advance(action, n)
                    if ctx.stop.is_set():
                        native.close()  # type: ignore[attr-defined]
                        return cursor, moved, False
                return cursor, moved, True
        clock = time.perf_counter
        t_wait = clock()
        for batch in prefetch(src.scan(action.params["shard"], cursor, int(action.params["batch_size"]))):
            t0 = clock()
            ctx.spent("read_wait", t0 - t_wait)
            if len(batch) == 0:
                t_wait = clock()
                continue
            parts = _parts(ctx, embed, _wave_part(ctx, action, batch))
            t1 = clock()
            _write(ctx, action, tgt, parts, keep_images)  # returns once every part is acknowledged
            t2 = clock()
            ctx.state.checkpoint(ctx.round, action.id, batch.cursor, len(batch), batch.nbytes)
            t_wait = clock()
            ctx.spent("map", t1 - t0)
            ctx.spent("write", t2 - t1)
            ctx.spent("checkpoint", t_wait - t2)
            cursor = batch.cursor
            moved += len(batch)
            ctx.reporter.advance(action, len(batch))
            if ctx.stop.is_set():
                return cursor, moved, False
        return cursor, moved, True

    def _copy_ids(self, ctx: RunContext, action: Action, src: Provider, tgt: Provider,
                  cursor: Any) -> tuple[Any, int, bool]:
        """The delta: only the ids the plan's diff found missing or different, fetched from the
        source by id in plan order. The cursor is how many of the listed ids are done, so a
        resumed run starts at the first batch not acknowledged."""
        ids: list[Any] = list(action.params["ids"])
        shard = action.params.get("shard")
        size = int(action.params["batch_size"])
        keep_images = bool(action.params.get("before_images"))
        pos = int(cursor.get("pos", 0)) if isinstance(cursor, dict) else 0
        moved = 0
        while pos < len(ids):
            chunk = ids[pos:pos + size]
            t0 = time.perf_counter()
            # An id the source no longer holds is not written: the next plan's diff sees it as extra.
            batch = src.fetch_in(shard, chunk)
            t1 = time.perf_counter()
            ctx.spent("read_wait", t1 - t0)
            batch = _wave_part(ctx, action, batch)
            if len(batch):
                parts = _parts(ctx, _embed_of(action), batch)
                t1 = time.perf_counter()
                _write(ctx, action, tgt, parts, keep_images)  # returns once every part is acknowledged
                ctx.spent("write", time.perf_counter() - t1)
            pos += len(chunk)
            t2 = time.perf_counter()
            ctx.state.checkpoint(ctx.round, action.id, {"pos": pos}, len(chunk), batch.nbytes if len(batch) else 0)
            ctx.spent("checkpoint", time.perf_counter() - t2)
            moved += len(chunk)
            ctx.reporter.advance(action, len(chunk))
            if ctx.stop.is_set():
                return {"pos": pos}, moved, pos >= len(ids)
        return {"pos": pos}, moved, True

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        images.undo_writes(ctx, action)


def _write(ctx: RunContext, action: Action, tgt: Provider, parts: list[Batch], keep_images: bool) -> None:
    """Upsert the mapped parts of one source batch (one per target namespace where the mapping
    routes records by a field): the batch's checkpoint follows only once all are acknowledged."""
    by_ns = namespaces.target_by_namespace(ctx.spec)
    journal = bool(action.params.get("journal"))
    for part in parts:
        if not len(part):
            continue  # a wave that takes none of this batch
        if not type(tgt).capabilities.sparse:
            _refuse_sparse(part, tgt)
        ns = part.extra.get("namespace") if by_ns else None
        space = ns if isinstance(ns, str) else None
        if keep_images:
            ctx.state.save_before_images(ctx.round, action.id, images.capture(tgt, part.ids, space))
        elif journal:
            # A wave into a collection vecmig created: nothing was there, so the ids alone are the
            # images (no read); `rollback --wave` deletes exactly these.
            ctx.state.save_before_images(ctx.round, action.id, images.absent(part.ids, space))
        tgt.upsert(part)  # returns once acknowledged


def _embed_of(action: Action) -> EmbedParams | None:
    embed = action.params.get("embed")
    return None if embed is None else EmbedParams.from_json(embed)


def _parts(ctx: RunContext, embed: EmbedParams | None, batch: Batch) -> list[Batch]:
    """``batch`` mapped for the target, one part per target namespace; with ``transform.embed``
    the new model's vectors replace the old (the cache is filled before this returns, so before
    the write: a batch redone after a kill is served from it)."""
    mapped = namespaces.map_batch(ctx.spec, batch)
    if embed is None:
        return [m.batch for m in mapped]
    return reembed(ctx, embed, batch, mapped)


def _wave_part(ctx: RunContext, action: Action, batch: Batch) -> Batch:
    """The records of ``batch`` the action's wave takes (all of them outside strategy phased)."""
    return waves.select(action.params.get("wave"), batch, ctx.spec.source.namespace)


def _refuse_sparse(batch: Batch, tgt: Provider) -> None:
    """A target that cannot hold sparse values would drop them without a word: fail instead,
    naming the record (the plan warned with VM104 when its sample showed any)."""
    for rid, sparse in zip(batch.ids, sparse_of(batch), strict=True):
        if sparse is not None:
            raise TerminalError(
                f"record {rid!r} has sparse values, which {tgt.name} cannot store",
                hint="migrate into a target that holds sparse values "
                     f"({stores_that(lambda c: c.capabilities.sparse)}), or remove them from the source",
            )


def _load_cursor(saved: CursorRow | None) -> Any:
    import json

    return json.loads(saved["cursor_json"]) if saved and saved["cursor_json"] else None
