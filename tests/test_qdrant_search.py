"""Qdrant search through qdrant-client against the local Qdrant server: random filters against
vecmig.filters.matches, ids mapped back (uuid5 points), scores per distance, what is refused."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.qdrant_local import QdrantLocal
from tests.support.random_filters import Shape, check_store, records, write
from vecmig.providers.qdrant.provider import QdrantProvider
from vecmig.records import Batch
from vecmig.spec import CreateSpec, StoreSpec

pytestmark = pytest.mark.integration
KEY = "search-key"
SHAPE = Shape(string_ranges=False, number_lists=True)


@pytest.fixture(scope="module")
def server() -> Iterator[QdrantLocal]:
    with QdrantLocal(api_key=KEY) as srv:
        yield srv


def provider(srv: QdrantLocal, name: str, metric: str = "euclidean") -> QdrantProvider:
    return QdrantProvider(StoreSpec(provider="qdrant", connection={"url": srv.url, "api_key": KEY}, collection=name,
                                    create=CreateSpec(metric=metric), pointer="/target"))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_filters_match_the_reference(server: QdrantLocal, seed: int) -> None:
    batch = records(150, seed, SHAPE)  # string ids: uuid5 points, mapped back
    p = provider(server, f"rnd{seed}")
    try:
        write(p, batch)
        assert check_store(p, batch, seed, SHAPE) > 20
    finally:
        p.drop_collection()
        p.close()


def test_int_ids_scores_and_settings(server: QdrantLocal) -> None:
    for metric in ("euclidean", "dotproduct"):
        rng = np.random.default_rng(3)
        batch = Batch(ids=list(range(30)), vectors=rng.standard_normal((30, 4)).astype(np.float32),
                      metadata=[{"k": i % 3} for i in range(30)])
        p = provider(server, f"sc{metric[:3]}", metric)
        try:
            write(p, batch, metric)
            q = batch.vectors[7]
            hits = p.query(q, 30)
            assert all(type(h.id) is int for h in hits)
            v = batch.vectors.astype(np.float64)
            want = (-np.linalg.norm(v - q, axis=1) if metric == "euclidean" else v @ q.astype(np.float64))
            got = {h.id: h.score for h in hits}
            assert np.allclose([got[i] for i in range(30)], want, atol=1e-4)
            assert [h.id for h in p.query(q, 4, {"k": 1})] == [
                i for i in sorted(range(30), key=lambda i: -want[i]) if i % 3 == 1][:4]
            settings = p.search_settings()
            assert (settings["index_type"], settings["metric"], settings["m"], settings["ef_search"]) == (
                "hnsw", metric, 16, 100)
        finally:
            p.drop_collection()
            p.close()
