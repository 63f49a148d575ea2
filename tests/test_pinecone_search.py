"""Pinecone search through the real SDK against the local server: random filters against
vecmig.filters.matches, every namespace merged for "*", scores per metric (euclidean's squared
distance converted), the top_k limit, read units of a query, what is refused."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pinecone import Pinecone

from tests.pinecone_local import PineconeLocal, reset_sdk_host_state
from tests.support.random_filters import Shape, check_store, records, write
from vecmig.errors import TerminalError
from vecmig.providers.pinecone import PineconeProvider
from vecmig.records import Batch
from vecmig.spec import CreateSpec, StoreSpec

pytestmark = pytest.mark.integration
API_KEY = "search-key"
SHAPE = Shape(string_ranges=False)


@pytest.fixture(scope="module")
def srv() -> Iterator[PineconeLocal]:
    with PineconeLocal(api_key=API_KEY) as server:
        yield server
    reset_sdk_host_state()


def provider(srv: PineconeLocal, name: str, metric: str = "euclidean", namespace: str | None = None) \
        -> PineconeProvider:
    return PineconeProvider(StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": srv.url},
                                      collection=name, namespace=namespace, create=CreateSpec(metric=metric),  # type: ignore[arg-type]
                                      pointer="/target"))


@pytest.mark.parametrize("seed", [1])
def test_random_filters_match_the_reference(srv: PineconeLocal, seed: int) -> None:
    batch = records(150, seed, SHAPE)
    p = provider(srv, f"rnd-{seed}")
    try:
        write(p, batch)
        assert check_store(p, batch, seed, SHAPE) > 20
    finally:
        p.drop_collection()
        p.close()


def test_scores_namespaces_and_limits(srv: PineconeLocal) -> None:
    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((30, 4)).astype(np.float32)
    for metric in ("cosine", "euclidean", "dotproduct"):
        name = f"sc-{metric[:3]}"
        a, b = provider(srv, name, metric, "na"), provider(srv, name, metric, "nb")
        try:
            write(a, Batch(ids=[f"a{i}" for i in range(30)], vectors=vectors, metadata=[{}] * 30), metric)
            b.upsert(Batch(ids=[f"b{i}" for i in range(30)], vectors=vectors + 0.01, metadata=[{}] * 30))
            q = vectors[2]
            v = vectors.astype(np.float64)
            want = {"cosine": v @ q / np.linalg.norm(v, axis=1) / np.linalg.norm(q), "dotproduct": v @ q,
                    "euclidean": -np.linalg.norm(v - q, axis=1)}[metric]
            hits = a.query(q, 30)
            assert {h.id for h in hits} == {f"a{i}" for i in range(30)}, "the configured namespace only"
            got = {h.id: h.score for h in hits}
            assert np.allclose([got[f"a{i}"] for i in range(30)], want, rtol=1e-4, atol=1e-4)
            both = provider(srv, name, metric, "*").query(q, 60)
            assert len(both) == 60 and [h.score for h in both] == sorted((h.score for h in both), reverse=True)
            assert a.search_settings() == {"index_type": "serverless", "metric": metric, "namespace": "na",
                                           "max_top_k": 10_000}
            assert len(a.query(q, 10_000)) == 30
            with pytest.raises(TerminalError, match="at most 10000"):
                a.query(q, 10_001)
        finally:
            a.drop_collection()
            a.close()
            b.close()


def test_the_local_server_refuses_top_k_above_10000_and_meters_by_namespace_size(srv: PineconeLocal) -> None:
    """Through the raw REST call: the SDK itself refuses top_k > 10000 before sending."""
    import httpx

    with Pinecone(api_key=API_KEY, host=srv.url) as pc:
        p = provider(srv, "raw")
        try:
            write(p, Batch(ids=["x"], vectors=np.ones((1, 4), np.float32), metadata=[{}]))
            host = pc.describe_index("raw").host
            url = host if host.startswith("http") else f"http://{host}"
            r = httpx.post(f"{url}/query", json={"topK": 10_001, "vector": [1, 1, 1, 1]}, headers={"Api-Key": API_KEY})
            assert r.status_code == 400 and "10000" in r.text
            r = httpx.post(f"{url}/query", json={"topK": 1, "vector": [1, 1, 1, 1]}, headers={"Api-Key": API_KEY})
            assert r.json()["usage"]["readUnits"] == 1
        finally:
            p.drop_collection()
            p.close()




def test_transient_errors_on_query_are_retried(srv: PineconeLocal) -> None:
    p = provider(srv, "flaky")
    try:
        batch = records(40, 3, SHAPE)
        write(p, batch)
        want = [h.id for h in p.query(batch.vectors[0], 5, {"i": {"$gte": 0}})]
        srv.reset_stats()
        srv.set_faults(script=["429", "503", "drop", "ok"], retry_after=0, retry_after_503=0, endpoints=["query"])
        try:
            assert [h.id for h in p.query(batch.vectors[0], 5, {"i": {"$gte": 0}})] == want
            assert sum(srv.stats()["faults"].values()) == 3, "every scripted fault was met and absorbed"
        finally:
            srv.clear_faults()
            reset_sdk_host_state()
    finally:
        p.drop_collection()
        p.close()
