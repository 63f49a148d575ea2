"""validate_completeness: counts, id sets and per-shard checksums, compared on both sides.

The source is read again (it is the truth, and may have changed since the copy); each
shard's ids are then fetched from the target. Extras in the target are found by count and
then located by id. A mismatch fails the apply before any cutover, naming shard and ids.

Fast path: when the mapping is the identity and both stores offer a server-side digest
(:meth:`Provider.server_digest`) under the same scheme, each shard is first hashed by both
servers at once (one connection per side, one thread each); a shard whose ``(count,
digest)`` agree passes without a record moving through Python. Any other outcome (digests
differ, an error, no digest) sends that shard through the record-by-record check above,
which decides and names the ids. The result records how each shard was decided:

* per shard, ``method`` is ``"server-digest"`` (``source``/``target`` are the servers'
  ``{count, sum}``) or ``"records"`` (they are ``Checksum``s from Python); a records shard
  whose server digests were computed keeps them under ``server_digest``, and ``fallback``
  says why the fast path did not decide it;
* at the top, ``method`` is ``"server-digest"``, ``"records"`` or ``"mixed"``;
  ``digest_scheme`` names the compared scheme when the fast path was tried, else
  ``server_digest_skipped`` says why; ``source``/``target`` are the sums of the per-shard
  ``{count, sum}`` (mod 2**128), each shard hashed by its own method.

Where a store keeps vectors only within a tolerance (``Capabilities.vector_ulps``, e.g. a store
that normalises vectors for cosine), no server digest is used (they hash exact bytes): every shard goes through
the record check, whose digests then leave the vectors out, and each matched pair of vectors
is compared within the pair's ulp (``vecmig.tolerance``); the result says ``vector_ulps``.

Where both stores also keep row versions (``VersionedDigest``), validation is the record-level
diff (``vecmig.diff.versions``): without an earlier baseline every bucket is hashed, in one scan
per shard that also reads the versions (the shards' checksums are as above); against the last
baseline only the buckets whose versions moved on either side are hashed and listed, so after
a delta apply only what vecmig (or anyone) wrote is read. A shard where the diff finds records
to add, change or delete goes through the record-by-record check, which decides and names
them. ``versions`` accounts for it (``buckets``, ``baseline``, ``hashed_buckets``,
``rows_hashed``); against a baseline a shard's ``source``/``target`` are ``{count, versions}``
and the top-level sums are the buckets' content digests, low 64 bits (``"bits": 64``). The
passing result's ``baseline`` then holds the versions the next diff starts from.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecmig import namespaces, waves
from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.params import ValidateCompletenessParams
from vecmig.diff import current_shards, versions
from vecmig.diff.baseline import last_versions
from vecmig.diff.keys import LO64, BucketSums, bucket_of, record_key, scan_scheme, strict_pair
from vecmig.diff.reembedded import Reembedded
from vecmig.errors import ValidationFailed
from vecmig.model import Action
from vecmig.prefetch import prefetch
from vecmig.providers import Provider
from vecmig.providers.base import BucketedDigest
from vecmig.records import (
    Batch,
    Checksum,
    RecordId,
    batch_digests,
    canonical_metadata,
    canonical_sparse,
    canonical_value,
    same_record_key,
    sparse_of,
)
from vecmig.tolerance import first_apart, pair_ulp, within_ulp

SHOW_IDS = 10
SERVER = "server-digest"
RECORDS = "records"


@dataclass
class _Outcome:
    method: str
    source: Checksum
    target: Checksum
    missing: list[RecordId] = field(default_factory=list)
    differ: list[RecordId] = field(default_factory=list)
    # What differs in the first few different records: {"id", "field", "source", "target"}.
    why: list[dict[str, Any]] = field(default_factory=list)
    server: tuple[Checksum, Checksum] | None = None  # the servers' digests, when a records shard has them
    fallback: str | None = None  # why the fast path did not decide the shard
    # The target's per-bucket digests under the shard's method: the next plan's drift baseline.
    buckets: BucketSums | None = None
    bucket_scheme: str | None = None
    shown: tuple[dict[str, Any], dict[str, Any]] | None = None  # the entry's source/target, when not checksums


@dataclass
class _Shard:
    """A shard as the versions pass saw it: its servers' view, and whether it found nothing to
    add, change or delete there."""

    counted: tuple[Checksum, Checksum]  # rows, and the digests where the shard was hashed whole
    equal: bool
    shown: tuple[dict[str, Any], dict[str, Any]] | None = None
    server: tuple[Checksum, Checksum] | None = None  # both servers' shard digests, where computed


@dataclass
class _ByVersions:
    """The diff run as validation (vecmig.diff.versions): per shard, and what it records."""

    shards: list[_Shard]
    baseline: dict[str, Any]
    # Content totals (count, low 64 bits) where shards were decided by buckets, not hashed whole:
    # rows, sum over all buckets, and that sum with the buckets the record check decides as the target's.
    source: tuple[int, int, int] | None
    target: tuple[int, int] | None
    accounting: dict[str, Any]


class ValidateCompleteness(ActionKind):
    kind = "validate_completeness"
    effect = "read"
    runs_beside_others = True

    def summarise(self, result: dict[str, Any]) -> str:
        if "target_count" not in result:
            return ""
        return (f" · {result['source']['count']:,} records match · checksum {result['source']['sum'][:16]}"
                f" · {len(result['shards'])} shard(s)")

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = ValidateCompletenessParams.from_json(action.params)
        batch_size = p.batch_size
        # A file source is cut again: records past the planned byte ranges must be checked too
        # (the same cut when the file did not change, so per-shard findings still match the copies).
        shards = current_shards(ctx.spec, p.shards or [None], p.shard_size) or [None]
        shards_out: list[dict[str, Any]] = []
        problems: list[str] = []
        source_count = 0
        total_src = Checksum()
        total_tgt = Checksum()
        missing_total = 0
        # Shards are checked in parallel, each worker on its own connections: reading the
        # source, fetching from the target and hashing overlap instead of taking turns.
        workers = max(1, min(p.concurrency, len(shards)))
        reemb = Reembedded(p.keep_old) if p.reembedded else None
        ulp = _vector_ulps(ctx) if reemb is None else 0
        scheme, skipped = _digest_scheme(ctx) if ulp <= 0 and reemb is None else (
            None, f"vectors are compared within {ulp} ulp (a store does not keep float32 bits exactly), "
                  "and server digests hash exact bytes") if reemb is None else (
            None, "the vectors are re-embedded (transform.embed): ids, metadata and text are compared, "
                  "and server digests hash the vectors")
        wave = action.params.get("wave")
        if wave is not None:
            # Strategy phased: only this wave's records, one by one (server digests hash whole shards).
            scheme, skipped = None, f"wave {wave['name']}: its records are compared one by one"
        # The failure this validation recorded last time (the shards it named were re-copied
        # since): a shard that fails again with the same source was not fixed by copying it.
        previous = _previous_failure(ctx, action)
        # The source side of each shard's server digests runs on this second pool while the
        # shard's own worker waits for the target's.
        # Where both stores keep row versions, the diff runs first (only buckets written since
        # the last baseline are hashed); each shard it finds different goes to the record check.
        by_versions, versions_skipped = _by_versions(ctx, shards, workers) if scheme is not None else (None, None)
        pre: list[_Shard | None] = list(by_versions.shards) if by_versions else [None] * len(shards)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-validate") as pool, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-validate-digest") as side:
            outcomes = list(pool.map(lambda i: _check_shard(ctx, action, shards[i], batch_size, scheme, side, pre[i],
                                                            ulp, reemb), range(len(shards))))
        for i, o in enumerate(outcomes):
            source_count += o.source.count
            missing_total += len(o.missing)
            total_src.merge(o.source)
            total_tgt.merge(o.target)
            shown = o.shown or (o.source.to_json(), o.target.to_json())
            entry: dict[str, Any] = {"shard": i, "method": o.method, "source": shown[0],
                                     "target": shown[1], "missing": len(o.missing),
                                     "different": len(o.differ)}
            if o.missing:
                entry["missing_ids"] = _json_ids(o.missing)
            if o.differ:
                entry["different_ids"] = _json_ids(o.differ)
                entry["differences"] = o.why
            if o.server is not None:
                entry["server_digest"] = {"source": o.server[0].to_json(), "target": o.server[1].to_json()}
            if o.fallback is not None:
                entry["fallback"] = o.fallback
            shards_out.append(entry)
            if o.missing or o.differ:
                again = _again(previous, i, entry)
                if again.startswith(" —"):
                    entry["failed_again"] = True  # re-copied with the source unchanged, and still not equal
                found = [f"{len(o.missing)} missing {_ids(o.missing)}" if o.missing else "",
                         f"{len(o.differ)} different {_ids(o.differ)}{_why(o.why)}" if o.differ else ""]
                problems.append(f"shard {i}: {', '.join(f for f in found if f)}{again}")
        tgt = ctx.target()
        try:
            target_count = tgt.count()
            extra: list[RecordId] = []
            # Every target record not matched to a source id is an extra; count first, look only if needed.
            # A wave's check cannot tell (the target holds the other waves too): the round's prune does.
            if wave is None and target_count != source_count - missing_total:
                # Only now are the ids worth holding in memory (peak RSS stays flat otherwise).
                # By the id's text: a target that keeps only strings (Pinecone) lists int 5 as "5".
                # Keyed as the target holds records: the mapped id, and the namespace where the
                # target keeps namespaces (the same id in two of them is two records there).
                by_ns = namespaces.target_by_namespace(ctx.spec)
                src = ctx.source()
                known: set[str] = set()
                repeated: list[RecordId] = []
                try:
                    for b in src.scan(None, None, batch_size):
                        for part in namespaces.map_batch(ctx.spec, b):
                            space = _space(part.batch, by_ns)
                            for rid in part.batch.ids:
                                key = record_key(same_record_key(rid), space)
                                if key in known:
                                    repeated.append(_shown_key(rid, b.extra.get("namespace")))
                                known.add(key)
                finally:
                    src.close()
                extra = [rid for b in tgt.scan(None, None, batch_size) for rid in b.ids
                         if record_key(same_record_key(rid), _space(b, by_ns)) not in known]
                if extra:
                    problems.append(f"target has {len(extra)} records not in the source {_ids(extra)}")
                if repeated:
                    # Never a pass with fewer records than the source holds: the same id from two
                    # source namespaces is one record in a target keyed by id alone.
                    problems.append(f"{source_count:,} source records, {target_count:,} in the target: the source "
                                    f"has only {len(known):,} distinct ids as the target keys them, "
                                    f"{len(repeated)} repeated {_ids(repeated)}")

        finally:
            tgt.close()
        methods = {o.method for o in outcomes}
        baseline = by_versions.baseline if by_versions else _baseline(outcomes)
        src_json, tgt_json = total_src.to_json(), total_tgt.to_json()
        if by_versions is not None and by_versions.source is not None and by_versions.target is not None:
            # Shards were decided by buckets, not all hashed: the totals are the buckets' content
            # digests (low 64 bits), those the record check passed counted as the target's.
            rows, plain, decided = by_versions.source
            src_json = {"count": rows, "sum": f"{decided if not problems else plain:032x}", "bits": 64}
            tgt_json = {"count": by_versions.target[0], "sum": f"{by_versions.target[1]:032x}", "bits": 64}
        result = {"source": src_json, "target": tgt_json, "target_count": target_count,
                  "extra": len(extra), "shards": shards_out, "ok": not problems,
                  "method": methods.pop() if len(methods) == 1 else "mixed"}
        if wave is not None:
            result["wave"] = wave["name"]  # a re-copy after a failure is of this wave's shards only
        if baseline is not None and not problems and wave is None:
            result["baseline"] = baseline
        if by_versions is not None:
            result["versions"] = by_versions.accounting
        elif versions_skipped:
            result["versions_skipped"] = versions_skipped
        if ulp > 0:
            result["vector_ulps"] = ulp
        if reemb is not None:
            result["vectors"] = "re-embedded: not compared"
        if scheme is not None:
            result["digest_scheme"] = scheme
        else:
            result["server_digest_skipped"] = skipped
        if problems:
            result["attempt"] = int(previous.get("attempt", 1)) + 1 if previous else 1
            failed = [e["shard"] for e in shards_out if e["missing"] or e["different"]]
            redo = [f"re-copy shard{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"] if failed else []
            if extra:
                redo.append("delete the records not in the source (a re-plan where this round cannot)")
            stuck = any(e.get("failed_again") for e in shards_out)
            first = ("nothing was switched; find what changes the target after vecmig writes it (a trigger, another "
                     "writer, a value the store converts), then run `vecmig apply` again to "
                     if stuck else "nothing was switched; run `vecmig apply` again to ")
            raise ValidationFailed("completeness check failed: " + "; ".join(problems[:5]),
                                   hint=f"{first}{' and '.join(redo)}, or `vecmig rollback` to undo",
                                   result=result)
        return result


def _baseline(outcomes: list[_Outcome]) -> dict[str, Any] | None:
    """The target's per-bucket digests, when every shard was hashed the same way (vecmig.diff.drift)."""
    schemes = {o.bucket_scheme for o in outcomes}
    if len(schemes) != 1 or None in schemes:
        return None
    total = BucketSums()
    for o in outcomes:
        assert o.buckets is not None
        total.merge(o.buckets)
    return {"scheme": schemes.pop(), "buckets": total.encode()}


