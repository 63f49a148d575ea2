"""Conformance of the local Pinecone fake, driven through the real ``pinecone`` SDK.

Where the SDK validates an argument before sending it (top_k, list limit,
metadata types, index names) the server-side rule is exercised with a raw HTTP
request instead, since the SDK would never let the bad request reach the wire.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from pinecone import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    Pinecone,
    PineconeApiException,
    PineconeConnectionError,
    RateLimitError,
    RetryConfig,
    ServerlessSpec,
    ServiceError,
    UnauthorizedError,
)

from tests.pinecone_local import PineconeLocal, reset_sdk_host_state

API_KEY = "test-key"
SPEC = ServerlessSpec(cloud="aws", region="us-east-1")


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture
def srv() -> Iterator[PineconeLocal]:
    with PineconeLocal(api_key=API_KEY) as server:
        yield server
    # The SDK keys retry budgets and throttle holds by hostname, process-wide;
    # fault tests must not leave 127.0.0.1 throttled for the next test.
    reset_sdk_host_state()


@pytest.fixture
def pc(srv: PineconeLocal) -> Iterator[Pinecone]:
    with Pinecone(api_key=API_KEY, host=srv.url) as client:
        yield client


def make_index(pc: Pinecone, name: str, dimension: int = 4, metric: str = "cosine", **kw: Any) -> Any:
    return pc.create_index(name=name, dimension=dimension, metric=metric, spec=SPEC, **kw)


def raw(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    api_key: str | None = API_KEY,
    data: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request with no SDK in the way; returns (status, headers, JSON body)."""
    if data is None and body is not None:
        data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Pinecone-Api-Version": "2026-07"}
    if api_key is not None:
        headers["Api-Key"] = api_key
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
            return response.status, dict(response.headers), json.loads(payload) if payload else None
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        return exc.code, dict(exc.headers), json.loads(payload) if payload else None


def f32_bits(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def wait_ready(pc: Pinecone, name: str, timeout: float = 3.0) -> Any:
    # The SDK's own wait polls every 5 s; polling here keeps the test fast.
    deadline = time.monotonic() + timeout
    while True:
        model = pc.describe_index(name)
        if model.status.ready:
            return model
        assert time.monotonic() < deadline, f"index {name} never became ready"
        time.sleep(0.02)


# ---------------------------------------------------------------------------
# Control plane
# ---------------------------------------------------------------------------


def test_create_waits_ready_then_list_describe_delete(srv: PineconeLocal, pc: Pinecone) -> None:
    # A long delay makes the not-ready checks independent of machine speed.
    srv.set_ready_delay(60)
    make_index(pc, "slow", timeout=-1)
    assert pc.describe_index("slow").status.state == "Initializing"
    status, _, body = raw(srv.index_host("slow"), "POST", "/describe_index_stats", {})
    assert status == 503 and body["code"] == 14
    pc.delete_index("slow")

    srv.set_ready_delay(0.3)
    created = make_index(pc, "movies", dimension=8, metric="euclidean", timeout=-1, tags={"env": "test"})
    assert created.status.ready is False
    assert created.status.state == "Initializing"
    host = srv.index_host("movies")
    ready = wait_ready(pc, "movies")
    assert ready.status.state == "Ready"
    assert ready.host == host and host.startswith("http://127.0.0.1:")
    assert (ready.dimension, ready.metric, ready.vector_type) == (8, "euclidean", "dense")
    assert (ready.deployment.cloud, ready.deployment.region) == ("aws", "us-east-1")
    assert ready.spec.serverless.cloud == "aws"
    assert ready.deletion_protection == "disabled"
    assert dict(ready.tags) == {"env": "test"}
    assert [ix.name for ix in pc.list_indexes()] == ["movies"]
    assert pc.has_index("movies")

    pc.delete_index("movies")
    assert not pc.has_index("movies")
    assert list(pc.list_indexes()) == []
    with pytest.raises(NotFoundError) as err:
        pc.describe_index("movies")
    assert err.value.status_code == 404
    assert err.value.body["error"]["code"] == "NOT_FOUND"
    assert err.value.body["status"] == 404


def test_create_without_delay_returns_ready_and_rejects_duplicates(pc: Pinecone) -> None:
    model = make_index(pc, "ready-now")
    assert model.status.ready
    with pytest.raises(ConflictError) as err:
        make_index(pc, "ready-now")
    assert err.value.status_code == 409
    assert err.value.body["error"]["code"] == "ALREADY_EXISTS"


def test_index_name_and_dimension_rules(srv: PineconeLocal, pc: Pinecone) -> None:
    with pytest.raises(PineconeApiException) as err:
        make_index(pc, "too-wide", dimension=20_001)
    assert err.value.status_code == 400
    assert err.value.body["error"]["code"] == "INVALID_ARGUMENT"
    make_index(pc, "widest", dimension=20_000)

    # The SDK checks names itself, so the server's own rule is probed raw.
    def create(name: str, dimension: int = 4) -> int:
        body = {
            "name": name,
            "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": "cosine"}}},
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        }
        status, _, payload = raw(srv.url, "POST", "/indexes", body)
        if status != 201:
            assert payload["status"] == status and payload["error"]["message"]
        return status

    assert create("Upper-Case") == 400
    assert create("under_score") == 400
    assert create("-leading") == 400
    assert create("trailing-") == 400
    assert create("x" * 46) == 400
    assert create("x" * 45) == 201
    assert create("zero-dim", dimension=0) == 400


