"""validate_completeness: counts, id sets and per-shard checksums, compared on both sides.

The source is read again (it is the truth, and may have changed since the copy); each
shard's ids are then fetched from the target. Extras in the target are found by count and
then located by id. A mismatch fails the apply before any cutover, naming shard and ids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import ValidationFailed
from vecmig.model import Action
from vecmig.prefetch import prefetch
from vecmig.records import Batch, Checksum, RecordId, batch_digests, same_record_key

SHOW_IDS = 10


class ValidateCompleteness(ActionKind):
    kind = "validate_completeness"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        batch_size = ctx.spec.strategy.batch_size
        shards = action.params["shards"] or [None]
        shards_out: list[dict[str, Any]] = []
        problems: list[str] = []
        source_count = 0
        total_src = Checksum()
        total_tgt = Checksum()
        missing_total = 0
        # Shards are checked in parallel, each worker on its own connections: reading the
        # source, fetching from the target and hashing overlap instead of taking turns.
        workers = max(1, min(ctx.spec.strategy.concurrency, len(shards)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-validate") as pool:
            outcomes = list(pool.map(lambda s: _check_shard(ctx, action, s, batch_size), shards))
        for i, (s_sum, t_sum, missing, differ) in enumerate(outcomes):
            source_count += s_sum.count
            missing_total += len(missing)
            total_src.merge(s_sum)
            total_tgt.merge(t_sum)
            shards_out.append({"shard": i, "source": s_sum.to_json(), "target": t_sum.to_json(),
                               "missing": len(missing), "different": len(differ)})
            if missing or differ:
                problems.append(f"shard {i}: {len(missing)} missing {_ids(missing)}, "
                                f"{len(differ)} different {_ids(differ)}")
        tgt = ctx.target()
        try:
            target_count = tgt.count()
            extra: list[RecordId] = []
            # Every target record not matched to a source id is an extra; count first, look only if needed.
            if target_count != source_count - missing_total:
                # Only now are the ids worth holding in memory (peak RSS stays flat otherwise).
                # By the id's text: a target that keeps only strings (Pinecone) lists int 5 as "5".
                src = ctx.source()
                try:
                    known = {same_record_key(rid) for b in src.scan(None, None, batch_size) for rid in b.ids}
                finally:
                    src.close()
                extra = [rid for b in tgt.scan(None, None, batch_size) for rid in b.ids
                         if same_record_key(rid) not in known]
                if extra:
                    problems.append(f"target has {len(extra)} records not in the source {_ids(extra)}")
        finally:
            tgt.close()
        result = {"source": total_src.to_json(), "target": total_tgt.to_json(), "target_count": target_count,
                  "extra": len(extra), "shards": shards_out, "ok": not problems}
        if problems:
            raise ValidationFailed("completeness check failed: " + "; ".join(problems[:5]),
                                   hint="nothing was switched; run `vecmig apply` again to re-copy, "
                                        "or `vecmig rollback` to undo")
        return result


def _check_shard(ctx: RunContext, action: Action, shard: dict[str, Any] | None,
                 batch_size: int) -> tuple[Checksum, Checksum, list[RecordId], list[RecordId]]:
    mapping = ctx.spec.mapping
    s_sum, t_sum = Checksum(), Checksum()
    missing: list[RecordId] = []
    differ: list[RecordId] = []
    src, tgt = ctx.source(), ctx.target()
    try:
        for batch in prefetch(src.scan(shard, None, batch_size)):
            # extra travels along: sparse values are part of what must match.
            mapped = Batch(ids=batch.ids, vectors=batch.vectors,
                           metadata=[mapping.apply(m) for m in batch.metadata], texts=batch.texts,
                           extra=batch.extra)
            mine = batch_digests(mapped)
            s_sum.add_digests(mine)
            got = tgt.fetch(batch.ids)
            got_digests = batch_digests(got)
            t_sum.add_digests(got_digests)
            theirs = dict(zip(got.ids, got_digests, strict=True))
            for rid, d_mine in zip(mapped.ids, mine, strict=True):
                d = theirs.get(rid)
                if d is None:
                    missing.append(rid)
                elif d != d_mine:
                    differ.append(rid)
            ctx.reporter.advance(action, len(batch))
    finally:
        src.close()
        tgt.close()
    return s_sum, t_sum, missing, differ


def _ids(ids: list[RecordId]) -> str:
    if not ids:
        return ""
    shown = ", ".join(map(str, ids[:SHOW_IDS]))
    return f"(ids {shown}{', …' if len(ids) > SHOW_IDS else ''})"