def _by_versions(ctx: RunContext, shards: list[dict[str, Any] | None],
                 workers: int) -> tuple[_ByVersions | None, str | None]:
    """The record-level diff as validation, where both stores keep row versions
    (vecmig.diff.versions): against the last baseline only the buckets written since are hashed;
    without one every bucket is, in one scan per shard that also reads the versions. None and
    why when the stores cannot, or anything failed (the per-shard path then decides)."""
    def sides() -> tuple[Provider, Provider]:
        return ctx.source(), ctx.target()

    try:
        src, tgt = sides()
        try:
            pair = versions.pair_of(src, tgt)
            if pair is None:
                return None, "a store keeps no row versions"
            ds, dt = pair
            scheme = dt.bucket_scheme()
            prev = versions.usable(last_versions(ctx.state, ctx.round), scheme, ds, dt)
            rows = sum(int((s or {}).get("records") or 0) for s in shards) or src.count()
            n = prev.buckets if prev is not None else versions.bucket_count(rows)
            # Read before any version: a rewrite after this shows as moved, never as unchanged.
            s_scheme, t_scheme = ds.version_scheme(n), dt.version_scheme(n)
        finally:
            src.close()
            tgt.close()
        if s_scheme is None or t_scheme is None:
            return None, "a store cannot vouch for its records by row versions here (see its version scheme)"
        if prev is not None:
            return _shortcut(sides, shards, workers, prev, scheme, s_scheme, t_scheme), None
        return _full(sides, shards, workers, n, scheme, s_scheme, t_scheme), None
    except Exception as exc:  # an optimisation: the per-shard path decides
        return None, f"row versions unavailable: {_reason(exc)}"


