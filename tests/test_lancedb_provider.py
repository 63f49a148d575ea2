"""The LanceDB provider against real embedded LanceDB tables in a tmp directory, read back with
lancedb's own API where it matters: float32 bits, int64 ids, metadata types, ordered resumable
scans, idempotent upserts, deletes, a committed version per acknowledged write, refusals that
name the record, and the index built only where it can be trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from tests.contract.stores.lancedb import under_test
from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema
from vecmig.providers.lancedb import provider as provider_module
from vecmig.providers.lancedb.errors import classify, literal
from vecmig.providers.lancedb.indexing import MIN_INDEX_ROWS
from vecmig.providers.lancedb.provider import LanceDBProvider
from vecmig.records import Batch, canonical_metadata
from vecmig.spec import CreateSpec, Fields, IndexSpec, StoreSpec

# A real store in-process (embedded LanceDB): the integration tier, like the PostgreSQL fixtures.
pytestmark = pytest.mark.integration

DIM = 8
TYPES = {"year": "int", "score": "float", "ok": "bool", "title": "text", "tags": "text[]"}


def store(path: Path, table: str, *, fields: Fields | None = None, create: CreateSpec | None = None) -> StoreSpec:
    return StoreSpec(provider="lancedb", connection={"path": str(path)}, collection=table,
                     fields=fields or Fields(), create=create, pointer="/target")


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    if n > 3:  # bit patterns a lossy path would change: -0.0, a subnormal, the largest float32
        v[0, 0] = np.float32(-0.0)
        v[1, 1] = np.float32(1e-45)
        v[2, 2] = np.finfo(np.float32).max
    return v


def records(ids: list[Any], seed: int = 0) -> Batch:
    meta: list[dict[str, Any]] = []
    for i, _ in enumerate(ids):
        m: dict[str, Any] = {"year": 2**62 + i if i % 4 == 0 else -i, "score": i / 7 if i % 3 else 2.0,
                             "ok": i % 2 == 0, "title": f"titre «{i}» 'q' \u00e9\U0001f600",
                             "tags": ["a", f"t{i}"][: i % 3]}
        if i % 5 == 0:
            m["score"] = None  # absent and null are the same record
        meta.append(m)
    texts = [f"body {i} · naïve" if i % 4 else None for i in range(len(ids))]
    return Batch(ids=list(ids), vectors=vectors(len(ids), seed), metadata=meta, texts=texts)


def new_table(path: Path, name: str, ids: list[Any], *, id_type: str = "int", **kw: Any) -> LanceDBProvider:
    p = LanceDBProvider(store(path, name, **kw))
    p.create_collection(CollectionSchema(dimension=DIM, metric="cosine", id_type=id_type, metadata=dict(TYPES),
                                         text=True))
    return p


def same(a: Batch, b: Batch) -> None:
    assert a.ids == b.ids
    assert a.vectors.dtype == b.vectors.dtype == np.float32
    assert a.vectors.tobytes() == b.vectors.tobytes(), "float32 bits differ"
    assert [canonical_metadata(m) for m in a.metadata] == [canonical_metadata(m) for m in b.metadata]
    assert list(a.texts or []) == list(b.texts or [])


def test_typed_round_trip_bit_for_bit_through_lancedb_itself(tmp_path: Path) -> None:
    ids = [2**63 - 1, -(2**63), 0, 7, 3, 1, 5]
    p = new_table(tmp_path, "docs", ids)
    batch = records(ids)
    p.upsert(batch)
    got = p.fetch(ids)
    order = [got.ids.index(i) for i in ids]
    same(batch, got.take(order))
    # Read back with lancedb alone: the columns are typed, the vector a searchable fixed-size float32 list.
    table = lancedb.connect(str(tmp_path)).open_table("docs")
    schema = table.schema
    assert schema.field("id").type == pa.int64()
    assert schema.field("vector").type == pa.list_(pa.float32(), DIM)
    assert {n: str(schema.field(n).type) for n in TYPES} == {
        "year": "int64", "score": "double", "ok": "bool", "title": "string", "tags": "list<item: string>"}
    rows = {r["id"]: r for r in table.to_arrow().to_pylist()}
    assert rows[2**63 - 1]["year"] == 2**62 and rows[2**63 - 1]["score"] is None and rows[0]["score"] == 2 / 7
    assert np.asarray(rows[-(2**63)]["vector"], dtype=np.float32).tobytes() == batch.vectors[1].tobytes()
    # A nearest-neighbour search works on what vecmig wrote.
    hit = table.search(batch.vectors[3]).metric("cosine").limit(1).to_arrow()
    assert hit.column("id").to_pylist() == [7]
    inv = p.inventory()
    assert (inv.exists, inv.count, inv.dimension, inv.id_type, inv.metric) == (True, 7, DIM, "int", "cosine")
    assert inv.fields == dict(sorted(TYPES.items())) and inv.has_text


@pytest.mark.parametrize("window_rows", [65_536, 45])  # one read for all, and windows of a few batches
def test_scan_is_ordered_resumable_and_cut_into_id_range_shards(tmp_path: Path, window_rows: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider_module, "_WINDOW_ROWS", window_rows)
    ids = [f"doc-{i:04d}" for i in np.random.default_rng(1).permutation(250)] + ["it's", "Z", ""]
    p = new_table(tmp_path, "s", ids, id_type="text")
    for start in range(0, len(ids), 60):  # in random id order: the table's row order is not id order
        p.upsert(records(ids[start:start + 60], seed=start))
    want = sorted(ids, key=lambda s: s.encode())
    batches = list(p.scan(None, None, 40))
    assert [i for b in batches for i in b.ids] == want
    assert all(b.cursor == b.ids[-1] for b in batches)
    # Resume right after any cursor, including one holding a quote.
    for b in batches[:3]:
        rest = [i for x in p.scan(None, b.cursor, 33) for i in x.ids]
        assert rest == want[want.index(b.cursor) + 1:]
    resumed = [i for x in p.scan(None, "it's", 1000) for i in x.ids]
    assert resumed == want[want.index("it's") + 1:]
    inv = p.inventory()
    shards = p.shards(inv, 100)
    assert [s["records"] for s in shards] == [100, 100, 53]
    got = [i for s in shards for b in p.scan(s, None, 7) for i in b.ids]
    assert got == want, "shards cover every id once, in order"
    mid = next(p.scan(shards[1], None, 10))
    assert [i for b in p.scan(shards[1], mid.cursor, 10) for i in b.ids] == want[110:200]


def test_upsert_is_idempotent_and_every_acknowledged_write_is_a_committed_version(tmp_path: Path) -> None:
    ids = list(range(1, 101))
    p = new_table(tmp_path, "docs", ids)
    v0 = lancedb.connect(str(tmp_path)).open_table("docs").version
    batch = records(ids)
    p.upsert(batch)
    p.upsert(batch)  # a replay after a kill: nothing doubled
    changed = records(ids[:10], seed=9)
    p.upsert(changed)
    # A fresh connection (another process would do the same) sees all three commits.
    table = lancedb.connect(str(tmp_path)).open_table("docs")
    assert table.version == v0 + 3
    assert table.count_rows() == 100
    same(changed, p.fetch(ids[:10]))
    same(batch.take(range(10, 100)), p.fetch(ids[10:]))
    p.delete([5, 6, 999, 5])
    assert p.count() == 98 and not p.fetch([5, 6]).ids
    assert p.fetch(["5", True]).ids == [], "ids of the other type are simply absent"


def test_json_metadata_column_keeps_int_float_and_nested_values(tmp_path: Path) -> None:
    p = new_table(tmp_path, "j", [], fields=Fields(metadata="meta"))
    batch = Batch(ids=[1, 2], vectors=vectors(2), texts=[None, "x"],
                  metadata=[{"n": 1, "f": 1.0, "z": -0.0, "deep": {"a": [1, 2.5, None]}}, {"big": 2**64}])
    p.upsert(batch)
    got = p.fetch([1, 2])
    assert got.metadata[0] == batch.metadata[0] and type(got.metadata[0]["f"]) is float
    assert got.metadata[1] == {"big": 2**64}
    table = lancedb.connect(str(tmp_path)).open_table("j")
    assert table.schema.field("meta").type == pa.string()
    assert json.loads(table.to_arrow().column("meta")[0].as_py())["n"] == 1
    assert p.inventory().metadata_column == "meta"


def test_what_a_column_cannot_hold_is_refused_naming_the_record(tmp_path: Path) -> None:
    p = new_table(tmp_path, "docs", [1])
    bad = records([1, 2, 3])
    bad.metadata[1]["year"] = 1.5  # an int64 column would silently make it 1
    with pytest.raises(TerminalError) as err:
        p.upsert(bad)
    assert "record 2" in err.value.message and "year" in err.value.message
    extra = records([4])
    extra.metadata[0]["color"] = "red"
    with pytest.raises(TerminalError, match="'color' have no column"):
        p.upsert(extra)
    wide = Batch(ids=[9], vectors=np.zeros((1, DIM + 1), np.float32), metadata=[{}], texts=[None])
    with pytest.raises(TerminalError, match="9-dimensional"):
        p.upsert(wide)
    assert p.count() == 0, "nothing of a refused batch was written"
    missing = LanceDBProvider(store(tmp_path, "nope"))
    with pytest.raises(TerminalError, match="does not exist"):
        missing.upsert(records([1]))
    assert not missing.inventory().exists and missing.count() == 0


def test_index_is_built_only_where_it_can_be_trained_and_the_plan_says_so(tmp_path: Path) -> None:
    n = MIN_INDEX_ROWS + 50
    p = new_table(tmp_path, "big", list(range(n)), create=CreateSpec(index=IndexSpec(type="ivfflat", lists=4)))
    for start in range(0, n, 100):
        part = records(list(range(start, min(n, start + 100))), seed=start)
        # Plain vectors: float32's largest value would overflow the l2 distances k-means trains on.
        part.vectors = np.random.default_rng(start).standard_normal(part.vectors.shape).astype(np.float32)
        p.upsert(part)
    versions = len(lancedb.connect(str(tmp_path)).open_table("big").list_versions())
    assert p.build_index(IndexSpec(type="ivfflat", lists=4), "euclidean") == "vector_idx"
    after = lancedb.connect(str(tmp_path)).open_table("big")
    assert after.stats()["fragment_stats"]["num_fragments"] == 1, "the copy's fragments were compacted first"
    assert len(after.list_versions()) > versions, "no version of the table was pruned"
    inv = p.inventory()
    # lists as vecmig recorded it on the vector field (LanceDB itself does not report num_partitions)
    assert inv.index == {"name": "vector_idx", "type": "ivfflat", "lists": 4}
    assert lancedb.connect(str(tmp_path)).open_table("big").index_stats("vector_idx").distance_type == "l2"
    p.drop_index("vector_idx")
    p.drop_index("vector_idx")  # idempotent, as every undo
    assert p.inventory().index is None

    small = new_table(tmp_path, "small", list(range(20)), create=CreateSpec(index=IndexSpec(type="hnsw")))
    small.upsert(records(list(range(20))))
    assert small.build_index(IndexSpec(type="hnsw"), "cosine") is None
    assert lancedb.connect(str(tmp_path)).open_table("small").list_indices() == []
    schema = CollectionSchema(dimension=DIM, metric="cosine", id_type="int", metadata=dict(TYPES), text=True)
    codes = {f.code: f for f in small.lint(records(list(range(20))), schema)}
    assert codes["LD001"].severity == "warning" and "20 record(s)" in codes["LD001"].message
    assert "LD001" not in {f.code for f in p.lint(records(list(range(MIN_INDEX_ROWS))), schema)}


def test_lint_reports_the_fidelity_rules_on_the_sample(tmp_path: Path) -> None:
    p = LanceDBProvider(store(tmp_path, "t"))
    sample = records([1, 2])
    sample.metadata[0]["year"] = "nineteen"
    schema = CollectionSchema(dimension=DIM, metric="cosine", id_type="int", metadata=dict(TYPES), text=True)
    codes = {f.code for f in p.lint(sample, schema)}
    assert "FD005" in codes


def test_errors_are_one_line_and_split_transient_from_terminal() -> None:
    assert type(classify(RuntimeError("Retryable commit conflict for version 4"), doing="writing",
                         table="t")).__name__ == "TransientError"
    err = classify(ValueError("Schema error:\n  field x\n  not found"), doing="writing", table="t")
    assert type(err).__name__ == "TerminalError" and "\n" not in err.message and "table 't'" in err.message
    assert literal("it's") == "'it''s'" and literal(-5) == "-5"
    with pytest.raises(TypeError):
        literal(True)


def test_a_table_seeded_by_lancedb_itself_is_read_with_its_own_columns(tmp_path: Path) -> None:
    db = lancedb.connect(str(tmp_path))
    v = vectors(3)
    db.create_table("seeded", data=pa.table({
        "id": pa.array([3, 1, 2], pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM),
        "text": ["c", None, "b"], "year": pa.array([1, None, 3], pa.int32()), "lang": ["en", "fr", None]}))
    p = LanceDBProvider(store(tmp_path, "seeded"))
    inv: Inventory = p.inventory()
    assert inv.fields == {"lang": "text", "year": "int"} and inv.metric is None and inv.count == 3
    (batch,) = list(p.scan(None, None, 10))
    assert batch.ids == [1, 2, 3] and batch.texts == [None, "b", "c"]
    assert batch.metadata == [{"lang": "fr"}, {"year": 3}, {"year": 1, "lang": "en"}]
    assert batch.vectors.tobytes() == v[[1, 2, 0]].tobytes()


def test_the_contract_module_seeds_with_lancedb_and_the_provider_reads_it_back(tmp_path: Path) -> None:
    sut = under_test(tmp_path)
    try:
        recs = [{"id": i, "vector": [float(i), -0.0, 1e-45], "metadata": {"n": i, "f": 1.0, "l": ["x"], "z": None},
                 "text": None if i == 3 else f"t{i}"} for i in (5, 1, 3)]
        spec = sut.spec("seeded", "source")
        assert sut.seed is not None
        sut.seed(spec, recs)
        (batch,) = list(LanceDBProvider(spec).scan(None, None, 10))
        assert batch.ids == [1, 3, 5] and batch.texts == ["t1", None, "t5"]
        assert [canonical_metadata(m, strict=True) for m in batch.metadata] == [
            canonical_metadata(r["metadata"], strict=True) for r in sorted(recs, key=lambda r: r["id"])]
        assert batch.vectors.tobytes() == np.asarray([r["vector"] for r in sorted(recs, key=lambda r: r["id"])],
                                                     dtype=np.float32).tobytes()
        assert {"sparse", "namespaces"} <= set(sut.lacks)
    finally:
        sut.stop()
    assert not (tmp_path / "lancedb").exists()


def test_an_existing_table_is_judged_against_its_own_columns_at_plan_time(tmp_path: Path) -> None:
    db = lancedb.connect(str(tmp_path))
    db.create_table("theirs", data=pa.table({
        "id": pa.array([1], pa.int64()), "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors(1)[0]), DIM),
        "year": pa.array([1], pa.int64())}))
    p = LanceDBProvider(store(tmp_path, "theirs"))
    sample = Batch(ids=[2, "x"], vectors=vectors(2), texts=["a", None],
                   metadata=[{"year": 1.5}, {"color": "red", "year": None}])
    schema = CollectionSchema(dimension=DIM, metric="cosine", id_type="int", metadata={"year": "float"}, text=True)
    found = {f.code: f for f in p.check_existing_target(p.inventory(), sample, schema)}
    assert set(found) == {"VM144", "VM141", "VM140", "FD005"}, found
    assert all(f.severity == "error" and f.hint for f in found.values())
    assert "'color'" not in found["VM140"].message and "color" in found["VM140"].message
    assert "FD005" not in {f.code for f in p.lint(sample, schema)}, "lint leaves an existing table to this check"