def test_deletion_protection_and_configure(pc: Pinecone) -> None:
    make_index(pc, "guarded", deletion_protection="enabled", tags={"team": "a", "tier": "1"})
    with pytest.raises(ForbiddenError) as err:
        pc.delete_index("guarded")
    assert err.value.status_code == 403
    assert err.value.body["error"]["code"] == "FORBIDDEN"
    assert "Deletion protection" in err.value.message
    assert pc.has_index("guarded")

    model = pc.configure_index("guarded", deletion_protection="disabled", tags={"tier": "", "new": "x"})
    assert model.deletion_protection == "disabled"
    assert dict(model.tags) == {"team": "a", "new": "x"}
    pc.delete_index("guarded")
    assert not pc.has_index("guarded")


def test_api_key_required_on_both_planes(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "keyed")
    with Pinecone(api_key="wrong-key", host=srv.url) as bad:
        with pytest.raises(UnauthorizedError) as err:
            bad.list_indexes()
        assert err.value.status_code == 401
        assert err.value.body["error"]["code"] == "UNAUTHENTICATED"
        with bad.Index(host=srv.index_host("keyed")) as idx, pytest.raises(UnauthorizedError) as data_err:
            idx.describe_index_stats()
        assert isinstance(data_err.value, PineconeApiException)
        assert data_err.value.body == {"code": 16, "message": "Invalid API Key", "details": []}
    status, _, body = raw(srv.url, "GET", "/indexes", api_key=None)
    assert status == 401 and body["status"] == 401
    # The SDK sends its API version on every request; the fake records it.
    assert "2026-07" in srv.stats()["api_versions"]


def test_scheme_less_host_is_read_as_https(srv: PineconeLocal) -> None:
    # Documented SDK behaviour: no scheme means TLS, which a plain-HTTP server
    # cannot speak, so the fake's hosts always carry http://.
    no_retry = RetryConfig(max_retries=0)
    with Pinecone(api_key=API_KEY, host=srv.host, retry_config=no_retry) as client:
        assert client.config.host == f"https://{srv.host}"
        with pytest.raises(PineconeConnectionError):
            client.list_indexes()


# ---------------------------------------------------------------------------
# Data plane
# ---------------------------------------------------------------------------


