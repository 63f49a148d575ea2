"""Conformance of the local Qdrant server, driven through the real ``qdrant-client`` over REST.

Each test states a rule of the real server (ids, order, paging, float32, cosine
normalisation, payload types, limits, errors) and checks that a client meets it here. Where
the client would not send a request (a body over 32 MB, NaN), a raw HTTP request does.
"""

from __future__ import annotations

import http.client
import json
import uuid
import warnings
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.qdrant_local import MAX_REQUEST_BYTES, QdrantLocal

pytestmark = pytest.mark.integration  # a server, in-process

API_KEY = "conformance-key"


@pytest.fixture(scope="module")
def server() -> Iterator[QdrantLocal]:
    with QdrantLocal(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def qc(server: QdrantLocal) -> Iterator[QdrantClient]:
    server.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QdrantClient(url=server.url, api_key=API_KEY, prefer_grpc=False, check_compatibility=False)
    with closing(client):
        yield client


def raw(server: QdrantLocal, method: str, path: str, body: bytes | None = None,
        key: str | None = API_KEY) -> tuple[int, Any]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    headers = {"Content-Type": "application/json", **({"api-key": key} if key else {})}
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data.strip().startswith(b"{") else data.decode()
    finally:
        conn.close()


def error_of(exc: UnexpectedResponse) -> str:
    return str(json.loads(exc.content)["status"]["error"])


def make(qc: QdrantClient, name: str = "c", dim: int = 4, distance: models.Distance = models.Distance.DOT) -> None:
    qc.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=distance))


def test_collection_lifecycle_and_errors(qc: QdrantClient) -> None:
    assert not qc.collection_exists("c")
    make(qc, dim=7, distance=models.Distance.EUCLID)
    assert qc.collection_exists("c")
    info = qc.get_collection("c")
    assert info.points_count == 0 and isinstance(info.config.params.vectors, models.VectorParams)
    assert info.config.params.vectors.size == 7 and info.config.params.vectors.distance == models.Distance.EUCLID
    assert [c.name for c in qc.get_collections().collections] == ["c"]
    with pytest.raises(UnexpectedResponse) as dup:
        make(qc)
    assert dup.value.status_code == 409 and error_of(dup.value) == "Wrong input: Collection `c` already exists!"
    assert qc.delete_collection("c") is True
    with pytest.raises(UnexpectedResponse) as missing:
        qc.get_collection("c")
    assert missing.value.status_code == 404
    assert error_of(missing.value) == "Not found: Collection `c` doesn't exist!"
    with pytest.raises(UnexpectedResponse) as gone:
        qc.upsert("c", points=[models.PointStruct(id=1, vector=[0.0] * 7)])
    assert gone.value.status_code == 404


def test_point_ids_are_unsigned_ints_or_uuids(qc: QdrantClient) -> None:
    make(qc)
    upper = "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"
    qc.upsert("c", points=[models.PointStruct(id=i, vector=[1.0, 0, 0, 0]) for i in (0, 2**64 - 1)]
              + [models.PointStruct(id=upper, vector=[1.0, 0, 0, 0])], wait=True)
    got = {p.id for p in qc.retrieve("c", ids=[0, 2**64 - 1, upper])}
    assert got == {0, 2**64 - 1, upper.lower()}, "a UUID comes back canonical (lowercase, hyphenated)"
    for bad in (-1, "doc-1", 2**64):
        with pytest.raises(UnexpectedResponse) as exc:
            qc.upsert("c", points=[models.PointStruct(id=5, vector=[1.0, 0, 0, 0]),
                                   models.PointStruct(id=bad, vector=[1.0, 0, 0, 0])], wait=True)
        assert exc.value.status_code == 400 and "is not a valid point ID" in error_of(exc.value), bad
    assert qc.count("c").count == 3, "a refused request writes nothing"


def test_scroll_orders_by_id_and_pages_through_every_point_once(qc: QdrantClient) -> None:
    make(qc)
    rng = np.random.default_rng(1)
    ints = [int(x) for x in rng.choice(10**6, 40, replace=False)]
    uuids = [str(uuid.uuid4()) for _ in range(40)]
    qc.upsert("c", points=[models.PointStruct(id=i, vector=[1.0, 0, 0, 0]) for i in ints + uuids], wait=True)
    want = sorted(ints) + sorted(uuids, key=lambda u: uuid.UUID(u).int)
    seen: list[Any] = []
    offset: Any = None
    while True:
        page, offset = qc.scroll("c", offset=offset, limit=7, with_payload=False)
        seen += [p.id for p in page]
        if offset is None:
            break
        assert offset == want[len(seen)], "next_page_offset is the first id of the next page"
    assert seen == want
    inclusive, _ = qc.scroll("c", offset=want[10], limit=2)
    assert [p.id for p in inclusive] == want[10:12], "the offset is inclusive"
    default, _ = qc.scroll("c")
    assert len(default) == 10 and default[0].vector is None and default[0].payload == {}, "Qdrant's defaults"


