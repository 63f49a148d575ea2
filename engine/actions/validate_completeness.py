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
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import ValidationFailed
from vecmig.model import Action
from vecmig.prefetch import prefetch
from vecmig.providers import Provider
from vecmig.records import (
    Batch,
    Checksum,
    RecordId,
    batch_digests,
    canonical_id,
    canonical_metadata,
    canonical_sparse,
    same_record_key,
    sparse_of,
)

SHOW_IDS = 10
SHOW_DETAILS = 3  # differing records explained field by field, per shard
SERVER = "server-digest"
RECORDS = "records"


@dataclass
class _Outcome:
    method: str
    source: Checksum
    target: Checksum
    missing: list[RecordId] = field(default_factory=list)
    differ: list[RecordId] = field(default_factory=list)
    server: tuple[Checksum, Checksum] | None = None  # the servers' digests, when a records shard has them
    fallback: str | None = None  # why the fast path did not decide the shard
    details: list[str] = field(default_factory=list)  # how the first differing records differ


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
        scheme, skipped = _digest_scheme(ctx)
        # The source side of each shard's server digests runs on this second pool while the
        # shard's own worker waits for the target's.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-validate") as pool, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-validate-digest") as side:
            outcomes = list(pool.map(lambda s: _check_shard(ctx, action, s, batch_size, scheme, side), shards))
        for i, o in enumerate(outcomes):
            source_count += o.source.count
            missing_total += len(o.missing)
            total_src.merge(o.source)
            total_tgt.merge(o.target)
            entry: dict[str, Any] = {"shard": i, "method": o.method, "source": o.source.to_json(),
                                     "target": o.target.to_json(), "missing": len(o.missing),
                                     "different": len(o.differ)}
            if o.server is not None:
                entry["server_digest"] = {"source": o.server[0].to_json(), "target": o.server[1].to_json()}
            if o.fallback is not None:
                entry["fallback"] = o.fallback
            shards_out.append(entry)
            if o.details:
                entry["differences"] = o.details
            if o.missing or o.differ:
                problems.append(f"shard {i}: {len(o.missing)} missing {_ids(o.missing)}, "
                                f"{len(o.differ)} different {_ids(o.differ)}"
                                + (f": {'; '.join(o.details)}" if o.details else ""))
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
        methods = {o.method for o in outcomes}
        result = {"source": total_src.to_json(), "target": total_tgt.to_json(), "target_count": target_count,
                  "extra": len(extra), "shards": shards_out, "ok": not problems,
                  "method": methods.pop() if len(methods) == 1 else "mixed"}
        if scheme is not None:
            result["digest_scheme"] = scheme
        else:
            result["server_digest_skipped"] = skipped
        if problems:
            raise ValidationFailed("completeness check failed: " + "; ".join(problems[:5]),
                                   hint="nothing was switched; run `vecmig apply` again to re-copy, "
                                        "or `vecmig rollback` to undo")
        return result


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
                  side: ThreadPoolExecutor) -> tuple[tuple[Checksum, Checksum] | None, str | None]:
    """Both servers' ``(count, digest)`` of one shard, computed at once; None and why on any failure."""
    try:
        ds, dt = src.server_digest(), tgt.server_digest()
    except Exception as exc:
        return None, f"server digest unavailable: {_reason(exc)}"
    if ds is None or dt is None or ds.scheme != scheme or dt.scheme != scheme:
        return None, "digest scheme changed since validation started"
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


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


def _check_shard(ctx: RunContext, action: Action, shard: dict[str, Any] | None, batch_size: int,
                 scheme: str | None, side: ThreadPoolExecutor) -> _Outcome:
    src, tgt = ctx.source(), ctx.target()
    try:
        server: tuple[Checksum, Checksum] | None = None
        fallback: str | None = None
        if scheme is not None:
            server, fallback = _server_shard(src, tgt, shard, scheme, side)
            if server is not None:
                s_dig, t_dig = server
                if (s_dig.count, s_dig.total) == (t_dig.count, t_dig.total):
                    ctx.reporter.advance(action, s_dig.count)
                    return _Outcome(SERVER, s_dig, t_dig)
                fallback = "server digests differ"
        s_sum, t_sum, missing, differ, details = _check_records(ctx, action, src, tgt, shard, batch_size)
        return _Outcome(RECORDS, s_sum, t_sum, missing, differ, server=server, fallback=fallback, details=details)
    finally:
        src.close()
        tgt.close()