def test_upsert_fetch_round_trip_is_float32_exact(pc: Pinecone) -> None:
    make_index(pc, "exact", dimension=16)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20, 16)).astype(np.float32)
    with pc.Index(name="exact") as idx:
        response = idx.upsert(
            vectors=[
                {
                    "id": f"v{i:02d}",
                    "values": vectors[i].tolist(),
                    "metadata": {"n": i, "ratio": 0.5, "ok": i % 2 == 0, "tags": ["a", "b"], "gone": None},
                }
                for i in range(20)
            ]
        )
        assert response.upserted_count == 20
        fetched = idx.fetch(ids=[f"v{i:02d}" for i in range(20)] + ["missing"])
        assert set(fetched.vectors) == {f"v{i:02d}" for i in range(20)}
        for i in range(20):
            vec = fetched.vectors[f"v{i:02d}"]
            assert np.array_equal(f32_bits(vec.values), vectors[i].view(np.uint32))
            # Pinecone's metadata is a protobuf Struct: ints come back as
            # floats and nulls are stripped on write.
            assert vec.metadata == {"n": float(i), "ratio": 0.5, "ok": i % 2 == 0, "tags": ["a", "b"]}
            assert isinstance(vec.metadata["n"], float)

        # float64 input is stored as float32 and printed shortest-first, the way
        # the real gateway prints it: 0.1 comes back as 0.1, not 0.10000000149.
        idx.upsert(vectors=[("f64", [0.1] * 16)])
        back = idx.fetch(ids=["f64"]).vectors["f64"].values
        assert back == [0.1] * 16
        assert np.array_equal(f32_bits(back), f32_bits([0.1] * 16))


def test_sparse_dense_needs_a_sparse_field(pc: Pinecone) -> None:
    pc.indexes.create(
        name="hybrid",
        schema={
            "fields": {
                "_values": {"type": "dense_vector", "dimension": 3, "metric": "dotproduct"},
                "_sparse_values": {"type": "sparse_vector"},
            }
        },
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
    )
    with pc.Index(name="hybrid") as idx:
        idx.upsert(
            vectors=[
                {"id": "a", "values": [1.0, 0.0, 0.0], "sparse_values": {"indices": [7, 9], "values": [0.5, 2.0]}},
                {"id": "b", "values": [0.0, 1.0, 0.0], "sparse_values": {"indices": [9], "values": [1.0]}},
            ]
        )
        got = idx.fetch(ids=["a"]).vectors["a"]
        assert got.sparse_values.indices == [7, 9] and got.sparse_values.values == [0.5, 2.0]
        result = idx.query(
            vector=[0.0, 1.0, 0.0],
            sparse_vector={"indices": [9], "values": [3.0]},
            top_k=2,
            include_values=True,
        )
        # dense dot + sparse dot: a = 0 + 2*3 = 6, b = 1 + 1*3 = 4
        assert [(m.id, m.score) for m in result.matches] == [("a", 6.0), ("b", 4.0)]
        assert result.matches[0].sparse_values.indices == [7, 9]

    make_index(pc, "dense-dot", dimension=3, metric="dotproduct")
    with pc.Index(name="dense-dot") as idx:
        with pytest.raises(ApiError) as err:
            idx.upsert(vectors=[{"id": "s", "values": [1.0, 0, 0], "sparse_values": {"indices": [1], "values": [1.0]}}])
        assert err.value.status_code == 400 and err.value.body["code"] == 3
        assert idx.describe_index_stats().total_vector_count == 0


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # query [1, 0]; a=[1, 0], b=[1, 1], c=[-2, 0]
        ("cosine", [("a", 1.0), ("b", 0.70710677), ("c", -1.0)]),
        ("dotproduct", [("a", 1.0), ("b", 1.0), ("c", -2.0)]),
        # euclidean scores are squared distances, smallest first
        ("euclidean", [("a", 0.0), ("b", 1.0), ("c", 9.0)]),
    ],
)
def test_query_scores_per_metric(pc: Pinecone, metric: str, expected: list[tuple[str, float]]) -> None:
    make_index(pc, f"m-{metric}", dimension=2, metric=metric)
    with pc.Index(name=f"m-{metric}") as idx:
        idx.upsert(vectors=[("a", [1.0, 0.0]), ("b", [1.0, 1.0]), ("c", [-2.0, 0.0])])
        result = idx.query(vector=[1.0, 0.0], top_k=3)
        assert [m.id for m in result.matches] == [e[0] for e in expected]
        assert [m.score for m in result.matches] == pytest.approx([e[1] for e in expected], abs=1e-6)
        assert all(m.values == [] and m.metadata is None for m in result.matches)
        assert [m.id for m in idx.query(id="a", top_k=1).matches] == [expected[0][0]]
        assert idx.query(id="nope", top_k=3).matches == []


