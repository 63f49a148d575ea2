"""Comparing vectors within a store's declared float32 tolerance (``Capabilities.vector_ulps``).

A store that keeps vectors bit for bit is compared by digests of the exact bytes (validation,
the record-level diff). A store that may move a value by up to N units in the last place
(one that normalises vectors for a cosine index) would fail every such digest while
holding a faithful copy, so between a pair of stores where either side is not exact:

* a record's digest leaves the vector out (ids, metadata, text and sparse values are still
  compared exactly, by the same canonical bytes), and
* the vectors of records matched by id are compared value by value: equal shape, and every
  float32 within N ulp of the other (``within_ulp``); NaNs only match the same bits.

Server-side digests (bit exact by construction) are never used for such a pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ordered_bits(values: np.ndarray) -> np.ndarray:
    """float32 values as int64 on one line where neighbouring floats differ by 1 (+0 and -0 are
    both 0): the distance between two values is then the number of floats between them, in ulp."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<i4").astype(np.int64)
    line: np.ndarray = np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return line


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per value, how many ulp apart two float32 arrays of one shape are."""
    apart: np.ndarray = np.abs(ordered_bits(a) - ordered_bits(b))
    return apart


def within_ulp(a: np.ndarray, b: np.ndarray, ulp: int) -> bool:
    """Same shape, and every value within ``ulp`` of the other (``ulp`` 0: the same bytes, so
    -0.0 and 0.0 differ as the exact digests say). NaN matches only a NaN of the same bits."""
    a = np.ascontiguousarray(a, dtype="<f4")
    b = np.ascontiguousarray(b, dtype="<f4")
    if a.shape != b.shape:
        return False
    if ulp <= 0:
        return a.tobytes() == b.tobytes()
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a | nan_b).any():
        if not np.array_equal(nan_a, nan_b) or a[nan_a].tobytes() != b[nan_b].tobytes():
            return False
        keep = ~nan_a
        a, b = a[keep], b[keep]
    return bool((ulp_distance(a, b) <= ulp).all())


def first_apart(a: np.ndarray, b: np.ndarray, ulp: int) -> int | None:
    """The first position where two equal-shaped vectors are more than ``ulp`` apart."""
    a = np.ascontiguousarray(a, dtype="<f4").reshape(-1)
    b = np.ascontiguousarray(b, dtype="<f4").reshape(-1)
    far = (ulp_distance(a, b) > ulp) | (np.isnan(a) != np.isnan(b))
    hits = np.flatnonzero(far)
    return int(hits[0]) if hits.size else None


def pair_ulp(source: Any, target: Any) -> int:
    """The tolerance a (source, target) pair of connected providers is compared within: the
    larger of the two (each reads back what it keeps deterministically, but a value one store
    moved may be moved again by the other)."""
    return max(int(source.vector_ulps()), int(target.vector_ulps()))


def describe(store: str, metric: str | None, ulp: int) -> str:
    """How a plan says it: ``<store> (cosine) keeps vectors within 2 ulp``."""
    where = f"{store} ({metric})" if metric else store
    return f"{where} keeps vectors within {ulp} ulp of the float32 values written"
