"""Record identity and buckets as the diff sees them, shared by the diff and validation.

A record is known by ``same_record_key`` (int 5 and "5" are one record: Pinecone keeps only
strings), prefixed by its namespace where records are kept per namespace. Its bucket (one of
``BUCKETS``) is a hash of that key: the per-bucket digests recorded after a passing
validation are the baseline against which the next plan tells drift from source changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from vecmig.records import RecordId, same_record_key

BUCKETS = 1024
MASK = BUCKETS - 1
# "/lo64": buckets are compared by the low 64 bits of their sums (an earlier xor fold of both
# halves is another scheme), which finer buckets add up to exactly (vecmig.diff.versions).
SCAN_SCHEME = "records-blake2b/1 buckets=1024/lo64"
STRICT_SCHEME = "records-blake2b/1 strict-numbers buckets=1024/lo64"
LO64 = (1 << 64) - 1


def strict_pair(spec: Any) -> bool:
    """Both stores keep a number's type (``Capabilities.exact_numbers``): 1 and 1.0 differ, and
    so do ids 5 and "5"."""
    from vecmig.providers import provider_class

    return bool(provider_class(spec.source.provider).capabilities.exact_numbers
                and provider_class(spec.target.provider).capabilities.exact_numbers)


def scan_scheme(strict: bool, ulp: int = 0, reembedded: bool = False) -> str:
    """The digests' scheme; ``ulp`` > 0: records hashed without their vectors (compared within
    that many ulp apart, ``vecmig.tolerance``), which no exact baseline may be compared with;
    ``reembedded``: without vectors, which are not compared at all (``vecmig.diff.reembedded``)."""
    scheme = STRICT_SCHEME if strict else SCAN_SCHEME
    if reembedded:
        return scheme.replace(" buckets=", " vectors-reembedded buckets=")
    return scheme.replace(" buckets=", f" vectors-within-{ulp}ulp buckets=") if ulp > 0 else scheme


def record_key(rid: RecordId, namespace: str | None = None) -> str:
    key = same_record_key(rid)
    return key if namespace is None else f"{namespace}\x00{key}"


def key_hash(key: str) -> int:
    """64 bits of the key: what records are matched and bucketed by."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def bucket_of(key: str) -> int:
    return key_hash(key) & MASK


class BucketSums:
    """Order-independent per-bucket sums of 128-bit record digests (mod 2**128)."""

    __slots__ = ("sums",)

    def __init__(self) -> None:
        self.sums = [0] * BUCKETS

    def add(self, bucket: int, digest: int) -> None:
        self.sums[bucket] = (self.sums[bucket] + digest) % (1 << 128)

    def merge(self, other: BucketSums) -> None:
        for b, v in enumerate(other.sums):
            if v:
                self.add(b, v)

    def encode(self) -> str:
        """64 bits per bucket, hex: compact enough for a state row, ample to see a change. The
        low half of a sum mod 2**128 is the sum of the low halves mod 2**64, so a baseline kept
        per finer bucket at 64 bits folds into these exactly."""
        return "".join(f"{v & LO64:016x}" for v in self.sums)

    @staticmethod
    def decode(text: str) -> list[str]:
        return [text[i:i + 16] for i in range(0, len(text), 16)]