def test_query_metadata_filters(pc: Pinecone) -> None:
    make_index(pc, "filters", dimension=2)
    rows = [
        ("r1", {"genre": "drama", "year": 1999, "tags": ["x", "y"], "live": True}),
        ("r2", {"genre": "comedy", "year": 2005, "tags": ["y"], "live": False}),
        ("r3", {"genre": "drama", "year": 2015, "live": True}),
        ("r4", {"genre": "horror", "year": 2020}),
    ]
    with pc.Index(name="filters") as idx:
        idx.upsert(vectors=[(vid, [1.0, float(i + 1)], meta) for i, (vid, meta) in enumerate(rows)], namespace="f")

        def ids(flt: dict[str, Any]) -> set[str]:
            res = idx.query(vector=[1.0, 1.0], top_k=10, namespace="f", filter=flt, include_metadata=True)
            return {m.id for m in res.matches}

        assert ids({"genre": "drama"}) == {"r1", "r3"}
        assert ids({"genre": {"$eq": "drama"}}) == {"r1", "r3"}
        assert ids({"genre": {"$in": ["comedy", "horror"]}}) == {"r2", "r4"}
        assert ids({"$and": [{"genre": "drama"}, {"year": {"$gte": 2000}}]}) == {"r3"}
        assert ids({"$or": [{"genre": "comedy"}, {"year": {"$lt": 2000}}]}) == {"r1", "r2"}
        assert ids({"tags": "y"}) == {"r1", "r2"}
        assert ids({"tags": {"$in": ["x"]}}) == {"r1"}
        assert ids({"genre": {"$ne": "drama"}}) == {"r2", "r4"}
        assert ids({"genre": {"$nin": ["drama", "comedy"]}}) == {"r4"}
        assert ids({"live": {"$exists": False}}) == {"r4"}
        assert ids({"live": True}) == {"r1", "r3"}
        assert ids({"year": {"$gt": 2005, "$lte": 2020}}) == {"r3", "r4"}
        top = idx.query(vector=[1.0, 1.0], top_k=1, namespace="f", filter={"genre": "drama"}, include_metadata=True)
        assert top.matches[0].metadata["year"] == 1999.0
        with pytest.raises(ApiError) as err:
            idx.query(vector=[1.0, 1.0], top_k=1, namespace="f", filter={"genre": {"$regex": "d"}})
        assert err.value.status_code == 400


def test_list_paginates_sorted_ids_per_namespace(pc: Pinecone) -> None:
    make_index(pc, "lister", dimension=2)
    ids_a = [f"doc#{i:03d}" for i in range(25)]
    rng = np.random.default_rng(1)
    with pc.Index(name="lister") as idx:
        idx.upsert(vectors=[(vid, [1.0, 2.0]) for vid in rng.permutation(ids_a).tolist()], namespace="a")
        idx.upsert(vectors=[(f"other-{i}", [1.0, 2.0]) for i in range(7)], namespace="b")
        idx.upsert(vectors=[("doc#999", [1.0, 2.0]), ("zzz", [1.0, 2.0])], namespace="b")

        pages = list(idx.list(namespace="a", limit=10))
        assert [len(p.vectors) for p in pages] == [10, 10, 5]
        assert [v.id for p in pages for v in p.vectors] == sorted(ids_a)
        assert pages[0].pagination is not None and isinstance(pages[0].pagination.next, str)
        assert pages[-1].pagination is None

        first = idx.list_paginated(namespace="a", limit=10)
        second = idx.list_paginated(namespace="a", limit=10, pagination_token=first.pagination.next)
        assert second.vectors[0].id == "doc#010"

        in_b = [v.id for p in idx.list(namespace="b", prefix="doc#") for v in p.vectors]
        assert in_b == ["doc#999"]
        assert [v.id for p in idx.list(namespace="b") for v in p.vectors] == sorted(
            [f"other-{i}" for i in range(7)] + ["doc#999", "zzz"]
        )
        assert list(idx.list(namespace="empty")) == []
        with pytest.raises(ApiError) as err:
            idx.list_paginated(namespace="a", pagination_token="not a token!")
        assert err.value.status_code == 400


