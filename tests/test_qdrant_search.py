"""Qdrant search through qdrant-client against the local Qdrant server: random filters against
vecmig.filters.matches, ids mapped back (uuid5 points), scores per distance, what is refused."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import closing

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


@pytest.mark.parametrize("seed", [1])
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


def test_a_cosine_collection_made_by_qdrant_client_scores_cosine_similarity(server: QdrantLocal) -> None:
    """vecmig creates no cosine collection (QD003), but reads one: Qdrant normalises the points and
    the query, and its score is the cosine similarity."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((25, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an API key over plain http: a local server
        client = QdrantClient(url=server.url, api_key=KEY, prefer_grpc=False, check_compatibility=False)
    with closing(client):
        client.create_collection("cos", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
        client.upsert("cos", points=[models.PointStruct(id=i, vector=v.tolist(), payload={"even": i % 2 == 0})
                                     for i, v in enumerate(vectors)], wait=True)
    p = provider(server, "cos")
    try:
        q = vectors[4] * 3.0
        v = vectors.astype(np.float64)
        want = v @ q / np.linalg.norm(v, axis=1) / np.linalg.norm(q)
        hits = p.query(q, 25)
        assert hits[0].id == 4 and np.allclose([h.score for h in hits], sorted(want, reverse=True), atol=1e-5)
        assert all(h.id % 2 == 0 for h in p.query(q, 5, {"even": True}))
    finally:
        p.drop_collection()
        p.close()