def _shortcut(sides: versions.Sides, shards: list[dict[str, Any] | None], workers: int,
              prev: versions.VersionBaseline, scheme: str, s_scheme: str, t_scheme: str) -> _ByVersions:
    sc = versions.run(sides, shards, prev, workers)
    per: list[_Shard] = []
    for r in sc.shards:
        equal = not r.write_ids and not r.extra_ids
        # Per shard: rows and version sums (a content digest of the unlisted buckets is not
        # known per shard); "source changed since the last validation" compares these.
        s_ver = sum(d for _, d in r.source_versions.values()) & LO64
        t_ver = sum(d for _, d in r.target_versions.values()) & LO64
        shown = ({"count": r.source_rows, "versions": f"{s_ver:016x}"},
                 {"count": r.target_rows, "versions": f"{t_ver:016x}"})
        per.append(_Shard((Checksum(r.source_rows, 0), Checksum(r.target_rows, 0)), equal, shown))
    unequal = sc.unequal()
    decided = np.where(unequal, sc.target_digests, sc.source_digests)
    coarse = sc.coarse("target")
    s_hashed, t_hashed = sc.rows_hashed
    return _ByVersions(
        shards=per,
        baseline={"scheme": scheme, "buckets": coarse.encode(),
                  "versions": versions.recorded(sc.buckets, s_scheme, t_scheme, sc.source_versions,
                                                sc.target_versions, sc.target_digests, unequal)},
        source=(sum(r.source_rows for r in sc.shards), _lo64(sc.source_digests), _lo64(decided)),
        target=(sum(r.target_rows for r in sc.shards), _lo64(sc.target_digests)),
        accounting={"buckets": sc.buckets, "baseline": True, "hashed_buckets": sc.hashed_buckets,
                    "rows_hashed": {"source": s_hashed, "target": t_hashed}})