def test_vectors_are_float32_exactly_and_sent_as_shortest_decimals(qc: QdrantClient, server: QdrantLocal) -> None:
    make(qc, dim=6)
    vec = np.array([0.1, 1e-40, -3.4028235e38, 1 / 3, -0.0, 123456.79], dtype=np.float32)
    qc.upsert("c", points=[models.PointStruct(id=1, vector=vec.tolist())], wait=True)
    back = qc.retrieve("c", ids=[1], with_vectors=True)[0].vector
    assert np.asarray(back, dtype=np.float32).tobytes() == vec.tobytes()
    status, body = raw(server, "POST", "/collections/c/points", json.dumps({"ids": [1], "with_vector": True}).encode())
    assert status == 200 and body["result"][0]["vector"][0] == 0.1, "0.1f is written as 0.1, not 0.10000000149…"


def test_cosine_collections_store_normalised_vectors(qc: QdrantClient) -> None:
    make(qc, dim=2, distance=models.Distance.COSINE)
    qc.upsert("c", points=[models.PointStruct(id=1, vector=[3.0, 4.0])], wait=True)
    assert qc.retrieve("c", ids=[1], with_vectors=True)[0].vector == pytest.approx([0.6, 0.8])


def test_named_vectors(qc: QdrantClient) -> None:
    qc.create_collection("n", vectors_config={"a": models.VectorParams(size=3, distance=models.Distance.DOT),
                                              "b": models.VectorParams(size=2, distance=models.Distance.EUCLID)})
    vectors = qc.get_collection("n").config.params.vectors
    assert isinstance(vectors, dict) and vectors["b"].size == 2
    qc.upsert("n", points=[models.PointStruct(id=1, vector={"a": [1.0, 2.0, 3.0], "b": [0.5, 0.25]})], wait=True)
    got = qc.retrieve("n", ids=[1], with_vectors=["b"])[0].vector
    assert got == {"b": [0.5, 0.25]}
    with pytest.raises(UnexpectedResponse) as exc:
        qc.upsert("n", points=[models.PointStruct(id=2, vector={"a": [1.0, 2.0]})], wait=True)
    assert error_of(exc.value) == "Wrong input: Vector dimension error: expected dim: 3, got 2"
    with pytest.raises(UnexpectedResponse) as exc:
        qc.upsert("n", points=[models.PointStruct(id=2, vector={"zz": [1.0]})], wait=True)
    assert "Not existing vector name error: zz" in error_of(exc.value)


def test_payload_json_types_are_kept(qc: QdrantClient) -> None:
    make(qc)
    payload = {"i": 7, "f": 1.0, "neg0": -0.0, "b": False, "n": None, "s": "naïve ☃", "l": ["x", "y"],
               "o": {"k": [1, 2.5, None]}, "u64": 2**64 - 1, "i64": -(2**63), "big": 2**70}
    qc.upsert("c", points=[models.PointStruct(id=1, vector=[1.0, 0, 0, 0], payload=payload)], wait=True)
    got = qc.retrieve("c", ids=[1])[0].payload or {}
    assert {k: (type(v), v) for k, v in got.items() if k != "big"} == \
        {k: (type(v), v) for k, v in payload.items() if k != "big"}
    assert str(got["neg0"]) == "-0.0"
    assert type(got["big"]) is float, "past 64 bits serde_json keeps a double"