def test_delete_and_stats_per_namespace(pc: Pinecone) -> None:
    make_index(pc, "counts", dimension=2)
    with pc.Index(name="counts") as idx:
        idx.upsert(vectors=[(f"d{i}", [1.0, 0.5], {"k": i % 2}) for i in range(6)])
        idx.upsert(vectors=[(f"n{i}", [1.0, 0.5]) for i in range(4)], namespace="ns")
        stats = idx.describe_index_stats()
        assert stats.dimension == 2 and stats.total_vector_count == 10
        assert stats.index_fullness == 0.0
        assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 6, "ns": 4}

        idx.delete(ids=["d0", "d1", "does-not-exist"])
        idx.delete(filter={"k": {"$eq": 0}})
        assert sorted(idx.fetch(ids=[f"d{i}" for i in range(6)]).vectors) == ["d3", "d5"]
        idx.delete(delete_all=True, namespace="ns")
        stats = idx.describe_index_stats()
        assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 2}
        assert stats.total_vector_count == 2
        # Serverless answers 404 for a delete in a namespace that holds nothing.
        with pytest.raises(NotFoundError) as err:
            idx.delete(delete_all=True, namespace="ns")
        assert err.value.body["code"] == 5


def test_update_by_id_and_by_filter(pc: Pinecone) -> None:
    make_index(pc, "updates", dimension=2)
    with pc.Index(name="updates") as idx:
        idx.upsert(vectors=[("u1", [1.0, 0.0], {"a": "x", "b": 1}), ("u2", [0.0, 1.0], {"a": "y"})])
        idx.update(id="u1", values=[0.5, 0.5], set_metadata={"b": 2, "c": True})
        got = idx.fetch(ids=["u1"]).vectors["u1"]
        assert got.values == [0.5, 0.5]
        assert got.metadata == {"a": "x", "b": 2.0, "c": True}
        preview = idx.update(filter={"a": {"$in": ["x", "y"]}}, set_metadata={"seen": True}, dry_run=True)
        assert preview.matched_records == 2
        assert "seen" not in idx.fetch(ids=["u2"]).vectors["u2"].metadata
        done = idx.update(filter={"a": "y"}, set_metadata={"seen": True})
        assert done.matched_records == 1
        assert idx.fetch(ids=["u2"]).vectors["u2"].metadata == {"a": "y", "seen": True}


def test_main_port_serves_the_only_index(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "only", dimension=2)
    with pc.Index(host=srv.url) as idx:
        idx.upsert(vectors=[("x", [1.0, 1.0])])
        assert idx.describe_index_stats().total_vector_count == 1
    make_index(pc, "second", dimension=2)
    status, _, body = raw(srv.url, "POST", "/describe_index_stats", {})
    assert status == 400 and "exactly one index" in body["message"]


# ---------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------


def test_upsert_batch_and_size_limits(pc: Pinecone) -> None:
    make_index(pc, "limits", dimension=2)
    make_index(pc, "wide", dimension=1000)
    with pc.Index(name="limits") as idx:
        with pytest.raises(ApiError) as err:
            idx.upsert(vectors=[(f"v{i}", [1.0, 2.0]) for i in range(1001)])
        assert err.value.status_code == 400
        assert "1001" in err.value.message
        assert idx.upsert(vectors=[(f"v{i}", [1.0, 2.0]) for i in range(1000)]).upserted_count == 1000
    rng = np.random.default_rng(2)
    with pc.Index(name="wide") as idx:
        big = [(f"w{i}", rng.standard_normal(1000).tolist()) for i in range(150)]
        with pytest.raises(PineconeApiException) as err:
            idx.upsert(vectors=big)
        assert err.value.status_code == 400
        assert err.value.message == "Request size 3MB exceeds the maximum supported size of 2MB"
        assert err.value.body["code"] == 3
        assert idx.describe_index_stats().total_vector_count == 0