def _full(sides: versions.Sides, shards: list[dict[str, Any] | None], workers: int, n: int, scheme: str,
          s_scheme: str, t_scheme: str) -> _ByVersions:
    got = versions.full(sides, shards, n, workers)
    ver = {"source": np.zeros(n, dtype=np.uint64), "target": np.zeros(n, dtype=np.uint64)}
    dig = {"source": np.zeros(n, dtype=np.uint64), "target": np.zeros(n, dtype=np.uint64)}
    cnt = {"source": np.zeros(n, dtype=np.int64), "target": np.zeros(n, dtype=np.int64)}
    per: list[_Shard] = []
    coarse = BucketSums()
    for s_b, t_b in got:
        sums: dict[str, Checksum] = {}
        for name, by_bucket in (("source", s_b), ("target", t_b)):
            total = Checksum()
            for b, (rows, d, v) in by_bucket.items():
                total.merge(Checksum(rows, d))
                cnt[name][b] += rows
                dig[name][b] = np.uint64((int(dig[name][b]) + d) & LO64)
                ver[name][b] = np.uint64((int(ver[name][b]) + v) & LO64)
                if name == "target":
                    coarse.add(b & 1023, d)
            sums[name] = total
        s, t = sums["source"], sums["target"]
        per.append(_Shard((s, t), (s.count, s.total) == (t.count, t.total), server=(s, t)))
    unequal = (dig["source"] != dig["target"]) | (cnt["source"] != cnt["target"])
    return _ByVersions(
        shards=per,
        baseline={"scheme": scheme, "buckets": coarse.encode(),
                  "versions": versions.recorded(n, s_scheme, t_scheme, ver["source"], ver["target"], dig["target"],
                                                unequal)},
        source=None, target=None,  # every shard hashed whole: its checksums add up as before
        accounting={"buckets": n, "baseline": False, "hashed_buckets": n,
                    "rows_hashed": {"source": int(cnt["source"].sum()), "target": int(cnt["target"].sum())}})