def test_retrieve_delete_count(qc: QdrantClient) -> None:
    make(qc)
    qc.upsert("c", points=[models.PointStruct(id=i, vector=[float(i), 0, 0, 0], payload={"i": i})
                           for i in range(1, 11)], wait=True)
    assert [p.id for p in qc.retrieve("c", ids=[3, 99, 1])] == [3, 1]
    result = qc.delete("c", points_selector=models.PointIdsList(points=[1, 2, 50]), wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    assert qc.count("c", exact=True).count == 8
    qc.upsert("c", points=[models.PointStruct(id=3, vector=[9.0, 0, 0, 0], payload={"new": True})], wait=True)
    assert qc.retrieve("c", ids=[3])[0].payload == {"new": True}, "an upsert replaces the whole point"


def test_query_is_exact_nearest_neighbours(qc: QdrantClient) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    for distance in (models.Distance.DOT, models.Distance.EUCLID):
        qc.delete_collection("q")
        make(qc, "q", 8, distance)
        qc.upload_collection("q", vectors=vectors, ids=list(range(50)), wait=True)
        query = rng.standard_normal(8).astype(np.float32)
        hits = qc.query_points("q", query=query.tolist(), limit=5).points
        if distance == models.Distance.DOT:
            want = np.argsort(-(vectors.astype(np.float64) @ query))[:5]
        else:
            want = np.argsort(np.linalg.norm(vectors.astype(np.float64) - query, axis=1))[:5]
        assert [h.id for h in hits] == [int(i) for i in want]
    by_id = qc.query_points("q", query=7, limit=1).points
    assert by_id[0].id == 7, "querying by a point id searches with that point's vector"


def test_upload_points_helper(qc: QdrantClient) -> None:
    make(qc)
    points = [models.PointStruct(id=i, vector=[1.0, 0, 0, float(i)], payload={"i": i}) for i in range(300)]
    qc.upload_points("c", points=points, batch_size=64, wait=True)
    assert qc.count("c").count == 300


def test_body_limit_nan_auth_and_faults(qc: QdrantClient, server: QdrantLocal) -> None:
    make(qc)
    big = b'{"points": [{"id": 1, "vector": [0,0,0,0], "payload": {"x": "' + b"a" * MAX_REQUEST_BYTES + b'"}}]}'
    status, body = raw(server, "PUT", "/collections/c/points?wait=true", big)
    assert status == 400 and "larger than allowed (limit: 33554432 bytes)" in body["status"]["error"]
    status, body = raw(server, "PUT", "/collections/c/points", b'{"points": [{"id": 1, "vector": [NaN,0,0,0]}]}')
    assert status == 400 and body["status"]["error"].startswith("Format error in JSON body")
    assert qc.count("c").count == 0
    assert raw(server, "GET", "/collections", key=None)[0] == 401
    assert raw(server, "GET", "/collections", key="wrong")[0] == 401
    status, body = raw(server, "GET", "/", key=None)
    assert status == 200 and body["title"] == "qdrant - vector search engine", "the version needs no key"
    server._http.faults.script = ["503", "429"]  # the next two requests
    with pytest.raises(UnexpectedResponse) as exc:
        qc.count("c")
    assert exc.value.status_code == 503
    with pytest.raises(ResourceExhaustedResponse):
        qc.count("c")
    assert qc.count("c").count == 0


def test_aliases_switch_atomically_and_resolve_for_data_requests(qc: QdrantClient) -> None:
    make(qc, "blue")
    make(qc, "green")
    qc.upsert("green", points=[models.PointStruct(id=1, vector=[1.0, 0, 0, 0])], wait=True)
    create = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="blue", alias_name="live"))
    assert qc.update_collection_aliases(change_aliases_operations=[create]) is True
    assert [(a.alias_name, a.collection_name) for a in qc.get_aliases().aliases] == [("live", "blue")]
    switch = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="live")),
              models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="green", alias_name="live"))]
    qc.update_collection_aliases(change_aliases_operations=switch)
    assert [a.alias_name for a in qc.get_collection_aliases("green").aliases] == ["live"]
    assert [p.id for p in qc.scroll("live")[0]] == [1], "data requests may name an alias"
    with pytest.raises(UnexpectedResponse) as clash:
        qc.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name="green", alias_name="blue"))])
    assert clash.value.status_code == 409, "an alias cannot take a collection's name"
    with pytest.raises(UnexpectedResponse) as taken:
        make(qc, "live")
    assert taken.value.status_code == 400, "a collection cannot take an alias's name"
    bad = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="live")),
           models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="nope", alias_name="live"))]
    with pytest.raises(UnexpectedResponse):
        qc.update_collection_aliases(change_aliases_operations=bad)
    assert [a.collection_name for a in qc.get_aliases().aliases] == ["green"], "a failed request changes nothing"
    qc.delete_collection("green")
    assert qc.get_aliases().aliases == [], "deleting a collection deletes its aliases"
