"""Drift: records that differ because the target changed after vecmig last wrote it.

After a round's completeness validation passes, source and target are equal, and the
validation records the target's per-bucket digests (``BUCKETS`` pieces by a hash of the
record's key) as the baseline. The next plan's diff computes the same per-bucket digests of
both sides. A differing record whose bucket still has the baseline digest on the source side
but not on the target side changed in the target, outside vecmig (Terraform's refresh note);
when both sides' buckets moved, the record is counted apart (``both``): a bucket holds ~1/1000
of the records, so that is rare unless much changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vecmig.diff.keys import BucketSums
from vecmig.diff.model import Drift
from vecmig.records import RecordId

EXAMPLES = 10


def classify(baseline: dict[str, Any] | None, scheme: str, source: BucketSums, target: BucketSums,
             differing: Iterable[tuple[RecordId, int]]) -> Drift:
    if baseline is None:
        return Drift(known=False, why_unknown="no earlier round of this migration ended with a passing "
                                              "completeness validation, so there is nothing to compare against")
    if baseline.get("scheme") != scheme:
        return Drift(known=False, why_unknown="the last validation hashed records another way (the stores, the "
                                              "mapping or the digest scheme changed since)")
    base = BucketSums.decode(str(baseline.get("buckets", "")))
    src = BucketSums.decode(source.encode())
    tgt = BucketSums.decode(target.encode())
    if len(base) != len(src):
        return Drift(known=False, why_unknown="the recorded baseline has another number of buckets")
    drift = both = 0
    examples: list[RecordId] = []
    for rid, b in differing:
        target_moved = tgt[b] != base[b]
        source_moved = src[b] != base[b]
        if target_moved and not source_moved:
            drift += 1
            if len(examples) < EXAMPLES:
                examples.append(rid)
        elif target_moved and source_moved:
            both += 1
    return Drift(records=drift, both=both, known=True, examples=tuple(examples))