def _lo64(values: Any) -> int:
    return int(np.sum(values, dtype=np.uint64))


def _vector_ulps(ctx: RunContext) -> int:
    """The ulp the pair's vectors are compared within (0: bit for bit), from both stores."""
    src, tgt = ctx.source(), ctx.target()
    try:
        return pair_ulp(src, tgt)
    finally:
        src.close()
        tgt.close()


def _digest_scheme(ctx: RunContext) -> tuple[str | None, str | None]:
    """The scheme both stores' server digests share, or None and why the fast path is off."""
    if not ctx.spec.mapping.is_identity:
        # Source records are compared after the mapping, which only Python applies.
        return None, "the mapping renames or drops metadata fields"
    opened: list[Provider] = []
    schemes: dict[str, str] = {}
    try:
        for side, open_side in (("source", ctx.source), ("target", ctx.target)):
            p = open_side()
            opened.append(p)
            d = p.server_digest()
            if d is None:
                return None, f"the {side} ({p.name}) has no server-side digest"
            schemes[side] = d.scheme
    except Exception as exc:  # the fast path is an optimisation: the record-by-record check decides
        return None, f"server digest unavailable: {_reason(exc)}"
    finally:
        for p in opened:
            p.close()
    if schemes["source"] != schemes["target"]:
        return None, f"digest schemes differ: source {schemes['source']} vs target {schemes['target']}"
    return schemes["source"], None


