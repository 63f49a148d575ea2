"""The diff pushed down to two stores that hash their own records under one scheme.

Per shard, each server returns ``(rows, digest)`` for each of ``BUCKETS`` pieces of the shard
(cut by a hash of the id) in one query; only the pieces whose digests differ are then
listed, id and record hash, on both sides (data-diff's bisection, one level deep and cut by
hash rather than by key range: a few scattered edits touch a few pieces wherever they are,
and a piece is ~1/1000 of a shard, so listing it is cheap). Both sides of a shard run at
once, each on its own connection, and shards run on ``concurrency`` workers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vecmig.diff.keys import BucketSums
from vecmig.diff.model import RecordCounts
from vecmig.providers import Provider
from vecmig.providers.base import BucketedDigest
from vecmig.records import RecordId, same_record_key

Progress = Callable[[int], None]


@dataclass
class ShardResult:
    counts: RecordCounts
    write_ids: list[RecordId]  # added, then changed
    extra_ids: list[RecordId]
    # bucket of every differing record (source ids for add/change, target ids for extras)
    bucket_of: dict[str, int] = field(default_factory=dict)
    source_rows: int = 0
    target_rows: int = 0
    listed: int = 0  # rows listed (both sides)
    source_buckets: dict[int, tuple[int, int]] = field(default_factory=dict)
    target_buckets: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Per fine bucket (rows, version sum) of both sides, where the diff read row versions.
    source_versions: dict[int, tuple[int, int]] = field(default_factory=dict)
    target_versions: dict[int, tuple[int, int]] = field(default_factory=dict)


def supports(src: Provider, tgt: Provider) -> tuple[BucketedDigest, BucketedDigest] | None:
    """Both sides' digests when they can diff on the servers (same bucketed scheme)."""
    ds, dt = src.server_digest(), tgt.server_digest()
    if not isinstance(ds, BucketedDigest) or not isinstance(dt, BucketedDigest):
        return None
    if ds.scheme != dt.scheme:
        return None
    return ds, dt


def diff_shard(ds: BucketedDigest, dt: BucketedDigest, shard: dict[str, Any] | None,
               side: ThreadPoolExecutor) -> ShardResult:
    theirs: Future[dict[int, tuple[int, int]]] = side.submit(ds.buckets, shard)
    try:
        tb = dt.buckets(shard)
    finally:
        sb = theirs.result()
    same = sum(n for b, (n, d) in sb.items() if tb.get(b) == (n, d))
    differ = sorted(b for b in set(sb) | set(tb) if sb.get(b) != tb.get(b))
    result = ShardResult(RecordCounts(unchanged=same), [], [], source_rows=sum(n for n, _ in sb.values()),
                         target_rows=sum(n for n, _ in tb.values()), source_buckets=sb, target_buckets=tb)
    if not differ:
        return result
    listed: Future[list[tuple[Any, int, int]]] = side.submit(ds.records, shard, differ)
    try:
        trows = dt.records(shard, differ)
    finally:
        srows = listed.result()
    compare_rows(result, srows, trows, same)
    return result


def compare_rows(result: ShardResult, srows: list[tuple[Any, int, int]], trows: list[tuple[Any, int, int]],
                 unchanged_elsewhere: int) -> None:
    """Match the listed ``(id, bucket, digest)`` rows of both sides by key into ``result``:
    added, changed, extras; ``unchanged_elsewhere`` source records were not listed (equal)."""
    target = {same_record_key(rid): (rid, b, h) for rid, b, h in trows}
    add: list[RecordId] = []
    change: list[RecordId] = []
    unchanged = 0
    seen: set[str] = set()
    for rid, b, h in sorted(srows, key=lambda r: same_record_key(r[0])):
        key = same_record_key(rid)
        seen.add(key)
        got = target.get(key)
        if got is None:
            add.append(rid)
        elif got[2] != h:
            change.append(rid)
        else:
            unchanged += 1
            continue
        result.bucket_of[key] = b
    extras = [(rid, b) for key, (rid, b, _) in sorted(target.items()) if key not in seen]
    for rid, b in extras:
        result.bucket_of[same_record_key(rid)] = b
    result.counts = RecordCounts(add=len(add), change=len(change), delete=len(extras),
                                 unchanged=unchanged_elsewhere + unchanged)
    result.write_ids = add + change
    result.extra_ids = [rid for rid, _ in extras]
    result.listed = len(srows) + len(trows)


def bucket_totals(results: list[ShardResult], which: str) -> BucketSums:
    sums = BucketSums()
    for r in results:
        for b, (_, d) in getattr(r, which).items():
            sums.add(b, d)
    return sums
