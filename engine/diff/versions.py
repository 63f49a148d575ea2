"""The diff's shortcut: hash only the buckets whose records were written since a passing
validation recorded the stores' row versions.

A passing completeness validation between two stores that offer :class:`VersionedDigest`
records, per fine bucket (``buckets`` of them, a power of two refining the digest's 1024),
both sides' version sums and the low 64 bits of the bucket's content digest (source and target
held the same records then). Later, the diff (and the next validation) first asks both stores
for their version sums only: a bucket whose sums equal the baseline on *both* sides holds what
it held then on both sides, so it is equal and its digest is the baseline's; only the buckets
whose versions moved are hashed and listed, record by record, as the full diff does. Buckets
whose server digests differed although validation passed (a value the record-by-record check
reads as equal, e.g. ``''`` vs NULL text) are kept in ``unequal`` and always hashed, so the
shortcut finds exactly what the full diff finds.

A baseline is trusted only under the version schemes it was recorded with (the store pins in
them what could change a value without moving a version; see the pgvector ``digest.py``).
Versions are read before the digests of the moved buckets (or in the same scan): a write in
between moves the versions again, so a recorded ``(versions, digest)`` pair can only be
older-than-the-versions, which the next diff sees as moved, never the other way round.

Drift is exact at bucket level: a differing record whose bucket's target versions moved while
the source's did not was changed in the target outside vecmig.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vecmig.diff import pushdown
from vecmig.diff.keys import BUCKETS, LO64, BucketSums
from vecmig.diff.model import RecordCounts
from vecmig.providers import Provider
from vecmig.providers.base import VersionedDigest

# Records per fine bucket aimed at: 1000 scattered edits in 1M records then touch ~6 % of
# 16k buckets (~60k records hashed per side) instead of ~62 % of 1024. The cap bounds what a
# validation result stores (24 bytes per bucket, compressed: ~0.4 MB at 16k).
ROWS_PER_BUCKET = 64
MAX_BUCKETS = 1 << 14

U64 = npt.NDArray[np.uint64]
Sides = Callable[[], tuple[Provider, Provider]]


def bucket_count(rows: int) -> int:
    n = BUCKETS
    while n < MAX_BUCKETS and n * ROWS_PER_BUCKET < rows:
        n *= 2
    return n


def pair_of(src: Provider, tgt: Provider) -> tuple[VersionedDigest, VersionedDigest] | None:
    """Both sides' digests when both offer versions under one digest scheme."""
    ds, dt = src.server_digest(), tgt.server_digest()
    if not isinstance(ds, VersionedDigest) or not isinstance(dt, VersionedDigest) or ds.scheme != dt.scheme:
        return None
    return ds, dt


@dataclass(frozen=True, eq=False)
class VersionBaseline:
    """Per fine bucket: both sides' version sums and the (shared) content digest, low 64 bits."""

    buckets: int
    source_scheme: str
    target_scheme: str
    source: U64
    target: U64
    digests: U64
    unequal: frozenset[int] = frozenset()

    def to_json(self) -> dict[str, Any]:
        raw = np.concatenate([self.source, self.target, self.digests]).astype("<u8").tobytes()
        return {"buckets": self.buckets, "source_scheme": self.source_scheme, "target_scheme": self.target_scheme,
                "data": base64.b64encode(zlib.compress(raw, 6)).decode("ascii"), "unequal": sorted(self.unequal)}

    @classmethod
    def from_json(cls, d: Any) -> VersionBaseline | None:
        """None for anything malformed: the full hash then decides, as without a baseline."""
        try:
            n = int(d["buckets"])
            raw = np.frombuffer(zlib.decompress(base64.b64decode(d["data"])), dtype="<u8").astype(np.uint64)
            if len(raw) != 3 * n or n < BUCKETS or n & (n - 1):
                return None
            return cls(n, str(d["source_scheme"]), str(d["target_scheme"]), raw[:n], raw[n:2 * n], raw[2 * n:],
                       frozenset(int(b) for b in d.get("unequal", [])))
        except (KeyError, TypeError, ValueError, zlib.error):
            return None