def _server_shard(src: Provider, tgt: Provider, shard: dict[str, Any] | None, scheme: str,
                  side: ThreadPoolExecutor) -> tuple[tuple[Checksum, Checksum] | None, str | _Buckets | None]:
    """Both servers' ``(count, digest)`` of one shard, computed at once; None and why on any failure."""
    try:
        ds, dt = src.server_digest(), tgt.server_digest()
    except Exception as exc:
        return None, f"server digest unavailable: {_reason(exc)}"
    if ds is None or dt is None or ds.scheme != scheme or dt.scheme != scheme:
        return None, "digest scheme changed since validation started"
    if isinstance(ds, BucketedDigest) and isinstance(dt, BucketedDigest):
        # Per bucket, in the same query: the sums are the shard's digest, the buckets the
        # next plan's drift baseline.
        by_bucket: Future[dict[int, tuple[int, int]]] = side.submit(ds.buckets, shard)
        try:
            t_buckets = dt.buckets(shard)
        except Exception as exc:
            wait([by_bucket])  # the source's connection must be idle before the fallback uses it
            return None, f"target digest failed: {_reason(exc)}"
        try:
            s_buckets = by_bucket.result()
        except Exception as exc:
            return None, f"source digest failed: {_reason(exc)}"
        return (_summed(s_buckets), _summed(t_buckets)), _Buckets(dt.bucket_scheme(), t_buckets)
    theirs: Future[tuple[int, int]] = side.submit(ds.shard, shard)
    try:
        t_count, t_sum = dt.shard(shard)
    except Exception as exc:
        wait([theirs])  # the source's connection must be idle before the fallback uses it
        return None, f"target digest failed: {_reason(exc)}"
    try:
        s_count, s_sum = theirs.result()
    except Exception as exc:
        return None, f"source digest failed: {_reason(exc)}"
    return (Checksum(s_count, s_sum), Checksum(t_count, t_sum)), None


@dataclass(frozen=True)
class _Buckets:
    scheme: str
    by_bucket: dict[int, tuple[int, int]]

    def sums(self) -> BucketSums:
        out = BucketSums()
        for b, (_, d) in self.by_bucket.items():
            out.add(b, d)
        return out


def _summed(by_bucket: dict[int, tuple[int, int]]) -> Checksum:
    total = Checksum()
    for n, d in by_bucket.values():
        total.merge(Checksum(n, d))
    return total


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


def _check_shard(ctx: RunContext, action: Action, shard: dict[str, Any] | None, batch_size: int,
                 scheme: str | None, side: ThreadPoolExecutor, pre: _Shard | None = None, ulp: int = 0,
                 reemb: Reembedded | None = None) -> _Outcome:
    if pre is not None and pre.equal:
        ctx.reporter.advance(action, pre.counted[0].count)
        return _Outcome(SERVER, pre.counted[0], pre.counted[1], shown=pre.shown)
    src, tgt = ctx.source(), ctx.target()
    try:
        server: tuple[Checksum, Checksum] | None = None
        fallback: str | None = None
        if pre is not None:
            server = pre.server
            fallback = "server digests differ" if server else "the diff found records to add, change or delete"
        elif scheme is not None:
            server, said = _server_shard(src, tgt, shard, scheme, side)
            fallback = said if isinstance(said, str) else None
            if server is not None:
                s_dig, t_dig = server
                if (s_dig.count, s_dig.total) == (t_dig.count, t_dig.total):
                    ctx.reporter.advance(action, s_dig.count)
                    if isinstance(said, _Buckets):
                        return _Outcome(SERVER, s_dig, t_dig, buckets=said.sums(), bucket_scheme=said.scheme)
                    return _Outcome(SERVER, s_dig, t_dig)
                fallback = "server digests differ"
        sums = BucketSums()
        s_sum, t_sum, missing, differ, why = _check_records(ctx, action, src, tgt, shard, batch_size, sums, ulp,
                                                            reemb)
        return _Outcome(RECORDS, s_sum, t_sum, missing, differ, why, server=server, fallback=fallback,
                        buckets=sums, bucket_scheme=scan_scheme(strict_pair(ctx.spec), ulp, reemb is not None))
    finally:
        src.close()
        tgt.close()


