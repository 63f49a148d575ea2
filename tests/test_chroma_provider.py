"""The Chroma provider against real Chroma: a local persistent store (PersistentClient, in this
process) and, for the connection and error paths, a ``chroma run`` server started once for the
module. What the provider declares about the store is checked against what the store does."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from tests.support.chroma import ChromaServer, chroma_server, free_port
from vecmig.errors import TerminalError, TransientError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.chroma import codec
from vecmig.providers.chroma.provider import ChromaProvider
from vecmig.records import Batch, canonical_metadata
from vecmig.spec import CreateSpec, StoreSpec
from vecmig.tolerance import ulp_distance

pytestmark = pytest.mark.integration
DIM = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as srv:
        yield srv


def local(tmp: Path, name: str, metric: str = "euclidean") -> ChromaProvider:
    return ChromaProvider(StoreSpec("chroma", {"path": str(tmp / "store")}, collection=name,
                                    create=CreateSpec(metric=metric), pointer="/target"))  # type: ignore[arg-type]


def records(n: int, *, ints: bool = True, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    vectors = (rng.standard_normal((n, DIM)) * rng.uniform(0.01, 100, (n, 1))).astype(np.float32)
    metadata: list[dict[str, Any]] = []
    for i in range(n):
        meta: dict[str, Any] = {"lang": ("en", "日本語")[i % 2], "year": 1990 + i, "score": i / 8, "whole": 1.0,
                                "ok": i % 2 == 0, "tags": ["a", "ü"], "nums": [1, 2**62], "floats": [0.5, 1.0],
                                "big": 2**63 - 1, "empty": ""}
        if i % 3 == 0:
            meta["missing"] = None  # null: absent, as the canonical form holds it
        metadata.append(meta)
    texts: list[str | None] = [None if i % 5 == 0 else ("" if i % 7 == 0 else f"text {i}\x00 ✓") for i in range(n)]
    ids: list[Any] = [i * 3 - 50 for i in range(n)] if ints else [f"doc-{i:04d}" for i in range(n)]
    return Batch(ids=ids, vectors=vectors, metadata=metadata, texts=texts)


def schema(batch: Batch, metric: str = "euclidean") -> CollectionSchema:
    kind = "int" if isinstance(batch.ids[0], int) else "text"
    return CollectionSchema(dimension=DIM, metric=metric, id_type=kind, text=True)


def read_all(p: ChromaProvider, batch_size: int = 7) -> Batch:
    parts = list(p.scan(None, None, batch_size))
    return Batch(ids=[i for b in parts for i in b.ids], vectors=np.concatenate([b.vectors for b in parts]),
                 metadata=[m for b in parts for m in b.metadata], texts=[t for b in parts for t in (b.texts or [])])


def assert_same(want: Batch, got: Batch, ulp: int = 0) -> None:
    order = {rid: k for k, rid in enumerate(got.ids)}
    assert sorted(order, key=str) == sorted(want.ids, key=str)
    for k, rid in enumerate(want.ids):
        j = order[rid]
        assert type(got.ids[j]) is type(rid)
        assert canonical_metadata(got.metadata[j], strict=True) == canonical_metadata(want.metadata[k], strict=True)
        assert (got.texts or [])[j] == (want.texts or [])[k]
        assert int(ulp_distance(want.vectors[k], got.vectors[j]).max()) <= ulp


def test_round_trip_ids_metadata_text_and_l2_vectors_exactly(tmp_path: Path) -> None:
    for ints in (True, False):
        want = records(40, ints=ints)
        p = local(tmp_path, f"round-{ints}")
        p.create_collection(schema(want))
        p.upsert(want)
        got = read_all(p)
        assert got.ids == sorted(want.ids), "scan order: sorted ids (numeric for int ids)"
        assert_same(want, got, 0)
        assert_same(want, p.fetch([*reversed(want.ids), 10**9]), 0)
        inv = p.inventory()
        assert (inv.count, inv.id_type, inv.metric, inv.dimension) == (40, "int" if ints else "text", "euclidean", DIM)
        assert p.vector_ulps() == 0


def test_cosine_keeps_vectors_within_the_declared_ulp(tmp_path: Path) -> None:
    want = records(300, seed=4)
    p = local(tmp_path, "cos", "cosine")
    p.create_collection(schema(want, "cosine"))
    p.upsert(want)
    got = read_all(p, 100)
    assert p.vector_ulps() == ChromaProvider.vector_ulps_for("cosine") == 2
    far = max(int(ulp_distance(want.vectors[k], got.vectors[k]).max()) for k in range(len(want)))
    assert 1 <= far <= 2, f"cosine moved values by up to {far} ulp"
    assert_same(want, got, 2)


def test_scan_resumes_after_any_cursor_and_shards_cover_every_record(tmp_path: Path) -> None:
    want = records(53)
    p = local(tmp_path, "scan")
    p.create_collection(schema(want))
    p.upsert(want)
    order = [i for b in p.scan(None, None, 5) for i in b.ids]
    for b in p.scan(None, None, 5):
        assert [i for c in p.scan(None, b.cursor, 5) for i in c.ids] == order[order.index(b.cursor) + 1:]
    shards = p.shards(p.inventory(), 20)
    assert [s["records"] for s in shards] == [20, 20, 13]
    assert [i for s in shards for b in p.scan(s, None, 6) for i in b.ids] == order


def test_upsert_replaces_by_id_and_is_idempotent(tmp_path: Path) -> None:
    first = records(20)
    p = local(tmp_path, "replace")
    p.create_collection(schema(first))
    p.upsert(first)
    again = ChromaProvider(p.store)  # an existing collection: the replace path
    second = records(20, seed=9)
    second.metadata = [{"only": i} for i in range(20)]  # every earlier key must go
    second.texts = [None] * 20  # and every document
    again.upsert(second)
    again.upsert(second)
    assert_same(second, read_all(again), 0)
    assert again.count() == 20
    again.delete([first.ids[0], "no-such-id"])
    assert again.count() == 19


@pytest.mark.parametrize(("meta", "code"), [
    ({"x": -0.0}, "CH008"), ({"x": math.nan}, "CH007"), ({"x": math.inf}, "CH007"), ({"x": 2**63}, "CH006"),
    ({"x": {"a": 1}}, "CH005"), ({"x": []}, "CH005"), ({"x": ["a", 1]}, "CH005"), ({"x": ["a", None]}, "CH005"),
    ({"#x": 1}, "CH004"), ({"chroma:document": "d"}, "CH004"), ({"": 1}, "CH004"),
    ({"x": 0.9127555772777217}, "CH012"), ({"x": "a\ud800"}, "CH009"),
])
def test_what_chroma_would_change_is_refused_naming_the_record(tmp_path: Path, meta: dict[str, Any],
                                                               code: str) -> None:
    p = local(tmp_path, "refuse")
    batch = Batch(ids=[7], vectors=np.ones((1, DIM), dtype=np.float32), metadata=[meta], texts=[None])
    p.create_collection(schema(batch))
    with pytest.raises(TerminalError, match=rf"record 7 .*\({code}\)"):
        p.upsert(batch)
    assert [f.code for f in p.lint(batch, schema(batch)) if f.severity == "error"] == [code]
    assert p.count() == 0


def test_sparse_values_are_refused_never_dropped(tmp_path: Path) -> None:
    p = local(tmp_path, "sparse")
    batch = Batch(ids=[1, 2], vectors=np.ones((2, DIM), dtype=np.float32), metadata=[{}, {}], texts=None)
    batch.extra["sparse"] = [None, {"indices": [3], "values": [0.5]}]
    p.create_collection(schema(batch))
    with pytest.raises(TerminalError, match=r"record 2 .*\(CH013\)"):
        p.upsert(batch)
    assert [f.code for f in p.lint(batch, schema(batch))] == ["CH002", "CH013"]
    assert p.count() == 0


def test_kept_float_predicts_what_chroma_keeps(tmp_path: Path) -> None:
    """The CH012 rule against the store itself: every double predicted kept is kept, and every
    one predicted changed comes back as the predicted value."""
    rng = np.random.default_rng(1)
    values = ([float(x) for x in rng.random(600)] + [float(x) for x in rng.standard_normal(300) * 1e12]
              + [float(x) for x in rng.standard_normal(300) * 1e-9] + [0.1, 5e-324, 1.7976931348623157e308])
    client = chromadb.PersistentClient(path=str(tmp_path / "raw"), settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection("floats", embedding_function=None)
    ids = [str(i) for i in range(len(values))]
    coll.add(ids=ids, embeddings=[[1.0, 2.0]] * len(ids), metadatas=[{"v": v} for v in values])
    got = coll.get(ids=ids, include=["metadatas"])
    kept = {rid: (m or {})["v"] for rid, m in zip(got["ids"], got["metadatas"] or [], strict=True)}
    changed = [v for rid, v in zip(ids, values, strict=True) if kept[rid] != v]
    assert changed, "Chroma changes some doubles (else CH012 would be needless)"
    assert all(kept[rid] == codec.kept_float(v) for rid, v in zip(ids, values, strict=True))


def test_server_connection_and_a_server_that_is_down(server: ChromaServer, tmp_path: Path) -> None:
    want = records(30, ints=False)
    p = ChromaProvider(StoreSpec("chroma", {"host": server.host, "port": server.port}, collection="over-http",
                                 pointer="/target"))
    p.create_collection(schema(want, "cosine"))
    p.upsert(want)
    assert_same(want, read_all(p), 2)
    assert p.inventory().extra["vector_ulps"] == 2
    p.drop_collection()
    p.drop_collection()  # idempotent
    assert not p.inventory().exists
    down = ChromaProvider(StoreSpec("chroma", {"host": "127.0.0.1", "port": free_port()}, collection="nope",
                                    pointer="/source"))
    with pytest.raises(TransientError, match="Chroma"):
        down.inventory()