def usable(baseline: dict[str, Any] | None, digest_scheme: str, ds: VersionedDigest,
           dt: VersionedDigest) -> VersionBaseline | None:
    """The baseline's versions, when they compare with what both stores report now."""
    if not baseline or baseline.get("scheme") != digest_scheme:
        return None
    found = VersionBaseline.from_json(baseline.get("versions"))
    if found is None:
        return None
    if ds.version_scheme(found.buckets) != found.source_scheme:
        return None
    if dt.version_scheme(found.buckets) != found.target_scheme:
        return None
    return found


@dataclass
class Shortcut:
    """What one shortcut pass found, per shard and per fine bucket."""

    buckets: int
    shards: list[pushdown.ShardResult]
    source_versions: U64
    target_versions: U64
    moved: npt.NDArray[np.bool_]
    source_digests: U64  # low 64 bits per fine bucket: the baseline's where nothing moved
    target_digests: U64
    source_moved: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    target_moved: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def unequal(self) -> npt.NDArray[np.bool_]:
        """Moved buckets whose records the servers hash differently on the two sides."""
        rows_s = np.zeros(self.buckets, dtype=np.int64)
        rows_t = np.zeros(self.buckets, dtype=np.int64)
        for r in self.shards:
            for bucket_sums, rows in ((r.source_buckets, rows_s), (r.target_buckets, rows_t)):
                for b, (c, _) in bucket_sums.items():
                    rows[b] += c
        differ: npt.NDArray[np.bool_] = (self.source_digests != self.target_digests) | (rows_s != rows_t)
        return self.moved & differ

    @property
    def hashed_buckets(self) -> int:
        return int(self.moved.sum())

    @property
    def rows_hashed(self) -> tuple[int, int]:
        return (sum(sum(n for n, _ in r.source_buckets.values()) for r in self.shards),
                sum(sum(n for n, _ in r.target_buckets.values()) for r in self.shards))

    def coarse(self, which: str) -> BucketSums:
        """The 1024-bucket sums (low 64 bits exact) drift and the scan path compare."""
        out = BucketSums()
        digests = self.source_digests if which == "source" else self.target_digests
        folded = np.zeros(BUCKETS, dtype=np.uint64)
        np.add.at(folded, np.arange(self.buckets) & (BUCKETS - 1), digests)  # wraps mod 2**64
        for b, v in enumerate(folded.tolist()):
            out.sums[b] = int(v)
        return out


@contextmanager
def _pairs(sides: Sides, workers: int) -> Iterator[list[tuple[VersionedDigest, VersionedDigest]]]:
    """``workers`` connected pairs, opened at once and kept for every phase of one pass
    (connecting and reading the catalog costs about as much as a shard's versions)."""
    opened: list[tuple[Provider, Provider]] = []
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-diff-open") as pool:
            for f in [pool.submit(sides) for _ in range(workers)]:
                opened.append(f.result())
        pairs = []
        for src, tgt in opened:
            pair = pair_of(src, tgt)
            if pair is None:
                raise RuntimeError("a store stopped offering its row versions during the diff")
            pairs.append(pair)
        yield pairs
    finally:
        for src, tgt in opened:
            src.close()
            tgt.close()


def _both(side: ThreadPoolExecutor, on_source: Callable[[], Any], on_target: Callable[[], Any]) -> tuple[Any, Any]:
    theirs: Future[Any] = side.submit(on_source)
    try:
        mine = on_target()
    finally:
        got = theirs.result()
    return got, mine


def _per_shard(pairs: list[tuple[VersionedDigest, VersionedDigest]], count: int,
               fn: Callable[[VersionedDigest, VersionedDigest, int, ThreadPoolExecutor], Any]) -> list[Any]:
    """``fn`` for every shard, the shards dealt round-robin to the pairs, each pair's source
    side on a thread of its own so both servers work at once."""
    chunks = [list(range(i, count, len(pairs))) for i in range(len(pairs))]
    out: dict[int, Any] = {}

    def work(pair: tuple[VersionedDigest, VersionedDigest], indexes: list[int]) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecmig-diff-source") as s:
            for i in indexes:
                out[i] = fn(pair[0], pair[1], i, s)

    with ThreadPoolExecutor(max_workers=len(pairs), thread_name_prefix="vecmig-diff") as pool:
        for f in [pool.submit(work, pair, c) for pair, c in zip(pairs, chunks, strict=True) if c]:
            f.result()
    return [out[i] for i in range(count)]