def _check_records(ctx: RunContext, action: Action, src: Provider, tgt: Provider, shard: dict[str, Any] | None,
                   batch_size: int, buckets: BucketSums, ulp: int = 0, reemb: Reembedded | None = None
                   ) -> tuple[Checksum, Checksum, list[RecordId], list[RecordId], list[dict[str, Any]]]:
    """Record by record: every source record of the shard hashed against the target's by id
    (``ulp`` > 0: hashed without vectors, which are compared within that many ulp; ``reemb``:
    without vectors, which are a new model's and not compared)."""
    by_ns = namespaces.target_by_namespace(ctx.spec)
    strict = strict_pair(ctx.spec)
    s_sum, t_sum = Checksum(), Checksum()
    missing: list[RecordId] = []
    differ: list[RecordId] = []
    why: list[dict[str, Any]] = []
    for batch in prefetch(src.scan(shard, None, batch_size)):
        # Compared as the target must hold them: mapped (ids, metadata, namespace), and each part
        # answered from the namespace it was written to; extra travels along (sparse values).
        for part in namespaces.map_batch(ctx.spec, waves.select(action.params.get("wave"), batch,
                                                                ctx.spec.source.namespace)):
            if not len(part.batch):
                continue  # none of this batch is the wave's
            mapped = part.batch if reemb is None else reemb.as_target(part.batch)
            _compare_part(tgt, mapped, strict, by_ns, s_sum, t_sum, buckets, missing, differ, why, ulp,
                          vectors=reemb is None)
        ctx.reporter.advance(action, len(batch))
    return s_sum, t_sum, missing, differ, why


def _compare_part(tgt: Provider, mapped: Batch, strict: bool, by_ns: bool, s_sum: Checksum, t_sum: Checksum,
                  buckets: BucketSums, missing: list[RecordId], differ: list[RecordId],
                  why: list[dict[str, Any]], ulp: int = 0, vectors: bool = True) -> None:
    exact = ulp <= 0
    hashed = exact and vectors
    mine = batch_digests(mapped, strict, vectors=hashed)
    s_sum.add_digests(mine)
    got = tgt.fetch_matching(mapped)
    # The target answers with its own id type (a text column holds int 5 as "5"): the
    # same record, by vecmig.ids; hashed and matched under the (mapped) source id.
    own_ids = list(got.ids)
    got.ids = as_source_ids(got.ids, mapped.ids)
    # Between two stores that keep types exactly, the target's own id is hashed: 5 vs "5" differs.
    got_digests = batch_digests(Batch(ids=own_ids, vectors=got.vectors, metadata=got.metadata, texts=got.texts,
                                      extra=got.extra), True, vectors=hashed) if strict else batch_digests(
        got, vectors=hashed)
    t_sum.add_digests(got_digests)
    ns = mapped.extra.get("namespace") if by_ns else None
    space = ns if isinstance(ns, str) else ("" if by_ns else None)
    for got_id, got_digest in zip(got.ids, got_digests, strict=True):
        buckets.add(bucket_of(record_key(got_id, space)), got_digest)
    theirs = {rid: (d, j) for j, (rid, d) in enumerate(zip(got.ids, got_digests, strict=True))}
    for pos, (rid, d_mine) in enumerate(zip(mapped.ids, mine, strict=True)):
        found = theirs.get(rid)
        if found is None:
            missing.append(rid)
        elif found[0] != d_mine or not (exact or within_ulp(mapped.vectors[pos], got.vectors[found[1]], ulp)):
            differ.append(rid)
            if len(why) < SHOW_IDS:
                why.append(_difference(mapped, pos, got, found[1], strict, ulp, vectors))


def _space(batch: Batch, by_ns: bool) -> str | None:
    ns = batch.extra.get("namespace") if by_ns else None
    return ns if isinstance(ns, str) else ("" if by_ns else None)


def _shown_key(rid: RecordId, namespace: Any) -> str:
    return f"{rid!r} (namespace {namespace!r})" if isinstance(namespace, str) else repr(rid)


