"""The record-level diff: which source records the target lacks, which differ, which target
records the source lacks, and which changed in the target outside vecmig.

Pushed down to the stores where both hash their own records under one scheme
(``pushdown.py``), else both sides are read in pages and hashed here (``scan.py``). The
planner puts the counts into the plan and the ids into the actions, so apply moves only the
delta. Read-only: it runs inside ``plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vecmig.diff import drift, pushdown, reembedded, scan, versions
from vecmig.diff.keys import BUCKETS, LO64, bucket_of, record_key, scan_scheme, strict_pair
from vecmig.diff.model import Drift, RecordCounts, RecordDiff, ShardDelta
from vecmig.namespaces import target_by_namespace
from vecmig.providers import Provider, provider_class
from vecmig.providers.base import BucketedDigest
from vecmig.records import RecordId
from vecmig.spec import Spec, StoreSpec
from vecmig.tolerance import pair_ulp

__all__ = ["Drift", "RecordCounts", "RecordDiff", "ShardDelta", "diff_records"]

# Ids a shard's copy action lists (added + changed); past this the shard is copied whole,
# which a range scan (or the store-to-store path) does faster than fetching by id.
LIST_LIMIT = 50_000
# Target ids the delete action lists; past this it finds the extras again by reading both sides.
DELETE_LIST_LIMIT = 100_000

Progress = Callable[[int], None]


def _open(store: StoreSpec) -> Provider:
    p = provider_class(store.provider)(store)
    p.connect()
    return p


def _range_shards(shards: list[dict[str, Any] | None]) -> bool:
    return all(s is None or set(s) <= {"lo", "hi", "records"} for s in shards)


def diff_records(spec: Spec, shards: list[dict[str, Any] | None], baseline: dict[str, Any] | None = None,
                 progress: Progress | None = None, versions_baseline: dict[str, Any] | None = None, *,
                 batch_size: int | None = None, concurrency: int | None = None) -> RecordDiff:
    """``baseline``: what drift is told against (vecmig.diff.baseline.last_baseline);
    ``versions_baseline``: the newest baseline with row versions (``last_versions``), which
    lets the pushdown hash only the buckets written since (vecmig.diff.versions).
    ``batch_size`` and ``concurrency``: an action's values frozen in its plan (default: the spec's,
    as planning reads them)."""
    step = progress or (lambda n: None)
    batch = batch_size or spec.strategy.batch_size
    workers = concurrency or spec.strategy.concurrency
    shards = shards or [None]
    src, tgt = _open(spec.source), _open(spec.target)
    try:
        pair = None
        # Server digests hash exact bytes: a pair compared within a tolerance is read and compared here.
        ulp = pair_ulp(src, tgt)
        # Re-embedded vectors are not compared, and server digests hash them: read and compare here.
        reemb = reembedded.of_spec(spec)
        if (ulp <= 0 and reemb is None and spec.mapping.is_identity and _range_shards(shards)
                and not target_by_namespace(spec)):
            try:
                pair = pushdown.supports(src, tgt)
            except Exception:  # an optimisation: the scan decides
                pair = None
        if pair is not None:
            recorded = versions_baseline or baseline
            found = _shortcut_base(src, tgt, recorded)
            if found is not None and recorded is not None:
                try:
                    same = baseline is not None and baseline.get("versions") == recorded["versions"]
                    return _versioned(spec, shards, pair[0].bucket_scheme(), found, baseline if same else None,
                                      baseline, step, workers)
                except Exception:  # an optimisation: the full hash decides
                    pass
            return _pushdown(spec, shards, pair, baseline, step, workers)
        return _scan(spec, src, tgt, shards, baseline, step, batch, ulp, reemb)
    finally:
        src.close()
        tgt.close()


def _scan(spec: Spec, src: Provider, tgt: Provider, shards: list[dict[str, Any] | None],
          baseline: dict[str, Any] | None, step: Progress, batch: int, ulp: int = 0,
          reemb: reembedded.Reembedded | None = None) -> RecordDiff:
    by_ns = target_by_namespace(spec)
    strict = strict_pair(spec)
    side = scan.read_source(spec, src, shards, batch, by_ns, step, strict, ulp, reemb)
    out = scan.compare_target(tgt, side, batch, by_ns, step, strict, ulp, reemb is not None)
    deltas = scan.shard_deltas(side, out, len(shards), LIST_LIMIT)
    differing: list[tuple[RecordId, int]] = [
        (side.ids[p], side.keys[p] & 1023) for p in (out.state != 1).nonzero()[0].tolist()]
    differing += [(rid, b) for (rid, _), b in zip(out.extra_ids, out.extra_buckets, strict=True)]
    scheme = scan_scheme(strict, ulp, reemb is not None)
    found = drift.classify(baseline, scheme, side.buckets, out.target_buckets, differing)
    extra = len(out.extra_ids)
    # Where records are kept per namespace, an extra is (namespace, id): deleting the id alone
    # would remove its namesakes in every namespace.
    listed = [(ns, rid) if by_ns else rid for rid, ns in out.extra_ids]
    ids = tuple(listed) if extra <= DELETE_LIST_LIMIT else None
    return RecordDiff(
        method="scan", shards=tuple(deltas), delete_ids=ids, delete_count=extra,
        source_records=len(side.ids), target_records=out.target_records, drift=found,
        reads={"source_records": len(side.ids), "target_records": out.target_records},
        source_digest=f"{len(side.ids)}:{side.total:032x}",
        target_digest=f"{out.target_records}:{out.target_total:032x}",
        buckets=out.target_buckets.encode(), bucket_scheme=scheme)


def _pushdown(spec: Spec, shards: list[dict[str, Any] | None], pair: tuple[BucketedDigest, BucketedDigest],
              baseline: dict[str, Any] | None, step: Progress, concurrency: int) -> RecordDiff:
    scheme = pair[0].bucket_scheme()
    workers = max(1, min(concurrency, len(shards), 4))
    chunks = [list(range(i, len(shards), workers)) for i in range(workers)]
    results: dict[int, pushdown.ShardResult] = {}

    def work(indexes: list[int]) -> None:
        s, t = _open(spec.source), _open(spec.target)
        try:
            pair_here = pushdown.supports(s, t)
            if pair_here is None:
                raise RuntimeError("a store stopped offering its bucketed digest during the diff")
            ds, dt = pair_here
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecmig-diff-source") as side:
                for i in indexes:
                    results[i] = pushdown.diff_shard(ds, dt, shards[i], side)
                    step(results[i].source_rows)
        finally:
            s.close()
            t.close()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-diff") as pool:
        for f in [pool.submit(work, c) for c in chunks]:
            f.result()
    ordered = [results[i] for i in range(len(shards))]
    deltas = []
    extras: list[RecordId] = []
    for i, r in enumerate(ordered):
        c = r.counts
        total = c.add + c.change + c.unchanged
        listed = tuple(r.write_ids) if scan.listable(len(r.write_ids), total, LIST_LIMIT) else None
        deltas.append(ShardDelta(index=i, counts=RecordCounts(add=c.add, change=c.change, unchanged=c.unchanged),
                                 ids=listed))
        extras.extend(r.extra_ids)
    source_sums = pushdown.bucket_totals(ordered, "source_buckets")
    target_sums = pushdown.bucket_totals(ordered, "target_buckets")
    differing = [(rid, r.bucket_of[record_key(rid)]) for r in ordered for rid in (*r.write_ids, *r.extra_ids)]
    found = drift.classify(baseline, scheme, source_sums, target_sums, differing)
    src_rows = sum(r.source_rows for r in ordered)
    tgt_rows = sum(r.target_rows for r in ordered)
    # Low 64 bits: what the versions shortcut can add up from its buckets, so both give one value.
    total_s = sum(sum(d for _, d in r.source_buckets.values()) for r in ordered) & LO64
    total_t = sum(sum(d for _, d in r.target_buckets.values()) for r in ordered) & LO64
    return RecordDiff(
        method="server-hash", shards=tuple(deltas),
        delete_ids=tuple(extras) if len(extras) <= DELETE_LIST_LIMIT else None, delete_count=len(extras),
        source_records=src_rows, target_records=tgt_rows, drift=found,
        reads={"source_rows_hashed": src_rows, "target_rows_hashed": tgt_rows,
               "rows_listed": sum(r.listed for r in ordered)},
        source_digest=f"{src_rows}:{total_s:016x}", target_digest=f"{tgt_rows}:{total_t:016x}",
        buckets=target_sums.encode(), bucket_scheme=scheme)


def current_shards(spec: Spec, planned: list[dict[str, Any] | None],
                   shard_size: int | None = None) -> list[dict[str, Any] | None]:
    """The shards to read the source by now: the planned ones, unless they are positions in a
    source that may have changed since (files), which are cut again (the same cut when not),
    by ``shard_size`` (an action's, frozen in its plan; default: the spec's)."""
    cls = provider_class(spec.source.provider)
    if not cls.positional_shards:
        return planned
    src = _open(spec.source)
    try:
        inventory = src.inventory()
        return list(src.shards(inventory, shard_size or spec.strategy.shard_size)) if inventory.exists else [None]
    finally:
        src.close()


def _shortcut_base(src: Provider, tgt: Provider, recorded: dict[str, Any] | None) -> versions.VersionBaseline | None:
    try:
        pair = versions.pair_of(src, tgt)
        if pair is None:
            return None
        return versions.usable(recorded, pair[1].bucket_scheme(), *pair)
    except Exception:  # an optimisation: the full hash decides
        return None


def _versioned(spec: Spec, shards: list[dict[str, Any] | None], scheme: str, base: versions.VersionBaseline,
               exact: dict[str, Any] | None, baseline: dict[str, Any] | None, step: Progress,
               concurrency: int) -> RecordDiff:
    """The pushdown against recorded row versions; ``exact``: the drift baseline, when it is
    the one whose versions are used (drift is then told bucket by bucket from the versions)."""
    workers = max(1, min(concurrency, len(shards), 4))
    sc = versions.run(lambda: (_open(spec.source), _open(spec.target)), shards, base, workers, step)
    deltas = []
    extras: list[RecordId] = []
    for i, r in enumerate(sc.shards):
        c = r.counts
        total = c.add + c.change + c.unchanged
        listed = tuple(r.write_ids) if scan.listable(len(r.write_ids), total, LIST_LIMIT) else None
        deltas.append(ShardDelta(index=i, counts=RecordCounts(add=c.add, change=c.change, unchanged=c.unchanged),
                                 ids=listed))
        extras.extend(r.extra_ids)
    differing = [(rid, r.bucket_of[record_key(rid)]) for r in sc.shards for rid in (*r.write_ids, *r.extra_ids)]
    if exact is not None:
        found = _exact_drift(sc, differing)
    else:
        found = drift.classify(baseline, scheme, sc.coarse("source"), sc.coarse("target"),
                               [(rid, b & (BUCKETS - 1)) for rid, b in differing])
    src_rows = sum(r.source_rows for r in sc.shards)
    tgt_rows = sum(r.target_rows for r in sc.shards)
    s_hashed, t_hashed = sc.rows_hashed
    return RecordDiff(
        method="server-hash", shards=tuple(deltas),
        delete_ids=tuple(extras) if len(extras) <= DELETE_LIST_LIMIT else None, delete_count=len(extras),
        source_records=src_rows, target_records=tgt_rows, drift=found,
        reads={"source_rows_hashed": s_hashed, "target_rows_hashed": t_hashed,
               "rows_listed": sum(r.listed for r in sc.shards), "buckets": sc.buckets,
               "buckets_hashed": sc.hashed_buckets},
        source_digest=f"{src_rows}:{int(sc.source_digests.sum(dtype='uint64')):016x}",
        target_digest=f"{tgt_rows}:{int(sc.target_digests.sum(dtype='uint64')):016x}",
        buckets=sc.coarse("target").encode(), bucket_scheme=scheme)


def _exact_drift(sc: versions.Shortcut, differing: list[tuple[RecordId, int]]) -> Drift:
    """Against the baseline drift is told from: a differing record whose bucket the target
    wrote and the source did not changed in the target outside vecmig."""
    records = both = 0
    examples: list[RecordId] = []
    for rid, b in differing:
        if sc.target_moved[b] and not sc.source_moved[b]:
            records += 1
            if len(examples) < drift.EXAMPLES:
                examples.append(rid)
        elif sc.target_moved[b] and sc.source_moved[b]:
            both += 1
    return Drift(records=records, both=both, known=True, examples=tuple(examples))


def empty_target(shards: list[dict[str, Any] | None], exists: bool = False) -> RecordDiff:
    """A target that does not exist (method ``none``) or exists and holds nothing (``empty``):
    every source record is to add (counts from the shards, which are exact where the store
    counts exactly)."""
    deltas = tuple(ShardDelta(index=i, counts=RecordCounts(add=int((s or {}).get("records", 0))))
                   for i, s in enumerate(shards))
    return RecordDiff(method="empty" if exists else "none", shards=deltas, delete_ids=(), delete_count=0,
                      source_records=0, target_records=0, drift=Drift(known=True))


__all__ += ["bucket_of", "current_shards", "empty_target"]
