"""Red-team regressions for the Milvus, Chroma and LanceDB stores (small data, one server per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from tests.support.cli import vecmig
from tests.support.milvus import MilvusLite
from tests.support.specs import write_spec
from vecmig.providers.base import CollectionSchema
from vecmig.providers.milvus.provider import MilvusProvider
from vecmig.records import Batch, RecordId
from vecmig.spec import StoreSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def milvus() -> Iterator[MilvusLite]:
    srv = MilvusLite()
    try:
        yield srv
    finally:
        srv.stop()


def test_milvus_string_ids_with_line_breaks_scan_resume_and_fetch(milvus: MilvusLite) -> None:
    """A VARCHAR id holding a newline or carriage return: the scan's cursor filter (`pk > "..."`)
    was sent with the raw character, which Milvus' expression parser refuses ("unterminated
    string literal (newline)"), so a faithful migration stopped after the first batch."""
    p = MilvusProvider(StoreSpec(provider="milvus", connection={"uri": milvus.uri}, collection="linebreaks",
                                 pointer="/source"))
    p.create_collection(CollectionSchema(dimension=2, metric="euclidean", id_type="text"))
    ids: list[RecordId] = ["a\nb", "a\rb", "a\r\nb", "a\tb", "a\\nb", 'a"\nb', "a\x01b", "b"]
    rng = np.random.default_rng(1)
    p.upsert(Batch(ids=list(ids), vectors=rng.standard_normal((len(ids), 2)).astype(np.float32),
                   metadata=[{"k": i} for i in range(len(ids))], texts=None))
    ordered = sorted(ids, key=lambda s: str(s).encode())
    assert [r for b in p.scan(None, None, 2) for r in b.ids] == ordered
    for k, rid in enumerate(ordered):
        assert [r for b in p.scan(None, rid, 2) for r in b.ids] == ordered[k + 1:], f"resume after {rid!r}"
    assert p.fetch(ids).ids == ids
    p.delete(ids[:4])
    assert sorted(p.fetch(ids).ids, key=str) == sorted(ids[4:], key=str) and p.count() == 4
    p.drop_collection()


def test_lancedb_source_with_a_null_id_is_refused_in_one_line(tmp_path: Path) -> None:
    """A LanceDB table whose id column holds a null (LanceDB has no primary key, nothing stops
    it): the scan sent ``id <= 'None'`` and the plan died with the Rust core's message and a
    cargo source path instead of saying which column holds a null id."""
    data = pa.table({"id": pa.array([1, None, 3], pa.int64()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 2)})
    lancedb.connect(str(tmp_path / "lance")).create_table("docs", data=data)
    spec = write_spec(tmp_path, """
        version: 1
        name: nullid
        source: {provider: lancedb, connection: {path: lance}, collection: docs}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        """)
    for cmd in ("plan", "apply"):
        r = vecmig(cmd, str(spec), *(("--auto-approve",) if cmd == "apply" else ()))
        out = r.stdout + r.stderr
        assert r.returncode not in (0, None), out
        assert "null id" in out and "'id'" in out, out
        assert "Traceback" not in out and "cargo" not in out and "'None'" not in out, out
    assert not (tmp_path / "out.jsonl").exists()


def test_chroma_int_collection_holding_a_non_canonical_id_is_refused_not_lost(tmp_path: Path) -> None:
    """A collection vecmig created for int ids (``vecmig:id_type: int``) to which an application
    later added ids such as "05" or "doc-9": "05" was read as 5, fetched as "5" (absent) and
    silently left out while apply reported it copied and validation passed; "doc-9" was an
    "internal error: ValueError". Either must stop the plan naming the id."""
    import chromadb
    from chromadb.config import Settings

    (tmp_path / "src.jsonl").write_text('{"id":1,"vector":[1.0,2.0],"metadata":{"a":1}}\n'
                                        '{"id":2,"vector":[3.0,4.0],"metadata":{"a":2}}\n')
    write_spec(tmp_path, """
        version: 1
        name: seed
        source: {provider: jsonl, connection: {path: src.jsonl}}
        target: {provider: chroma, connection: {path: chroma}, collection: docs, create: {metric: euclidean}}
        """).rename(tmp_path / "seed.yaml")
    r = vecmig("apply", str(tmp_path / "seed.yaml"), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    coll = client.get_collection("docs")
    spec = write_spec(tmp_path, """
        version: 1
        name: out
        source: {provider: chroma, connection: {path: chroma}, collection: docs}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        """)
    for bad in ("05", "-0", "doc-9"):
        coll.add(ids=[bad], embeddings=[[5.0, 5.0]], metadatas=[{"a": 5}])
        r = vecmig("apply", str(spec), "--auto-approve")
        out = r.stdout + r.stderr
        assert r.returncode not in (0, None), out
        assert repr(bad) in out and "internal error" not in out, out
        coll.delete(ids=[bad])
    assert not (tmp_path / "out.jsonl").exists()


def test_milvus_metadata_key_in_two_places_is_refused_not_overwritten(milvus: MilvusLite) -> None:
    """A user's collection with a JSON field 'metadata' and a scalar field of the same name as one
    of its keys (a field promoted out of the JSON): the scalar silently overwrote the JSON's value,
    so one of two different values was lost on the copy."""
    from pymilvus import DataType, MilvusClient

    from vecmig.errors import TerminalError

    client = milvus.client()
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("year", DataType.INT64, nullable=True)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        client.create_collection("twice", schema=schema, index_params=index, consistency_level="Strong")
        client.insert("twice", [{"pk": 1, "vector": [1.0, 2.0], "metadata": {"k": 1}, "year": 2024},
                                {"pk": 2, "vector": [3.0, 4.0], "metadata": {"year": 1999}, "year": 2024},
                                {"pk": 3, "vector": [5.0, 6.0], "metadata": {"lang": "en"}, "lang": "fr"}])
    finally:
        client.close()
    src = MilvusProvider(StoreSpec(provider="milvus", connection={"uri": milvus.uri}, collection="twice",
                                   pointer="/source"))
    with pytest.raises(TerminalError, match=r"record 2: metadata key 'year'"):
        list(src.scan(None, None, 2))
    with pytest.raises(TerminalError, match=r"record 3: metadata key 'lang'"):
        list(src.scan(None, 2, 2))
    assert src.fetch([1]).metadata == [{"k": 1, "year": 2024}]