def _check_records(ctx: RunContext, action: Action, src: Provider, tgt: Provider, shard: dict[str, Any] | None,
                   batch_size: int) -> tuple[Checksum, Checksum, list[RecordId], list[RecordId], list[str]]:
    """Record by record: every source record of the shard hashed against the target's by id."""
    mapping = ctx.spec.mapping
    s_sum, t_sum = Checksum(), Checksum()
    missing: list[RecordId] = []
    differ: list[RecordId] = []
    details: list[str] = []
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
        for pos, (rid, d_mine) in enumerate(zip(mapped.ids, mine, strict=True)):
            d = theirs.get(rid)
            if d is None:
                missing.append(rid)
            elif d != d_mine:
                differ.append(rid)
                if len(details) < SHOW_DETAILS:
                    details.append(explain_difference(mapped, pos, got, got.ids.index(rid)))
        ctx.reporter.advance(action, len(batch))
    return s_sum, t_sum, missing, differ, details


def explain_difference(src: Batch, i: int, tgt: Batch, j: int) -> str:
    """Which parts of one record differ between source and target, and how (one line)."""
    rid = src.ids[i]
    parts: list[str] = []
    if canonical_id(src.ids[i]) != canonical_id(tgt.ids[j]):
        parts.append(f"id {_show(src.ids[i])} vs {_show(tgt.ids[j])}")
    a = np.ascontiguousarray(src.vectors[i], dtype="<f4")
    b = np.ascontiguousarray(tgt.vectors[j], dtype="<f4")
    if a.shape != b.shape:
        parts.append(f"vector has {a.shape[0]} dimensions vs {b.shape[0]}")
    elif a.tobytes() != b.tobytes():
        k = int(np.flatnonzero(a.view("<u4") != b.view("<u4"))[0])
        n = int(np.count_nonzero(a.view("<u4") != b.view("<u4")))
        parts.append(f"vector differs in {n} dimension(s), first [{k}]: {float(a[k])!r} vs {float(b[k])!r}")
    s_text = src.texts[i] if src.texts is not None else None
    t_text = tgt.texts[j] if tgt.texts is not None else None
    if (s_text or "") != (t_text or ""):
        parts.append(f"text {_show(s_text)} vs {_show(t_text)}")
    s_meta, t_meta = src.metadata[i], tgt.metadata[j]
    for key in sorted(set(s_meta) | set(t_meta), key=str):
        sv, tv = s_meta.get(key), t_meta.get(key)
        if canonical_metadata({"v": sv}) == canonical_metadata({"v": tv}):
            continue
        if tv is None:
            parts.append(f"metadata '{key}' missing in the target (source {_show(sv)})")
        elif sv is None:
            parts.append(f"metadata '{key}' only in the target ({_show(tv)})")
        else:
            parts.append(f"metadata '{key}' source {_show(sv)} vs target {_show(tv)}")
    s_sp, t_sp = sparse_of(src)[i], sparse_of(tgt)[j]
    if canonical_sparse(s_sp) != canonical_sparse(t_sp):
        parts.append("sparse values differ")
    if not parts:
        parts.append("no field differs by value (checksum bytes differ)")
    return f"id {rid!r}: " + ", ".join(parts[:4]) + (f" (+{len(parts) - 4} more)" if len(parts) > 4 else "")


def _show(value: Any, limit: int = 60) -> str:
    kind = type(value).__name__
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({kind})"


def _ids(ids: list[RecordId]) -> str:
    if not ids:
        return ""
    shown = ", ".join(map(str, ids[:SHOW_IDS]))
    return f"(ids {shown}{', …' if len(ids) > SHOW_IDS else ''})"
