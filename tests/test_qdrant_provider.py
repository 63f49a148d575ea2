"""The Qdrant provider against the local Qdrant server (in-process), through qdrant-client:
ids of every kind and payload types round trip exactly, scans resume from any cursor and
shards cut the collection without gaps or overlaps, faults are retried or reported in one
line, oversize requests are split, and a tampered id key is caught."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.qdrant_local import QdrantLocal
from tests.qdrant_local import server as qdrant_server
from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema
from vecmig.providers.qdrant.ids import ID_KEY, point_id
from vecmig.providers.qdrant.provider import QdrantProvider
from vecmig.records import Batch, RecordId
from vecmig.spec import Fields, StoreSpec

pytestmark = pytest.mark.integration

KEY = "provider-test-key-0d1e"
IDS: list[RecordId] = [0, 7, 2**64 - 1, -1, -(2**63), "", "doc-1", "5", "naïve ☃",
                       "6f1c2e0a-8d4b-5b7e-9a43-3c1d7e5a2b90"]  # a UUID-looking string id stays a string


@pytest.fixture(scope="module")
def server() -> Iterator[QdrantLocal]:
    with QdrantLocal(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def srv(server: QdrantLocal) -> Iterator[QdrantLocal]:
    server.reset()
    yield server
    server._http.faults.script.clear()


def provider(srv: QdrantLocal, collection: str = "c", *, key: str = KEY, fields: Fields | None = None) \
        -> QdrantProvider:
    return QdrantProvider(StoreSpec(provider="qdrant", connection={"url": srv.url, "api_key": key},
                                    collection=collection, fields=fields or Fields(), pointer="/target"))


def batch(ids: list[RecordId], dim: int = 5, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    metadata = [{"i": k, "f": float(k), "neg0": -0.0, "b": bool(k % 2), "n": None, "s": f"s{k}", "l": ["a", "b"],
                 "o": {"deep": [1, 2.5]}, "u64": 2**64 - 1} for k in range(len(ids))]
    texts: list[str | None] = [f"text {k} — é" if k % 3 else None for k in range(len(ids))]
    return Batch(ids=list(ids), vectors=rng.standard_normal((len(ids), dim)).astype(np.float32),
                 metadata=metadata, texts=texts)


def exact(b: Batch) -> dict[str, tuple[bytes, str, str | None]]:
    texts = b.texts or [None] * len(b)
    return {json.dumps(rid): (vec.tobytes(), json.dumps(meta, sort_keys=True), text)
            for rid, vec, meta, text in zip(b.ids, b.vectors, b.metadata, texts, strict=True)}


def filled(srv: QdrantLocal, ids: list[RecordId], dim: int = 5) -> tuple[QdrantProvider, Batch]:
    p = provider(srv)
    p.create_collection(CollectionSchema(dimension=dim, metric="dotproduct", id_type="text"))
    b = batch(ids, dim)
    p.upsert(b)
    return p, b


def test_ids_payload_types_text_and_vector_bits_round_trip(srv: QdrantLocal) -> None:
    p, b = filled(srv, IDS)
    fetched = p.fetch([*reversed(IDS), "missing", 12345])
    assert exact(fetched) == exact(b), "fetch: the same ids, types, metadata, text and vector bits"
    scanned = list(p.scan(None, None, 3))
    merged = exact(Batch(ids=[i for s in scanned for i in s.ids], vectors=np.concatenate([s.vectors for s in scanned]),
                         metadata=[m for s in scanned for m in s.metadata],
                         texts=[t for s in scanned for t in s.texts or []]))
    assert merged == exact(b)
    inv = p.inventory()
    assert (inv.count, inv.dimension, inv.metric, inv.id_type) == (len(IDS), 5, "dotproduct", "text")
    assert inv.fields["i"] == "int" and inv.fields["f"] == "float" and inv.fields["l"] == "text[]"
    p.upsert(batch(IDS, seed=1))  # replayed with new values: replaced by id, never doubled
    assert p.count() == len(IDS)
    p.delete(["doc-1", -1, 0, "never there"])
    assert p.count() == len(IDS) - 3 and not len(p.fetch(["doc-1", -1, 0]))


def test_scan_resumes_from_every_cursor_and_shards_partition(srv: QdrantLocal) -> None:
    ids: list[RecordId] = [*range(0, 60, 3), *(f"s{k}" for k in range(25)), -5, -6]
    p, _ = filled(srv, ids)
    full = [i for s in p.scan(None, None, 4) for i in s.ids]
    assert sorted(map(str, full)) == sorted(map(str, ids)) and len(full) == len(ids)
    cursors = [s.cursor for s in p.scan(None, None, 4)]
    for pos, cursor in enumerate(cursors):
        rest = [i for s in p.scan(None, cursor, 4) for i in s.ids]
        assert rest == full[(pos + 1) * 4:], f"resume after batch {pos}"
    inv = p.inventory()
    shards = p.shards(inv, 10)
    assert [s["records"] for s in shards] == [10, 10, 10, 10, 7]
    parts = [[i for s in p.scan(shard, None, 3) for i in s.ids] for shard in shards]
    assert [i for part in parts for i in part] == full, "shards cut the scan order without gaps or overlaps"
    second = list(p.scan(shards[1], None, 3))
    assert [i for s in p.scan(shards[1], second[0].cursor, 3) for i in s.ids] == parts[1][3:]


def test_transient_faults_are_retried_and_nothing_doubles(srv: QdrantLocal) -> None:
    p = provider(srv)
    p.create_collection(CollectionSchema(dimension=5, metric="euclidean", id_type="int"))
    srv._http.faults.script = ["503", "drop", "429", "502"]
    srv._http.faults.endpoints = {"upsert"}
    b = batch(list(range(30)))
    p.upsert(b)
    assert srv._http.faults.fired == {"503": 1, "drop": 1, "429": 1, "502": 1}
    assert srv.store.stats["points_upserted"] == 30 and p.count() == 30


def test_terminal_errors_are_one_line_and_secret_free(srv: QdrantLocal) -> None:
    with pytest.raises(TerminalError) as missing:
        provider(srv, "nope").fetch([1])
    assert "does not exist" in missing.value.one_line() and "\n" not in missing.value.one_line()
    with pytest.raises(TerminalError) as denied:
        provider(srv, key="wrong-key-9f").inventory()
    line = denied.value.one_line()
    assert "API key" in line and "wrong-key-9f" not in line and srv.url not in line
    for url in ("ftp://h", "http://h:99999", "not a url"):
        broken = QdrantProvider(StoreSpec(provider="qdrant", connection={"url": url}, collection="c",
                                          pointer="/source"))
        with pytest.raises(TerminalError, match=r"source.connection.url is not a Qdrant REST URL"):
            broken.count()
    p = provider(srv)
    with pytest.raises(TerminalError, match=r"metric cosine.*QD003"):
        p.create_collection(CollectionSchema(dimension=5, metric="cosine", id_type="int"))
    p.create_collection(CollectionSchema(dimension=5, metric="dotproduct", id_type="int"))
    p.create_collection(CollectionSchema(dimension=5, metric="dotproduct", id_type="int"))  # a resumed create
    with pytest.raises(TerminalError, match="already exists with"):
        p.create_collection(CollectionSchema(dimension=6, metric="dotproduct", id_type="int"))
    assert p.collection_exists() and not provider(srv, "other").collection_exists()
    bad = batch([1, 2])
    bad.metadata[1]["x"] = float("nan")
    with pytest.raises(TerminalError, match=r"record 2: metadata field 'x' is NaN.*FD001"):
        p.upsert(bad)
    assert p.count() == 0, "a batch with a refused record writes nothing"


def test_oversize_requests_are_split(srv: QdrantLocal, monkeypatch: pytest.MonkeyPatch) -> None:
    p = provider(srv)
    p.create_collection(CollectionSchema(dimension=64, metric="dotproduct", id_type="int"))
    monkeypatch.setattr(qdrant_server, "MAX_REQUEST_BYTES", 60_000)  # the server's limit, lowered
    b = batch(list(range(200)), dim=64)
    p.upsert(b)
    assert p.count() == 200 and srv.store.stats["upsert_requests"] >= 4
    assert exact(p.fetch(list(range(200)))) == exact(b)


def test_tampered_id_key_is_refused(srv: QdrantLocal) -> None:
    p, _ = filled(srv, ["a", "b"])
    coll = srv.store.collections["c"]
    point = next(pt for pt in coll.points.values() if pt.payload.get(ID_KEY) == "a")
    point.payload[ID_KEY] = "b"
    with pytest.raises(TerminalError, match=f"holds {ID_KEY}='b', which is not the id it was stored under"):
        p.fetch(["a"])


def test_named_vectors_are_chosen_by_fields_vector(srv: QdrantLocal) -> None:
    from qdrant_client import models

    p = provider(srv, "named", fields=Fields(vector="b"))
    client = p._qdrant()
    client.create_collection("named", vectors_config={
        "a": models.VectorParams(size=2, distance=models.Distance.DOT),
        "b": models.VectorParams(size=3, distance=models.Distance.EUCLID)})
    b = batch(["x", 4], dim=3)
    p.upsert(b)
    got: dict[str, Any] = {str(r.id): r.vector for r in client.scroll("named", with_vectors=True)[0]}
    assert all(set(v) == {"b"} for v in got.values())
    assert exact(p.fetch(["x", 4])) == exact(b)
    inv: Inventory = p.inventory()
    assert inv.dimension == 3 and inv.metric == "euclidean" and inv.extra["vector_name"] == "b"
    with pytest.raises(TerminalError, match="several named vectors"):
        provider(srv, "named").inventory()
    client.create_collection("hybrid", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             sparse_vectors_config={"bm25": models.SparseVectorParams()})
    with pytest.raises(TerminalError, match=r"holds sparse vectors \(bm25\), which vecmig does not move"):
        provider(srv, "hybrid").inventory()
    assert point_id("x") in got