def _dense(by_bucket: dict[int, tuple[int, int]], n: int) -> tuple[npt.NDArray[np.int64], U64]:
    rows = np.zeros(n, dtype=np.int64)
    sums = np.zeros(n, dtype=np.uint64)
    for b, (count, v) in by_bucket.items():
        rows[b] = count
        sums[b] = np.uint64(v & LO64)
    return rows, sums


def run(sides: Sides, shards: list[dict[str, Any] | None], base: VersionBaseline, workers: int,
        progress: Callable[[int], None] | None = None) -> Shortcut:
    """Versions of every shard on both sides, then the moved buckets listed and compared."""
    with _pairs(sides, max(1, min(workers, len(shards)))) as pairs:
        return _run(pairs, shards, base, progress or (lambda k: None))


def _run(pairs: list[tuple[VersionedDigest, VersionedDigest]], shards: list[dict[str, Any] | None],
         base: VersionBaseline, step: Callable[[int], None]) -> Shortcut:
    n = base.buckets
    versions: list[tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]] = _per_shard(
        pairs, len(shards),
        lambda ds, dt, i, s: _both(s, lambda: ds.versions(shards[i], n), lambda: dt.versions(shards[i], n)))
    ver_s = np.zeros(n, dtype=np.uint64)
    ver_t = np.zeros(n, dtype=np.uint64)
    for sv, tv in versions:
        ver_s += _dense(sv, n)[1]  # uint64 wraps: the sum mod 2**64, as the stores define it
        ver_t += _dense(tv, n)[1]
    source_moved = ver_s != base.source
    target_moved = ver_t != base.target
    moved = source_moved | target_moved
    if base.unequal:
        moved[list(base.unequal)] = True
    chosen = np.flatnonzero(moved).tolist()

    def listed(ds: VersionedDigest, dt: VersionedDigest, i: int, s: ThreadPoolExecutor) -> pushdown.ShardResult:
        sv, tv = versions[i]
        result = pushdown.ShardResult(RecordCounts(), [], [], source_rows=sum(c for c, _ in sv.values()),
                                      target_rows=sum(c for c, _ in tv.values()), source_versions=sv,
                                      target_versions=tv)
        if chosen:
            srows, trows = _both(s, lambda: ds.bucket_records(shards[i], n, chosen),
                                 lambda: dt.bucket_records(shards[i], n, chosen))
        else:
            srows, trows = [], []
        for rows, into in ((srows, result.source_buckets), (trows, result.target_buckets)):
            for _, b, h in rows:
                c, d = into.get(b, (0, 0))
                into[b] = (c + 1, (d + h) % (1 << 128))
        pushdown.compare_rows(result, srows, trows, result.source_rows - len(srows))
        step(result.source_rows)
        return result

    if chosen:
        results: list[pushdown.ShardResult] = _per_shard(pairs, len(shards), listed)
    else:  # nothing written since the baseline on either side: no record to list
        with ThreadPoolExecutor(max_workers=1) as idle:  # given no work: starts no thread
            results = [listed(pairs[0][0], pairs[0][1], i, idle) for i in range(len(shards))]
    dig_s = base.digests.copy()
    dig_t = base.digests.copy()
    dig_s[moved] = 0
    dig_t[moved] = 0
    for r in results:
        for bucket_sums, into in ((r.source_buckets, dig_s), (r.target_buckets, dig_t)):
            for b, (_, d) in bucket_sums.items():
                into[b] = np.uint64((int(into[b]) + d) & LO64)
    return Shortcut(n, results, ver_s, ver_t, moved, dig_s, dig_t, source_moved, target_moved)


def recorded(n: int, source_scheme: str, target_scheme: str, source: U64, target: U64, digests: U64,
             unequal: npt.NDArray[np.bool_]) -> dict[str, Any]:
    return VersionBaseline(n, source_scheme, target_scheme, source, target, digests,
                           frozenset(np.flatnonzero(unequal).tolist())).to_json()


def full(sides: Sides, shards: list[dict[str, Any] | None], n: int, workers: int) -> list[
        tuple[dict[int, tuple[int, int, int]], dict[int, tuple[int, int, int]]]]:
    """Per shard, both sides' ``(rows, digest, versions)`` per fine bucket, from one scan each."""
    with _pairs(sides, max(1, min(workers, len(shards)))) as pairs:
        return _per_shard(pairs, len(shards), lambda ds, dt, i, s: _both(
            s, lambda: ds.digests_and_versions(shards[i], n), lambda: dt.digests_and_versions(shards[i], n)))
