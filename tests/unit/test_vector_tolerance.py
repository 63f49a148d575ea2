"""Vectors compared within a store's declared ulp (``vecmig.tolerance``), everything else exactly.

The memory target's ``vector_ulps: N`` declares the tolerance and moves every other float32
value it keeps up by ``moves_ulp`` (default N) ulp, as a Chroma cosine collection does: a
faithful copy into it must validate, a copy moved further than declared must not, and the
record-level diff must see metadata changes and vector moves beyond the tolerance while
taking moves within it as equal.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.support.memory import Harness
from vecmig.errors import ValidationFailed
from vecmig.refresh import refresh
from vecmig.tolerance import first_apart, ulp_distance, within_ulp


def _f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _up(values: np.ndarray, steps: int) -> np.ndarray:
    out = values.copy()
    with np.errstate(over="ignore"):
        for _ in range(steps):
            out = np.nextafter(out, np.float32(np.inf))
    return out


def test_ulp_distance_counts_floats_between_values_across_zero_and_binades() -> None:
    a = _f32(1.0, -1.0, 0.0, -0.0, 1e-45, 2.0, -1e-45)
    assert ulp_distance(a, _up(a, 1)).tolist() == [1] * 7
    assert ulp_distance(a, _up(a, 3)).tolist() == [3] * 7
    top = _f32(np.finfo(np.float32).max)
    assert ulp_distance(top, _f32(np.inf)).tolist() == [1]
    # -0.0 and +0.0 are one point; the smallest subnormals either side are 1 ulp from it.
    assert ulp_distance(_f32(-0.0), _f32(0.0)).tolist() == [0]
    assert ulp_distance(_f32(-1e-45), _f32(1e-45)).tolist() == [2]
    # Below 2.0 floats are twice as dense: 2.0 down to its predecessor is 1 ulp, 1.0 is 2**23 away.
    assert ulp_distance(_f32(2.0), _f32(1.0)).tolist() == [2**23]


def test_within_ulp_is_exact_at_zero_and_bounded_above_it() -> None:
    a = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    assert within_ulp(a, a.copy(), 0)
    assert not within_ulp(a, _up(a, 1), 0)
    assert within_ulp(a, _up(a, 2), 2)
    assert not within_ulp(a, _up(a, 3), 2)
    b = a.copy()
    b[17] = _up(b[17:18], 3)[0]
    assert first_apart(a, b, 2) == 17
    assert not within_ulp(a, a[:-1], 5), "a shape difference is never within a tolerance"
    assert not within_ulp(_f32(0.0), _f32(-0.0), 0), "exact: the bytes, as the digests hash them"
    nan = _f32(np.nan, 1.0)
    assert within_ulp(nan, nan.copy(), 1)
    assert not within_ulp(nan, _f32(1.0, 1.0), 1_000_000)


def _validation(h: Harness, spec: object) -> dict[str, object]:
    state = h.state(spec, create=False)  # type: ignore[arg-type]
    assert state is not None
    rows = [r for r in state.all_actions() if r["action_id"].startswith("validate")]
    assert rows, "the plan validates"
    result: dict[str, object] = json.loads(rows[-1]["result_json"])
    return result


def test_copy_into_a_store_within_its_ulp_validates_and_says_so(h: Harness) -> None:
    source = h.seed(400)
    spec = h.spec("big-bang", target_connection={"vector_ulps": 1})
    h.apply(spec)
    kept = h.target.snapshot("docs_v2")
    moved = sum(kept[rid][0] != np.ascontiguousarray(v, dtype="<f4").tobytes()
                for rid, v in zip(source.ids, source.vectors, strict=True))
    assert moved == 400, "the target really changed every vector (by 1 ulp)"
    result = _validation(h, spec)
    assert result["ok"] is True and result["vector_ulps"] == 1 and result["method"] == "records"
    assert "server_digest_skipped" in result
    # The diff of the next plan takes the moved vectors as equal: nothing to copy again.
    seen = h.plan(spec)
    assert not [a for a in seen.actions if a.kind == "copy_shard"]


def test_moved_further_than_declared_fails_validation_naming_the_value(h: Harness) -> None:
    h.seed(300)
    spec = h.spec("big-bang", target_connection={"vector_ulps": 1, "moves_ulp": 2})
    with pytest.raises(ValidationFailed, match=r"300 different .*vector\[0\]"):
        h.apply(spec)


def test_a_bit_exact_store_that_moves_values_still_fails(h: Harness) -> None:
    h.seed(200)
    spec = h.spec("big-bang", target_connection={"moves_ulp": 1})
    with pytest.raises(ValidationFailed, match=r"200 different"):
        h.apply(spec)


def test_the_diff_compares_metadata_exactly_and_vectors_within_the_tolerance(h: Harness) -> None:
    h.seed(300)
    spec = h.spec("big-bang", target_connection={"vector_ulps": 2})
    h.apply(spec)
    coll = h.target.collections["docs_v2"]
    # Record 5: a metadata value changed; record 6: a vector value 3 ulp off (beyond 2);
    # record 7: one value moved back 1 ulp (still within 2 of the source).
    coll.records[5] = replace(coll.records[5], metadata={**coll.records[5].metadata, "year": 1})
    for rid, steps in ((6, 3), (7, -1)):
        vec = np.frombuffer(coll.records[rid].vector, dtype="<f4").copy()
        toward = np.float32(np.inf if steps > 0 else -np.inf)
        for _ in range(abs(steps)):
            vec[1] = np.nextafter(vec[1], toward)
        coll.records[rid] = replace(coll.records[rid], vector=vec.astype("<f4").tobytes())
    coll.version += 1
    diff = refresh(spec).diff
    assert diff is not None and diff.method == "scan"
    assert diff.counts.to_json() == {"add": 0, "change": 2, "delete": 0, "unchanged": 298}
    listed = {rid for shard in diff.shards for rid in (shard.ids or ())}
    assert listed == {5, 6}, "the metadata change and the vector beyond 2 ulp; record 7 is within it"