def test_oversize_can_answer_413_as_the_sdk_expects() -> None:
    # pinecone 10.x documents the size cap as 413 PayloadTooLargeError while
    # observed Pinecone answers 400; oversize_status=413 selects the former.
    with (
        PineconeLocal(api_key=API_KEY, oversize_status=413) as server,
        Pinecone(api_key=API_KEY, host=server.url) as client,
    ):
        make_index(client, "big413", dimension=1000)
        rng = np.random.default_rng(3)
        big = [(f"w{i}", rng.standard_normal(1000).tolist()) for i in range(150)]
        with client.Index(name="big413") as idx:
            with pytest.raises(PayloadTooLargeError) as err:
                idx.upsert(vectors=big)
            assert err.value.status_code == 413
            # A batched upsert reports the failed batch instead of raising.
            failed = idx.upsert(vectors=big, batch_size=150, show_progress=False)
            assert failed.has_errors and failed.upserted_count == 0
            done = idx.upsert(vectors=big, batch_size=50, show_progress=False)
            assert done.upserted_count == 150 and not done.has_errors
            assert idx.describe_index_stats().total_vector_count == 150
        assert server.stats()["responses"]["upsert"] == {"413": 2, "200": 3}
    reset_sdk_host_state()


def test_per_record_limits(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "records", dimension=4)
    with pc.Index(name="records") as idx:
        cases: list[tuple[Any, str]] = [
            ([("a", [1.0, 2.0, 3.0])], "Vector dimension 3 does not match the dimension of the index 4"),
            ([("x" * 513, [1.0] * 4)], "exceeds the maximum length of 512"),
            ([("", [1.0] * 4)], "must not be empty"),
            ([("z", [0.0] * 4)], "Dense vectors must contain at least one non-zero value"),
            ([("m", [1.0] * 4, {"text": "x" * 41_000})], "which exceeds the limit of 40960 bytes per vector"),
        ]
        for vectors, message in cases:
            with pytest.raises(PineconeApiException) as err:
                idx.upsert(vectors=vectors)
            assert err.value.status_code == 400, message
            assert message in err.value.message
        idx.upsert(vectors=[("x" * 512, [1.0] * 4, {"text": "x" * 40_000})])
        assert idx.describe_index_stats().total_vector_count == 1

        with pytest.raises(ApiError) as err:
            idx.fetch(ids=[f"id{i}" for i in range(1001)])
        assert err.value.status_code == 400
        with pytest.raises(ApiError) as err:
            idx.query(vector=[1.0, 2.0], top_k=1)
        assert err.value.status_code == 400
        assert "dimension 2 does not match the dimension of the index 4" in err.value.message

    # Rules the SDK enforces before sending; the server enforces them too.
    host = srv.index_host("records")
    nested = {"vectors": [{"id": "n", "values": [1, 2, 3, 4], "metadata": {"obj": {"a": 1}}}]}
    status, _, body = raw(host, "POST", "/vectors/upsert", nested)
    assert (status, body) == (
        400,
        {
            "code": 3,
            "message": "Metadata value must be a string, number, boolean or list of strings, "
            "got '{\"a\":1.0}' for field 'obj'",
            "details": [],
        },
    )
    mixed = {"vectors": [{"id": "n", "values": [1, 2, 3, 4], "metadata": {"l": ["a", 1]}}]}
    assert raw(host, "POST", "/vectors/upsert", mixed)[0] == 400
    assert raw(host, "POST", "/query", {"topK": 10_001, "vector": [1, 2, 3, 4]})[0] == 400
    assert raw(host, "POST", "/query", {"topK": 10_000, "vector": [1, 2, 3, 4]})[0] == 200
    assert raw(host, "GET", "/vectors/list?limit=101")[0] == 400
    assert raw(host, "GET", "/vectors/list?limit=100")[0] == 200
    ids_1001 = {"ids": [f"i{i}" for i in range(1001)]}
    assert raw(host, "POST", "/vectors/delete", ids_1001)[0] == 400
    assert raw(host, "POST", "/vectors/upsert", data=b"{not json")[0] == 400


