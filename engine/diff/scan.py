"""The diff for stores that cannot hash their own records: read both sides in pages.

The source is read shard by shard and mapped as the copy maps it; each record's digest is
the one validation computes (``batch_digests``). The target is then read once, every record
matched to a source record by its key (64-bit hash, sorted array + binary search: a million
source records cost ~30 MB, not a dict of Python objects) and hashed under the source's id,
so int 5 in one store and "5" in the other compare equal when nothing else differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vecmig import namespaces
from vecmig.diff.keys import BucketSums, key_hash, record_key
from vecmig.diff.model import RecordCounts, ShardDelta
from vecmig.diff.reembedded import Reembedded
from vecmig.prefetch import prefetch
from vecmig.providers import Provider
from vecmig.records import Batch, RecordId, batch_digests
from vecmig.spec import Spec
from vecmig.tolerance import within_ulp

Progress = Callable[[int], None]


class SourceSide:
    """Every source record: its id, shard, key hash and digest, in read order."""

    def __init__(self) -> None:
        self.ids: list[RecordId] = []
        self.target_ids: list[RecordId] = []  # the id the target holds it under (the mapping's)
        self.namespaces: list[str | None] = []
        self.shard: list[int] = []
        self.keys: list[int] = []
        self.digests: list[int] = []
        self.buckets = BucketSums()
        self.total = 0
        # Where vectors are compared within a tolerance (ulp > 0) the digests leave them out and
        # the source's vectors are kept here, one row per record: n x dim x 4 bytes of memory.
        self.vectors: list[np.ndarray] = []

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.fromiter(self.keys, dtype=np.uint64, count=len(self.keys))
        order = np.argsort(keys, kind="stable")
        return keys[order], order


def _namespace(batch: Batch, by_namespace: bool) -> str | None:
    ns = batch.extra.get("namespace") if by_namespace else None
    return ns if isinstance(ns, str) else ("" if by_namespace else None)


def read_source(spec: Spec, src: Provider, shards: list[dict[str, Any] | None], batch_size: int,
                by_namespace: bool, progress: Progress, strict: bool = False, ulp: int = 0,
                reembedded: Reembedded | None = None) -> SourceSide:
    """``reembedded``: the target's vectors are a new model's, left out of every digest (and its
    ``keep_old`` field holds the source's vector, hashed as metadata)."""
    side = SourceSide()
    if reembedded is not None:
        ulp = 0  # nothing to compare value by value: the vectors are not compared at all
    for index, shard in enumerate(shards):
        for batch in prefetch(src.scan(shard, None, batch_size)):
            if not len(batch):
                continue
            # Keyed and hashed as the target must hold the record (mapped id, namespace and
            # metadata); listed under the source id, which the copy fetches from the source.
            for part in namespaces.map_batch(spec, batch):
                mapped = part.batch if reembedded is None else reembedded.as_target(part.batch)
                ns = _namespace(mapped, by_namespace)
                if ulp > 0:  # compared value by value later: digests leave the vector out
                    side.vectors.extend(np.array(mapped.vectors, dtype=np.float32, copy=True))
                digests = batch_digests(mapped, strict, vectors=ulp <= 0 and reembedded is None)
                for pos, target_id, digest in zip(part.positions, mapped.ids, digests, strict=True):
                    k = key_hash(record_key(target_id, ns))
                    side.ids.append(batch.ids[pos])
                    side.target_ids.append(target_id)
                    side.namespaces.append(ns)
                    side.shard.append(index)
                    side.keys.append(k)
                    side.digests.append(digest)
                    side.buckets.add(k & 1023, digest)
                    side.total = (side.total + digest) % (1 << 128)
            progress(len(batch))
    return side


class Outcome:
    """What the comparison found, per source record and for the target's extras."""

    def __init__(self, n: int) -> None:
        self.state = np.zeros(n, dtype=np.int8)  # 0 missing from the target, 1 equal, 2 differs
        self.extra_ids: list[tuple[RecordId, str | None]] = []
        self.extra_buckets: list[int] = []
        self.target_buckets = BucketSums()
        self.target_total = 0
        self.target_records = 0
        self.examples: dict[int, dict[str, Any]] = {}


def compare_target(tgt: Provider, side: SourceSide, batch_size: int, by_namespace: bool,
                   progress: Progress, strict: bool = False, ulp: int = 0, reembedded: bool = False) -> Outcome:
    keys_sorted, order = side.finish()
    if reembedded:
        ulp = 0
    vectors = ulp <= 0 and not reembedded
    n = len(side.ids)
    out = Outcome(n)
    for batch in prefetch(tgt.scan(None, None, batch_size)):
        if not len(batch):
            continue
        ns = _namespace(batch, by_namespace)
        tkeys = np.fromiter((key_hash(record_key(r, ns)) for r in batch.ids), dtype=np.uint64, count=len(batch))
        pos = np.searchsorted(keys_sorted, tkeys) if n else np.zeros(len(batch), dtype=np.int64)
        inside = pos < n
        found = np.zeros(len(batch), dtype=bool)
        found[inside] = keys_sorted[pos[inside]] == tkeys[inside]
        src_pos = np.where(found, order[np.minimum(pos, max(n - 1, 0))] if n else 0, -1)
        # Hashed under the source's id: the same record in another id type is not a change (unless
        # both stores keep types exactly: then 5 and "5" differ, like 1 and 1.0).
        as_source = batch if strict else Batch(
            ids=[side.target_ids[int(p)] if p >= 0 else rid for rid, p in zip(batch.ids, src_pos, strict=True)],
            vectors=batch.vectors, metadata=batch.metadata, texts=batch.texts, extra=batch.extra)
        digests = batch_digests(as_source, strict, vectors=vectors)
        for j, (p, digest) in enumerate(zip(src_pos.tolist(), digests, strict=True)):
            k = int(tkeys[j])
            out.target_buckets.add(k & 1023, digest)
            out.target_total = (out.target_total + digest) % (1 << 128)
            if p < 0:
                out.extra_ids.append((batch.ids[j], ns))
                out.extra_buckets.append(k & 1023)
            elif side.digests[p] == digest and (ulp <= 0 or within_ulp(side.vectors[p], batch.vectors[j], ulp)):
                out.state[p] = 1
            else:
                out.state[p] = 2
        out.target_records += len(batch)
        progress(len(batch))
    return out


def listable(moves: int, total: int, limit: int) -> bool:
    """Ids are listed (and fetched by id) only for a minority of a shard: past half of it, a
    range scan of the whole shard (or the store-to-store path) writes faster."""
    return moves <= limit and moves * 2 <= total


def shard_deltas(side: SourceSide, out: Outcome, shards: int, list_limit: int) -> list[ShardDelta]:
    """Counts per shard, and the ids to write (added first, then changed) where few enough."""
    shard = np.fromiter(side.shard, dtype=np.int64, count=len(side.shard))
    deltas = []
    for i in range(shards):
        mine = shard == i
        add = np.flatnonzero(mine & (out.state == 0))
        change = np.flatnonzero(mine & (out.state == 2))
        same = int(np.count_nonzero(mine & (out.state == 1)))
        counts = RecordCounts(add=len(add), change=len(change), unchanged=same)
        ids: tuple[RecordId, ...] | None = None
        if listable(len(add) + len(change), counts.add + counts.change + same, list_limit):
            ids = tuple(side.ids[int(p)] for p in (*add, *change))
        deltas.append(ShardDelta(index=i, counts=counts, ids=ids))
    return deltas
