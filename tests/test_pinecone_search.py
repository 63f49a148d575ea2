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
from vecmig.providers.pinecone import PineconeProvider, pricing
from vecmig.providers.pinecone.search import pinecone_filter
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


@pytest.mark.parametrize("seed", [1, 2])
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


def test_query_cost_grows_with_the_namespace() -> None:
    assert pricing.query_usage(1000, 1_000_000).read_units == 250.0  # a tiny namespace: 0.25 RU each
    assert pricing.query_usage(1000, int(7.14e9)).read_units == pytest.approx(7140.0)  # the guide's 1M x 1536
    p = PineconeProvider(StoreSpec(provider="pinecone", connection={"api_key": API_KEY}, collection="c",
                                   pointer="/target"))
    # 1000 queries on 1M records of 7.14 KB at the standard plan's $16 per million RU
    assert p.cost("query", 1000, int(7.14e9), {}) == {"pinecone_read_units": round(7140 / 1e6 * 16.0, 4)}


def test_refused_filters() -> None:
    with pytest.raises(TerminalError, match=r"\$gte"):
        pinecone_filter({"a": {"$gte": "m"}}, text_key="text", selected=None)
    with pytest.raises(TerminalError, match="record text"):
        pinecone_filter({"text": "x"}, text_key="text", selected=None)
    with pytest.raises(TerminalError, match=r"fields\.metadata"):
        pinecone_filter({"b": 1}, text_key="text", selected=("a",))
    assert pinecone_filter({"$or": [{"a": 1}, {"b": {"$lt": 2}}]}, text_key="text", selected=None) == {
        "$or": [{"a": 1}, {"b": {"$lt": 2}}]}