def test_null_metadata_can_be_rejected_instead_of_stripped() -> None:
    with (
        PineconeLocal(api_key=API_KEY, null_metadata="reject") as server,
        Pinecone(api_key=API_KEY, host=server.url) as client,
    ):
        make_index(client, "strict", dimension=2)
        with client.Index(name="strict") as idx, pytest.raises(ApiError) as err:
            idx.upsert(vectors=[("a", [1.0, 2.0], {"k": None})])
        assert err.value.status_code == 400


# ---------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------


def test_429_has_retry_after_and_no_side_effect(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "throttled", dimension=2)
    host = srv.index_host("throttled")
    srv.set_faults(rate_429=1.0, retry_after=2)
    status, headers, body = raw(host, "POST", "/vectors/upsert", {"vectors": [{"id": "a", "values": [1, 2]}]})
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert body["code"] == 8 and body["details"] == []

    # The SDK retries 429 three times, honouring Retry-After (0 here).
    srv.set_faults(rate_429=1.0, retry_after=0)
    srv.reset_stats()
    with pc.Index(name="throttled") as idx:
        with pytest.raises(RateLimitError) as err:
            idx.upsert(vectors=[("a", [1.0, 2.0])])
        assert err.value.status_code == 429 and err.value.retry_after == 0.0
        stats = srv.stats()
        assert stats["requests"]["upsert"] == 4
        assert stats["faults"] == {"429": 4}
        assert stats["vectors_upserted"] == 0
        srv.clear_faults()
        assert idx.describe_index_stats().total_vector_count == 0


def test_transient_429s_are_retried_by_sdk_and_applied_once(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "retried", dimension=2)
    srv.set_faults(script=["429", "429"], retry_after=0, endpoints=["upsert"])
    srv.reset_stats()
    with pc.Index(name="retried") as idx:
        assert idx.upsert(vectors=[(f"v{i}", [1.0, 2.0]) for i in range(5)]).upserted_count == 5
        assert idx.query(vector=[1.0, 2.0], top_k=1).matches
    stats = srv.stats()
    assert stats["responses"]["upsert"] == {"429": 2, "200": 1}
    assert stats["responses"]["query"] == {"200": 1}
    assert stats["vectors_upserted"] == 5


def test_concurrent_batched_upserts_with_faults_land_exactly_once(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "bulk", dimension=8)
    # Three faults in total, so no batch can use up its four attempts, whatever
    # order the concurrent batches arrive in.
    srv.set_faults(script=["429", "503", "drop"], retry_after=0, retry_after_503=0)
    srv.reset_stats()
    rng = np.random.default_rng(4)
    vectors = [(f"b{i:04d}", rng.standard_normal(8).tolist()) for i in range(2000)]
    with pc.Index(name="bulk") as idx:
        result = idx.upsert(vectors=vectors, batch_size=100, max_concurrency=8, show_progress=False)
        assert result.upserted_count == 2000 and not result.has_errors
        stats = srv.stats()
        assert stats["requests"]["upsert"] == 23
        assert stats["faults"] == {"429": 1, "503": 1, "drop": 1}
        assert stats["vectors_upserted"] == 2000
        assert idx.describe_index_stats().total_vector_count == 2000


def test_503_is_retried_then_raised(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "flaky", dimension=2)
    srv.set_faults(rate_503=1.0, retry_after_503=0)
    status, headers, body = raw(srv.index_host("flaky"), "POST", "/query", {"topK": 1, "vector": [1, 2]})
    assert status == 503 and body["code"] == 14 and headers["Retry-After"] == "0"
    with pc.Index(name="flaky") as idx:
        with pytest.raises(ServiceError) as err:
            idx.upsert(vectors=[("a", [1.0, 2.0])])
        assert err.value.status_code == 503
    srv.clear_faults()
    assert srv.stats()["faults"]["503"] == 5
    with pc.Index(name="flaky") as idx:
        assert idx.describe_index_stats().total_vector_count == 0


