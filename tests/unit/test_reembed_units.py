"""The pieces of a re-embedding apply that need no model: the frozen flags, the diff's scheme
for re-embedded targets, the old vector kept as JSON that reads back to the same float32 bits,
and the source side as a re-embedded target holds it (vectors left out of every digest)."""

from __future__ import annotations

import json

import numpy as np

from vecmig.actions.params import ValidateCompletenessParams
from vecmig.diff.keys import SCAN_SCHEME, scan_scheme
from vecmig.diff.reembedded import Reembedded
from vecmig.embed.keep_old import old_vector_value, with_old_vectors
from vecmig.records import Batch, batch_digests


def batch(vectors: np.ndarray, meta: list[dict[str, object]] | None = None) -> Batch:
    n = len(vectors)
    return Batch(ids=list(range(n)), vectors=vectors, metadata=meta or [{"k": i} for i in range(n)],
                 texts=[f"t{i}" for i in range(n)])


def test_validate_params_freeze_the_reembedded_flag_and_old_plans_load_without_it() -> None:
    p = ValidateCompletenessParams(shards=[None], reembedded=True, keep_old="old")
    assert ValidateCompletenessParams.from_json(json.loads(json.dumps(p.to_json()))) == p
    plain = ValidateCompletenessParams(shards=[None]).to_json()
    assert "reembedded" not in plain  # plans without re-embedding are unchanged byte for byte
    assert ValidateCompletenessParams.from_json(plain).reembedded is False


def test_the_scheme_of_reembedded_digests_is_its_own() -> None:
    assert scan_scheme(False, 0, reembedded=True) != SCAN_SCHEME
    assert scan_scheme(False, 0, reembedded=True) != scan_scheme(False, 4)
    assert scan_scheme(False) == SCAN_SCHEME


def test_old_vectors_survive_json_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    vectors = np.concatenate([rng.normal(size=(20, 16)).astype(np.float32),
                              np.array([[np.float32(1e-45), np.float32(3.4028235e38), -0.0, 0.1] * 4],
                                       dtype=np.float32)])
    for v in vectors:
        back = np.asarray(json.loads(json.dumps(old_vector_value(v))), dtype=np.float32)
        assert back.tobytes() == v.tobytes()


def test_vectors_do_not_count_but_the_kept_old_vector_does() -> None:
    rng = np.random.default_rng(4)
    old = rng.normal(size=(3, 8)).astype(np.float32)
    new = rng.normal(size=(3, 8)).astype(np.float32)
    view = Reembedded(keep_old="old")
    source = view.as_target(batch(old))
    # What the copy writes: new vectors, the old ones under "old".
    written = Batch(ids=[0, 1, 2], vectors=new, metadata=with_old_vectors(batch(old), "old"),
                    texts=["t0", "t1", "t2"])
    assert batch_digests(source, vectors=False) == batch_digests(written, vectors=False)
    # A source vector that changed shows in the kept field; without keep_old, it does not count at all.
    moved = old.copy()
    moved[1, 0] += 1.0
    assert batch_digests(view.as_target(batch(moved)), vectors=False)[1] != batch_digests(written, vectors=False)[1]
    bare = Reembedded(keep_old=None)
    assert batch_digests(bare.as_target(batch(moved)), vectors=False) == batch_digests(batch(new), vectors=False)
