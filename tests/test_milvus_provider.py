"""The Milvus provider against a real Milvus server (milvus-lite's gRPC server, started once for
the module): exact round trips (float32 bits, int64 extremes, hostile string ids, every metadata
type), the pk-ordered scan resumed from every cursor, partitions as shards and namespaces,
idempotent upserts, the index swap, aliases, lint codes, and the transient/terminal split."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from pymilvus.exceptions import DataNotMatchException, MilvusException

from tests.support.milvus import MilvusLite
from vecmig.errors import TerminalError, TransientError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.milvus.errors import classify
from vecmig.providers.milvus.provider import MilvusProvider
from vecmig.records import Batch, RecordId
from vecmig.spec import Fields, IndexSpec, StoreSpec

pytestmark = pytest.mark.integration  # a real server, in-process (conftest cannot see it)

# Values a lossy path would change: subnormals, -0.0, the float32 extremes, a long mantissa.
SPECIAL = np.array([1e-45, -0.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny, 0.1, -3.4028235e38,
                    1.0000001, 5.877472e-39], dtype=np.float32)
METADATA = {"i": 7, "f": 1.0, "neg0": -0.0, "big": 2**62 + 1, "min": -(2**63), "b": False, "n": None,
            "s": "naïve \"café\" \\ ✓", "l": ["a", "", "b c"], "e": [], "x": 0.1}


@pytest.fixture(scope="module")
def server() -> Iterator[MilvusLite]:
    srv = MilvusLite()
    try:
        yield srv
    finally:
        srv.stop()


def provider(srv: MilvusLite, name: str, namespace: str | None = None, role: str = "target",
             text: str | None = None) -> MilvusProvider:
    fields = Fields(text=text) if text else Fields()
    return MilvusProvider(StoreSpec(provider="milvus", connection={"uri": srv.uri}, collection=name,
                                    namespace=namespace, fields=fields, pointer=f"/{role}"))


def batch(ids: list[RecordId], dim: int, seed: int = 0, namespace: str | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(ids), dim)).astype(np.float32)
    vectors[0, : min(dim, len(SPECIAL))] = SPECIAL[:dim]
    metadata = [{**METADATA, "i": k} for k in range(len(ids))]
    texts = [None if k % 3 == 0 else f"text {k} ✓" if k % 3 == 1 else "" for k in range(len(ids))]
    b = Batch(ids=list(ids), vectors=vectors, metadata=metadata, texts=texts)
    if namespace:
        b.extra["namespace"] = namespace
    return b


def same(a: Batch, b: Batch) -> None:
    assert a.ids == b.ids and [type(x) for x in a.ids] == [type(x) for x in b.ids]
    assert a.vectors.tobytes() == b.vectors.tobytes(), "vector bits differ"
    for x, y in zip(a.metadata, b.metadata, strict=True):
        assert x == y and {k: type(v) for k, v in x.items()} == {k: type(v) for k, v in y.items()}
        assert str(x.get("neg0")) == str(y.get("neg0"))  # -0.0 keeps its sign
    assert a.texts == b.texts


def scan_all(p: MilvusProvider, shard: dict[str, Any] | None, cursor: Any, size: int) -> list[Batch]:
    return list(p.scan(shard, cursor, size))


def test_round_trip_exact_and_scan_resumes_after_every_cursor(server: MilvusLite) -> None:
    p = provider(server, "exact_int")
    p.create_collection(CollectionSchema(dimension=8, metric="cosine", id_type="int", text=True))
    ids: list[RecordId] = [-(2**63), -1, 0, 1, 2**31, 2**53 + 1, 2**63 - 2, 2**63 - 1]
    src = batch(ids[::-1], 8)  # written out of order: the scan orders by primary key
    p.upsert(src)
    p.upsert(src)  # a replayed batch (after a kill) changes nothing
    assert p.count() == len(ids)
    want = p.fetch(ids)
    order = sorted(range(len(ids)), key=lambda k: src.ids[k])
    same(want, src.take(order))
    batches = scan_all(p, None, None, 3)
    assert [b.ids for b in batches] == [ids[0:3], ids[3:6], ids[6:8]]
    assert [b.cursor for b in batches] == [ids[2], ids[5], ids[7]]
    for k, rid in enumerate(ids):
        rest = [r for b in scan_all(p, None, rid, 3) for r in b.ids]
        assert rest == ids[k + 1:], f"resume after {rid}"
    same(Batch(ids=[r for b in batches for r in b.ids], vectors=np.concatenate([b.vectors for b in batches]),
               metadata=[m for b in batches for m in b.metadata], texts=[t for b in batches for t in b.texts or []]),
         want)
    inv = p.inventory()
    assert (inv.id_type, inv.dimension, inv.metric, inv.count) == ("int", 8, "cosine", len(ids))
    assert inv.fields["i"] == "int" and inv.fields["f"] == "float" and inv.fields["l"] == "text[]"
    assert inv.fields["b"] == "bool" and inv.fields["s"] == "text"
    p.drop_collection()
    assert not p.inventory().exists


def test_string_ids_with_quotes_and_backslashes_scan_in_byte_order(server: MilvusLite) -> None:
    p = provider(server, "exact_text", text="body")
    p.create_collection(CollectionSchema(dimension=4, metric="dotproduct", id_type="text", text=True))
    ids: list[RecordId] = ['a"b', "a\\b", "a'b", "", "z", "é", "中文", "a b", "a\\\"", "~"]
    p.upsert(batch(ids, 4))
    ordered = sorted(ids, key=lambda s: str(s).encode())
    got = [r for b in scan_all(p, None, None, 4) for r in b.ids]
    assert got == ordered
    for k, rid in enumerate(ordered):
        assert [r for b in scan_all(p, None, rid, 4) for r in b.ids] == ordered[k + 1:]
    assert p.fetch(["z", 5, "missing"]).ids == ["z"]  # an int asks a VARCHAR key for nothing
    assert p.inventory().metric == "dotproduct"


def test_partitions_are_shards_and_namespaces(server: MilvusLite) -> None:
    src = provider(server, "parts_src", role="source")
    src.create_collection(CollectionSchema(dimension=4, metric="euclidean", id_type="int", text=True))
    w = provider(server, "parts_src", namespace="*")
    w.upsert(batch(list(range(0, 5)), 4, namespace="p_a"))
    w.upsert(batch(list(range(5, 12)), 4, seed=1, namespace="p_b"))
    w.upsert(batch([100], 4, seed=2))  # no namespace: the default partition
    inv = src.inventory()
    assert inv.extra["partitions"] == {"_default": 1, "p_a": 5, "p_b": 7}
    shards = src.shards(inv, 1000)
    assert shards == [{"namespace": "_default", "records": 1}, {"namespace": "p_a", "records": 5},
                      {"namespace": "p_b", "records": 7}]
    copy = provider(server, "parts_dst", namespace="*")
    copy.create_collection(CollectionSchema(dimension=4, metric="euclidean", id_type="int", text=True))
    for shard in shards:
        for b in src.scan(shard, None, 3):
            assert b.extra["namespace"] == shard["namespace"]
            copy.upsert(b)
    assert copy.inventory().extra["partitions"] == inv.extra["partitions"]
    only_b = provider(server, "parts_dst", namespace="p_b", role="source")
    assert only_b.count() == 7 and [s["namespace"] for s in only_b.shards(only_b.inventory(), 10)] == ["p_b"]
    same(only_b.fetch(list(range(5, 12))), src.fetch(list(range(5, 12))))
    # namespace '*' reads partition by partition, tagged, resumable with {"ns", "after"} cursors.
    every = provider(server, "parts_dst", namespace="*", role="source")
    batches = list(every.scan(None, None, 4))
    assert [(b.extra["namespace"], b.ids) for b in batches] == [
        ("_default", [100]), ("p_a", [0, 1, 2, 3]), ("p_a", [4]), ("p_b", [5, 6, 7, 8]), ("p_b", [9, 10, 11])]
    assert batches[2].cursor == {"ns": "p_a", "after": 4}
    assert [b.ids for b in every.scan(None, batches[1].cursor, 4)] == [[4], [5, 6, 7, 8], [9, 10, 11]]
    # Validation asks the partition a source batch came from, not the whole collection.
    asked = Batch(ids=[1, 6], vectors=np.zeros((2, 4), dtype=np.float32), metadata=[{}, {}],
                  extra={"namespace": "p_a"})
    assert every.fetch_matching(asked).ids == [1]
    assert every.fetch_in({"namespace": "p_b"}, [1, 6]).ids == [6]
    every.delete_in({"namespace": "p_b"}, [1, 6])  # 1 lives in p_a: untouched
    assert every.fetch([1, 6]).ids == [1]


def test_index_is_swapped_after_the_load_and_back(server: MilvusLite) -> None:
    p = provider(server, "indexed")
    p.create_collection(CollectionSchema(dimension=4, metric="cosine", id_type="int"))
    p.upsert(Batch(ids=[1, 2], vectors=np.ones((2, 4), dtype=np.float32), metadata=[{}, {}]))
    assert (p.inventory().index or {})["type"] == "flat"
    assert p.build_index(IndexSpec(type="hnsw", m=8, ef_construction=32), "cosine") == "vector"
    inv = p.inventory()
    assert inv.index and inv.index["type"] == "hnsw" and inv.metric == "cosine" and inv.count == 2
    p.drop_index("vector")
    assert (p.inventory().index or {})["type"] == "flat" and p.count() == 2
    p.build_index(IndexSpec(type="ivfflat", lists=4), "cosine")
    assert (p.inventory().index or {})["type"] == "ivfflat"


def test_aliases_move_atomically(server: MilvusLite) -> None:
    for name in ("blue", "green"):
        provider(server, name).create_collection(CollectionSchema(dimension=2, metric="cosine", id_type="int"))
    p = provider(server, "blue")
    assert p.read_alias("live") is None
    p.switch_alias("live", "blue")
    assert p.read_alias("live") == "blue"
    p.switch_alias("live", "green")
    assert p.read_alias("live") == "green"
    p.switch_alias("live", None)
    assert p.read_alias("live") is None


def test_limits_are_linted_and_enforced_naming_the_record(server: MilvusLite) -> None:
    p = provider(server, "limits")
    schema = CollectionSchema(dimension=2, metric="cosine", id_type="text", text=True)
    p.create_collection(schema)
    bad = Batch(ids=["ok", "x" * 70_000, "nan", "bigint", "longtext", "json"],
                vectors=np.array([[1, 2], [1, 2], [np.nan, 1], [1, 2], [1, 2], [1, 2]], dtype=np.float32),
                metadata=[{}, {}, {}, {"n": 2**64}, {}, {"blob": "y" * 70_000}],
                texts=[None, None, None, None, "t" * 70_000, None])
    codes = {f.code: f for f in p.lint(bad, schema)}
    assert set(codes) == {"MV002", "MV004", "MV005", "MV006", "MV007"}
    assert all(f.severity == "error" and f.hint for f in codes.values())
    assert "'nan'" in codes["MV007"].message
    assert {f.code for f in p.lint(bad.take([0]), CollectionSchema(dimension=40_000, metric="cosine",
                                                                    id_type="int"))} == {"MV001"}
    for k, code in [(1, "MV002"), (2, "MV007"), (3, "MV006"), (4, "MV004"), (5, "MV005")]:
        with pytest.raises(TerminalError, match=code) as err:
            p.upsert(bad.take([0, k]))
        assert repr(bad.ids[k])[:20] in str(err.value)
    assert p.count() == 0, "a refused batch writes nothing"
    with pytest.raises(TerminalError, match=r"INT64|VARCHAR"):
        p.upsert(Batch(ids=[5], vectors=np.ones((1, 2), dtype=np.float32), metadata=[{}]))


def test_errors_split_transient_and_terminal(server: MilvusLite) -> None:
    def cls(exc: BaseException) -> type:
        return type(classify(exc, doing="upserting", collection="c", role="target", secrets=("tok-SECRET",)))

    assert cls(MilvusException(code=8, message="rate limit exceeded")) is TransientError
    assert cls(MilvusException(code=2, message="Fail connecting to server")) is TransientError
    assert cls(MilvusException(code=65535, message="node not ready")) is TransientError
    assert cls(MilvusException(code=100, message="collection not found")) is TerminalError
    assert cls(DataNotMatchException(message="dim mismatch")) is TerminalError

    class Unavailable(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAVAILABLE

        def details(self) -> str:
            return "connection reset"

    assert cls(Unavailable()) is TransientError
    err = classify(MilvusException(code=1800, message="auth failed for tok-SECRET"), doing="connecting",
                   collection=None, role="source", secrets=("tok-SECRET",))
    assert isinstance(err, TerminalError) and "tok-SECRET" not in err.one_line()
    assert "source.connection.token" in err.one_line()
    # The real server: a missing collection is terminal, and a stopped server's port is transient.
    missing = provider(server, "nope")
    assert missing.count() == 0 and not missing.inventory().exists
    with pytest.raises(TerminalError, match="does not exist"):
        missing.upsert(Batch(ids=[1], vectors=np.ones((1, 2), dtype=np.float32), metadata=[{}]))


def test_a_namesake_in_another_partition_is_refused_not_merged(server: MilvusLite) -> None:
    """Milvus keys records by id across partitions: the same id from two source namespaces
    would become one record. Writing through namespace '*' refuses it, naming the record."""
    p = provider(server, "namesakes", namespace="*")
    p.create_collection(CollectionSchema(dimension=4, metric="cosine", id_type="int", text=True))
    p.upsert(batch([1, 2, 3], 4, namespace="left"))
    p.upsert(batch([1, 2, 3], 4, namespace="left"))  # a replay in the same partition is fine
    with pytest.raises(TerminalError, match="record 2 of namespace 'right' has a namesake"):
        p.upsert(batch([2, 9], 4, seed=5, namespace="right"))
    assert p.inventory().extra["partitions"] == {"_default": 0, "left": 3, "right": 0}
    fixed = provider(server, "namesakes", namespace="right")  # one partition named in the spec: the same
    with pytest.raises(TerminalError, match="record 3 of namespace 'right' has a namesake"):
        fixed.upsert(batch([3], 4, seed=6))
    assert p.fetch_in({"namespace": "left"}, [1, 2, 3]).ids == [1, 2, 3], "the other namespace is untouched"


def test_an_acknowledged_upsert_survives_a_server_crash() -> None:
    """Ack before checkpoint holds only if an acknowledged write is durable: SIGKILL the server
    right after upsert returns (no flush, no shutdown), restart it on the same data, and every
    record is there, bit for bit. A server of its own: the module's one stays up."""
    srv = MilvusLite()
    try:
        p = provider(srv, "durable")
        p.create_collection(CollectionSchema(dimension=8, metric="cosine", id_type="int", text=True))
        want = batch(list(range(50)), 8, seed=3)
        p.upsert(want)
        p.close()
        srv.crash_and_restart()
        again = provider(srv, "durable", role="source")
        assert again.count() == 50
        same(again.fetch(want.ids), want)
    finally:
        srv.stop()