def test_dropped_connections(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "dropper", dimension=2)
    host = urlsplit(srv.index_host("dropper"))
    srv.set_faults(rate_drop=1.0)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/vectors/upsert",
            body=json.dumps({"vectors": [{"id": "a", "values": [1, 2]}]}),
            headers={"Api-Key": API_KEY, "Content-Type": "application/json"},
        )
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()

    # One drop: the SDK reconnects and retries, and the write lands once.
    srv.set_faults(script=["drop"])
    srv.reset_stats()
    with pc.Index(name="dropper") as idx:
        assert idx.upsert(vectors=[("b", [1.0, 2.0])]).upserted_count == 1
        assert srv.stats()["responses"]["upsert"] == {"drop": 1, "200": 1}
        srv.clear_faults()
        assert idx.describe_index_stats().total_vector_count == 1

    # With retries off, a dropped connection surfaces as a connection error.
    srv.set_faults(rate_drop=1.0, include_control=True)
    no_retry = RetryConfig(max_retries=0)
    with (
        Pinecone(api_key=API_KEY, host=srv.url, retry_config=no_retry) as client,
        pytest.raises(PineconeConnectionError),
    ):
        client.list_indexes()


def test_seeded_faults_are_deterministic_and_scoped(srv: PineconeLocal, pc: Pinecone) -> None:
    make_index(pc, "seeded", dimension=2)
    host = srv.index_host("seeded")

    def outcomes() -> list[int]:
        return [raw(host, "POST", "/query", {"topK": 1, "vector": [1, 2]})[0] for _ in range(40)]

    srv.set_faults(rate_429=0.3, rate_503=0.2, seed=7, retry_after=0)
    first = outcomes()
    srv.set_faults(rate_429=0.3, rate_503=0.2, seed=7, retry_after=0)
    assert outcomes() == first
    assert {200, 429, 503} == set(first)

    srv.set_faults(rate_429=1.0, endpoints=["upsert"])
    assert raw(host, "POST", "/query", {"topK": 1, "vector": [1, 2]})[0] == 200
    assert raw(srv.url, "GET", "/indexes")[0] == 200
    assert raw(host, "POST", "/vectors/upsert", {"vectors": [{"id": "a", "values": [1, 2]}]})[0] == 429

    srv.set_faults(latency_ms=150)
    started = time.monotonic()
    assert raw(host, "POST", "/query", {"topK": 1, "vector": [1, 2]})[0] == 200
    assert time.monotonic() - started >= 0.15


def test_fault_and_stats_hooks_over_http(srv: PineconeLocal) -> None:
    status, _, config = raw(srv.url, "POST", "/_faults", {"rate_429": 0.25, "seed": 3}, api_key=None)
    assert status == 200 and config["rate_429"] == 0.25 and srv.faults.seed == 3
    assert raw(srv.url, "POST", "/_faults", {"rate_429": 2.0}, api_key=None)[0] == 400
    assert raw(srv.url, "POST", "/_faults", {"bogus": 1}, api_key=None)[0] == 400
    raw(srv.url, "GET", "/indexes")
    assert raw(srv.url, "GET", "/_stats", api_key=None)[2]["requests"] == {"list_indexes": 1}
    assert raw(srv.url, "DELETE", "/_stats", api_key=None)[2]["requests"] == {}


def test_spawned_subprocess_server() -> None:
    with PineconeLocal.spawn(api_key=API_KEY, faults={"script": ["429"], "retry_after": 0}) as child:
        assert child.process.poll() is None
        with Pinecone(api_key=API_KEY, host=child.url) as client:
            make_index(client, "child", dimension=2)
            with client.Index(name="child") as idx:
                idx.upsert(vectors=[("a", [1.0, 2.0])])
                assert idx.describe_index_stats().total_vector_count == 1
        stats = child.stats()
        assert stats["responses"]["upsert"] == {"429": 1, "200": 1}
        child.set_faults(rate_503=1.0, retry_after_503=0)
        assert child.faults.rate_503 == 1.0
        child.reset_stats()
        assert child.stats()["requests"] == {}
        exit_code = child.stop()
    assert exit_code == 0
    reset_sdk_host_state()