def as_source_ids(got: list[RecordId], asked: list[RecordId]) -> list[RecordId]:
    """``got`` (a target's ids) as the source ids they answer, matched by ``same_record_key``."""
    if all(type(g) is type(a) for g, a in zip(got, asked, strict=False)) and len(got) == len(asked):
        return got
    by_key = {same_record_key(a): a for a in asked}
    return [by_key.get(same_record_key(g), g) for g in got]


def _ids(ids: list[RecordId]) -> str:
    if not ids:
        return ""
    shown = ", ".join(map(str, ids[:SHOW_IDS]))
    return f"(ids {shown}{', …' if len(ids) > SHOW_IDS else ''})"


def _json_ids(ids: list[RecordId]) -> list[Any]:
    return [i if isinstance(i, int | str) else str(i) for i in ids[:SHOW_IDS]]


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _difference(mine: Batch, i: int, theirs: Batch, j: int, strict: bool = False, ulp: int = 0,
                vectors: bool = True) -> dict[str, Any]:
    """The first part of one record that differs between source (mapped) and target, named
    (vectors: the first value more than ``ulp`` apart; not looked at when not ``vectors``)."""
    rid = mine.ids[i]
    a = np.ascontiguousarray(mine.vectors[i], dtype="<f4")
    b = np.ascontiguousarray(theirs.vectors[j], dtype="<f4")
    if vectors and not within_ulp(a, b, ulp):
        if a.shape != b.shape:
            return {"id": rid, "field": "vector", "source": f"{a.size} dims", "target": f"{b.size} dims"}
        at = (next((k for k in range(a.size) if a[k].tobytes() != b[k].tobytes()), None) if ulp <= 0
              else first_apart(a, b, ulp))
        if at is not None:
            return {"id": rid, "field": f"vector[{at}]", "source": _shown(float(a[at])),
                    "target": _shown(float(b[at]))}
    ma, mb = mine.metadata[i], theirs.metadata[j]
    if canonical_metadata(ma, strict) != canonical_metadata(mb, strict):
        for key in sorted(set(ma) | set(mb), key=str):
            va, vb = canonical_value(ma.get(key), strict), canonical_value(mb.get(key), strict)
            if canonical_metadata({"k": va}, strict) != canonical_metadata({"k": vb}, strict):
                return {"id": rid, "field": f"metadata.{key}", "source": _shown(ma.get(key)),
                        "target": _shown(mb.get(key))}
    ta = mine.texts[i] if mine.texts is not None else None
    tb = theirs.texts[j] if theirs.texts is not None else None
    if ta != tb:
        return {"id": rid, "field": "text", "source": _shown(ta), "target": _shown(tb)}
    sa, sb = sparse_of(mine)[i], sparse_of(theirs)[j]
    if canonical_sparse(sa) != canonical_sparse(sb):
        return {"id": rid, "field": "sparse", "source": _shown(sa), "target": _shown(sb)}
    return {"id": rid, "field": "id", "source": _shown(rid), "target": _shown(theirs.ids[j])}


def _why(why: list[dict[str, Any]]) -> str:
    if not why:
        return ""
    shown = "; ".join(f"id {w['id']}: {w['field']} is {w['source']} in the source, {w['target']} in the target"
                      for w in why[:3])
    return f" [{shown}]"


def _previous_failure(ctx: RunContext, action: Action) -> dict[str, Any]:
    import json

    for row in ctx.state.actions(ctx.round):
        if row["action_id"] == action.id and row["result_json"]:
            res = json.loads(row["result_json"])
            return res if res.get("ok") is False else {}
    return {}


def _again(previous: dict[str, Any], i: int, entry: dict[str, Any]) -> str:
    """Why re-copying did not help: the shard failed before, was re-copied, and its source is the same."""
    before = next((e for e in previous.get("shards", []) if e.get("shard") == i), None)
    if not before or not (before.get("missing") or before.get("different")):
        return ""
    if before.get("source") != entry["source"]:
        return " (the source changed since the last validation)"
    if entry["different"] and not entry["missing"]:
        return (" — again after re-copying this shard with the source unchanged: the target does not keep "
                "the values vecmig writes (something rewrites them, or the store cannot hold them as they are)")
    return (" — again after re-copying this shard with the source unchanged: records vecmig wrote were "
            "removed or changed in the target since")