def test_a_collection_made_elsewhere_is_read_and_written_through_its_own_fields(server: MilvusLite) -> None:
    """A user's collection: primary key 'pk', vector 'emb', typed scalar fields and dynamic fields,
    no JSON 'metadata' field. Its scalar and dynamic fields are the records' metadata, with types."""
    from pymilvus import DataType, MilvusClient

    client = server.client()
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("emb", DataType.FLOAT_VECTOR, dim=3)
        schema.add_field("year", DataType.INT32)
        schema.add_field("score", DataType.DOUBLE)
        schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=16)
        index = client.prepare_index_params()
        index.add_index(field_name="emb", index_type="FLAT", metric_type="IP")
        client.create_collection("theirs", schema=schema, index_params=index, consistency_level="Strong")
        client.insert("theirs", [{"pk": "b", "emb": [0.25, -0.0, 3.0], "year": 2024, "score": 0.5, "tags": ["x"],
                                  "lang": "en"},
                                 {"pk": "a", "emb": [1.0, 2.0, 3.0], "year": 1999, "score": 2.0, "tags": []}])
    finally:
        client.close()
    src = provider(server, "theirs", role="source")
    inv = src.inventory()
    assert (inv.id_type, inv.metric, inv.dimension) == ("text", "dotproduct", 3)
    assert inv.fields == {"lang": "text", "score": "float", "tags": "text[]", "year": "int"}
    got = next(src.scan(None, None, 10))
    assert got.ids == ["a", "b"] and got.texts is None
    assert got.metadata == [{"year": 1999, "score": 2.0, "tags": []},
                            {"year": 2024, "score": 0.5, "tags": ["x"], "lang": "en"}]
    assert type(got.metadata[0]["score"]) is float and type(got.metadata[0]["year"]) is int
    # Written back through vecmig: scalars into their fields, the rest into dynamic fields.
    dst = provider(server, "theirs")
    dst.upsert(Batch(ids=["c"], vectors=np.array([[5, 6, 7]], dtype=np.float32),
                     metadata=[{"year": 7, "score": 1.0, "tags": ["q"], "extra": True}]))
    assert src.fetch(["c"]).metadata == [{"year": 7, "score": 1.0, "tags": ["q"], "extra": True}]
    # What it cannot hold is said at plan time, in the engine's codes for existing targets.
    sample = Batch(ids=[1], vectors=np.ones((1, 3), dtype=np.float32), metadata=[{"year": 1}], texts=["t"])
    schema_ = CollectionSchema(dimension=3, metric="dotproduct", id_type="int")
    assert {f.code for f in dst.check_existing_target(inv, sample, schema_)} == {"VM144", "VM141"}
    with pytest.raises(TerminalError, match="VM144"):
        dst.upsert(sample)
    fixed = provider(server, "fixed")
    fixed.create_collection(CollectionSchema(dimension=3, metric="cosine", id_type="int"))
    assert fixed.check_existing_target(fixed.inventory(), sample.take([0]), schema_)[0].code == "VM141"
