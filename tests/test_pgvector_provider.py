"""The pgvector provider against a real PostgreSQL 16 + pgvector (pgserver), no mocks."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from tests.support.data import DOCS_FIELDS, make_docs_table, make_vectors, pg_store
from vecmig.errors import TerminalError, TransientError
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pgvector import PgvectorProvider, embedded
from vecmig.records import Batch, Checksum
from vecmig.spec import Fields, IndexSpec


def provider(dsn: str, collection: str | None = "docs", **kw: Any) -> PgvectorProvider:
    return PgvectorProvider(pg_store(dsn, collection, **kw))


def scan_all(p: PgvectorProvider, shard: dict[str, Any] | None = None, cursor: Any = None, size: int = 100) -> Batch:
    batches = list(p.scan(shard, cursor, size))
    if not batches:
        return Batch(ids=[], vectors=np.zeros((0, 0), np.float32), metadata=[], texts=[])
    return Batch(
        ids=[i for b in batches for i in b.ids],
        vectors=np.concatenate([b.vectors for b in batches]),
        metadata=[m for b in batches for m in b.metadata],
        texts=[t for b in batches for t in (b.texts or [])],
    )


def columns_of(dsn: str, table: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (sql.Identifier(table).as_string(conn),),
        ).fetchall()
    return dict(rows)


def view_oid(dsn: str, name: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT to_regclass(%s)::oid", (name,)).fetchone()[0])


def schema_like_docs(dim: int, metric: str = "cosine", id_type: str = "int") -> CollectionSchema:
    return CollectionSchema(dimension=dim, metric=metric, id_type=id_type, metadata=dict(DOCS_FIELDS), text=True)


# ---- discovery & inventory --------------------------------------------------------------------


def test_registered_under_entry_point() -> None:
    assert provider_class("pgvector") is PgvectorProvider
    caps = PgvectorProvider.capabilities
    assert caps.aliases and caps.create_collection and caps.server_side_count and caps.ordered_scan
    assert caps.indexes == ("hnsw", "ivfflat") and caps.metadata == "both" and not caps.namespaces


def test_inventory_reports_shape_metric_and_is_deterministic(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 300, 16)
    with provider(pg_db) as p:
        inv = p.inventory()
        assert inv.exists and inv.collection == "docs" and inv.provider == "pgvector"
        assert inv.dimension == 16 and inv.count == 300 and inv.count_exact
        assert inv.id_type == "int" and inv.metric is None and inv.index is None
        assert inv.fields == DOCS_FIELDS
        assert inv.extra["min_id"] == 1 and inv.extra["max_id"] == 300
        assert inv.extra["text_column"] == "body" and inv.extra["id_unique"] is True
        assert inv.bytes_per_record and inv.bytes_per_record > 16 * 4

        # Statistics that autovacuum changes on its own must not move the fingerprint.
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE docs")
        assert p.inventory().fingerprint == inv.fingerprint

        name = p.build_index(IndexSpec(type="hnsw", m=8, ef_construction=32), "cosine")
        inv2 = p.inventory()
        assert inv2.metric == "cosine"
        assert inv2.index == {
            "name": name,
            "type": "hnsw",
            "opclass": "vector_cosine_ops",
            "params": {"m": 8, "ef_construction": 32},
            # vecmig.indexes' neutral keys; ef_search as this session sees it (pgvector's default)
            "m": 8, "ef_construction": 32, "ef_search": 40,
        }
        assert inv2.fingerprint != inv.fingerprint and p.inventory().fingerprint == inv2.fingerprint

        with psycopg.connect(pg_db, autocommit=True) as conn:
            register_vector(conn)
            conn.execute("INSERT INTO docs (id, embedding) VALUES (301, %s)", (make_vectors(1, 16)[0],))
        inv3 = p.inventory()
        assert inv3.count == 301 and inv3.extra["max_id"] == 301 and inv3.fingerprint != inv2.fingerprint


def test_inventory_of_missing_table_and_default_metadata(pg_db: str) -> None:
    with provider(pg_db, "nope") as p:
        inv = p.inventory()
        assert not inv.exists and inv.count is None and not p.collection_exists()
    make_docs_table(pg_db, "docs", 20, 4)
    # Without fields.text every column but id and vector is metadata.
    with provider(pg_db, fields=Fields()) as p:
        inv = p.inventory()
        assert inv.fields == {**DOCS_FIELDS, "body": "text"} and inv.extra["text_column"] is None
        batch = next(p.scan(None, None, 5))
        assert batch.texts is None and "body" in batch.metadata[0]


def test_inventory_maps_column_types(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute(
            "CREATE TABLE odd (id int4 PRIMARY KEY, embedding vector(3) NOT NULL, n numeric, s smallint, "
            "f real, v varchar(20), ts timestamptz, u uuid, ia int4[], va varchar[], j json, b jsonb, "
            "extra vector(2))"
        )
        conn.execute(
            "INSERT INTO odd VALUES (1, '[1,2,3]', 1.5, 7, 0.25, 'x', '2024-01-02 03:04:05+00', "
            "'9b2f6a7c-0000-4000-8000-000000000001', '{1,2}', '{a,NULL}', '{\"k\": [1]}', '{\"z\": true}', '[1,2]')"
        )
    with provider(pg_db, "odd", fields=Fields()) as p:
        inv = p.inventory()
        assert inv.id_type == "int" and inv.dimension == 3
        assert inv.fields == {
            "n": "float",
            "s": "int",
            "f": "float",
            "v": "text",
            "ts": "text",
            "u": "text",
            "ia": "json",
            "va": "text[]",
            "j": "json",
            "b": "json",
        }
        assert inv.extra["ignored_columns"] == ["extra"]
        (meta,) = p.fetch([1]).metadata
        assert meta["n"] == 1.5 and meta["s"] == 7 and meta["f"] == 0.25 and meta["v"] == "x"
        assert meta["ts"].startswith("2024-01-02") and meta["u"] == "9b2f6a7c-0000-4000-8000-000000000001"
        assert meta["ia"] == [1, 2] and meta["va"] == ["a", None]
        assert meta["j"] == {"k": [1]} and meta["b"] == {"z": True}


def test_unconstrained_vector_column(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE u (id bigint PRIMARY KEY, embedding vector NOT NULL)")
        conn.execute("INSERT INTO u VALUES (1, '[1,2,3]'), (2, '[4,5,6]')")
    with provider(pg_db, "u", fields=Fields()) as p:
        assert p.inventory().dimension == 3  # no typmod: read from the first row
        assert scan_all(p).vectors.tolist() == [[1, 2, 3], [4, 5, 6]]
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("INSERT INTO u VALUES (3, '[7,8,9,10]')")
        with pytest.raises(TerminalError, match="different dimensions"):
            scan_all(p)


def test_table_without_primary_key(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE nopk (id bigint, embedding vector(2) NOT NULL)")
        conn.execute("INSERT INTO nopk VALUES (NULL, '[0,0]'), (2, '[2,2]'), (1, '[1,1]')")
    with provider(pg_db, "nopk", fields=Fields()) as p:
        inv = p.inventory()
        assert inv.extra["id_unique"] is False and inv.count == 3
        assert scan_all(p, size=1).ids == [1, 2]  # a NULL id is never a cursor
        with pytest.raises(TerminalError, match="no unique index") as exc:
            p.upsert(Batch(ids=[3], vectors=np.ones((1, 2), np.float32), metadata=[{}]))
        assert exc.value.hint and "PRIMARY KEY" in exc.value.hint


def test_implicit_text_column_round_trips(pg_db: str) -> None:
    # Without fields.text, create_collection names the text column "text" and reads it back as text.
    with provider(pg_db, "tx", pointer="/target", fields=Fields()) as p:
        p.create_collection(
            CollectionSchema(dimension=2, metric="cosine", id_type="int", metadata={"k": "int"}, text=True)
        )
        assert list(columns_of(pg_db, "tx")) == ["id", "embedding", "k", "text"]
        p.upsert(Batch(ids=[1], vectors=np.ones((1, 2), np.float32), metadata=[{"k": 1}], texts=["hello"]))
        got = p.fetch([1])
        assert got.texts == ["hello"] and got.metadata == [{"k": 1}]
        assert p.inventory().fields == {"k": "int"}
    with provider(pg_db, "docs", pointer="/target", fields=Fields()) as p:
        p.create_collection(CollectionSchema(dimension=2, metric="cosine", id_type="int"))
        with pytest.raises(TerminalError, match="no text column"):
            p.upsert(Batch(ids=[1], vectors=np.ones((1, 2), np.float32), metadata=[{}], texts=["lost?"]))


# ---- scanning -----------------------------------------------------------------------------------


def test_scan_is_ordered_bit_exact_and_resumable(pg_db: str) -> None:
    data = make_docs_table(pg_db, "docs", 1000, 48, seed=3)
    with provider(pg_db) as p:
        batches = list(p.scan(None, None, 64))
        assert [len(b) for b in batches] == [64] * 15 + [40]
        assert all(b.cursor == b.ids[-1] for b in batches)
        got = scan_all(p, size=64)
        assert got.ids == sorted(data.ids)
        assert got.vectors.dtype == np.float32 and got.vectors.flags["C_CONTIGUOUS"]
        pos = data.by_id()
        order = [pos[i] for i in got.ids]
        assert got.vectors.tobytes() == data.vectors[order].tobytes()
        assert got.metadata == [data.metadata[i] for i in order]
        assert got.texts == [data.texts[i] for i in order]

        # Resuming from a cursor yields exactly what came after it.
        cursor = batches[4].cursor
        rest = scan_all(p, cursor=cursor, size=100)
        assert rest.ids == got.ids[5 * 64 :]

        # The order-independent checksum agrees with the generated truth.
        a, b = Checksum(), Checksum()
        a.add_batch(got)
        b.add_batch(data.batch())
        assert a.to_json() == b.to_json()


def test_scan_empty_table(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 0, 8)
    with provider(pg_db) as p:
        inv = p.inventory()
        assert inv.count == 0 and inv.extra["min_id"] is None
        assert list(p.scan(None, None, 10)) == []
        assert p.shards(inv, 100) == [{"lo": None, "hi": None, "records": 0}]


def _assert_partition(p: PgvectorProvider, shards: list[dict[str, Any]], all_ids: list[Any]) -> None:
    seen: list[Any] = []
    for shard in shards:
        ids = scan_all(p, shard, size=37).ids
        assert ids == sorted(ids)
        seen.extend(ids)
    assert seen == sorted(all_ids), "shards must cover every id exactly once, in order"
    assert shards[0]["lo"] is None and shards[-1]["hi"] is None
    assert all(a["hi"] == b["lo"] for a, b in itertools.pairwise(shards))


def test_int_shards_partition_exactly(pg_db: str) -> None:
    data = make_docs_table(pg_db, "docs", 1000, 8, start=-200)
    with provider(pg_db) as p:
        inv = p.inventory()
        shards = p.shards(inv, 300)
        assert len(shards) == 4 and sum(s["records"] for s in shards) == 1000
        assert shards == p.shards(inv, 300), "deterministic"
        _assert_partition(p, shards, data.ids)
        # Rows added beyond either end after planning still belong to a shard.
        with psycopg.connect(pg_db, autocommit=True) as conn:
            register_vector(conn)
            for rid in (-10_000, 10_000):
                conn.execute("INSERT INTO docs (id, embedding) VALUES (%s, %s)", (rid, make_vectors(1, 8)[0]))
        _assert_partition(p, shards, [*data.ids, -10_000, 10_000])
        assert p.shards(inv, 5000) == [{"lo": None, "hi": None, "records": 1000}]


@pytest.mark.parametrize("id_type", ["text", "uuid"])
def test_text_shards_partition_exactly(pg_db: str, id_type: str) -> None:
    data = make_docs_table(pg_db, "docs", 1000, 8, id_type=id_type)
    with provider(pg_db) as p:
        inv = p.inventory()
        assert inv.id_type == "text"
        shards = p.shards(inv, 250)
        assert [s["records"] for s in shards] == [250, 250, 250, 250]
        _assert_partition(p, shards, data.ids)
        got = scan_all(p, size=99)
        assert all(isinstance(i, str) for i in got.ids)
        pick = [data.ids[5], data.ids[900]]
        assert sorted(p.fetch(pick).ids) == sorted(pick)


# ---- writing ------------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_bit_exact(pg_db: str) -> None:
    data = make_docs_table(pg_db, "docs", 500, 32, seed=7)
    src = provider(pg_db)
    tgt = provider(pg_db, "docs_v2", pointer="/target")
    with src, tgt:
        tgt.create_collection(schema_like_docs(32))
        batches = list(src.scan(None, None, 128))
        for b in batches:
            tgt.upsert(b)
        for b in batches[:2]:  # a replayed, unacknowledged batch
            tgt.upsert(b)
        assert tgt.count() == 500
        copied = scan_all(tgt, size=500)
        original = scan_all(src, size=500)
        assert copied.ids == original.ids
        assert copied.vectors.tobytes() == original.vectors.tobytes()
        assert copied.metadata == original.metadata and copied.texts == original.texts

        # Independent check of the stored bits with pgvector-python's own loader.
        with psycopg.connect(pg_db) as conn:
            register_vector(conn)
            stored = conn.execute("SELECT embedding FROM docs_v2 WHERE id = 17").fetchone()[0]
        assert np.asarray(stored.to_numpy(), dtype=np.float32).tobytes() == data.vectors[16].tobytes()

        # Changed values win; absent fields become NULL; NULLs, empty arrays, unicode survive.
        first = copied.take([0, 1])
        first.vectors = first.vectors + np.float32(1.0)
        first.metadata = [
            {"title": "changed ✓", "tags": [], "year": 1999, "score": 2.5, "published": False},
            {"tags": ["a", "ü", "b c"], "lang": None},
        ]
        first.texts = ["new body", None]
        tgt.upsert(first)
        again = tgt.fetch(first.ids)
        assert again.vectors.tobytes() == first.vectors.tobytes()
        assert again.metadata == [
            {"title": "changed ✓", "tags": [], "year": 1999, "score": 2.5, "published": False},
            {"tags": ["a", "ü", "b c"]},
        ]
        assert again.texts == ["new body", None] and tgt.count() == 500


def test_upsert_duplicate_ids_last_wins(pg_db: str) -> None:
    with provider(pg_db, "t", pointer="/target", fields=Fields()) as p:
        p.create_collection(CollectionSchema(dimension=2, metric="euclidean", id_type="text", metadata={"k": "int"}))
        vecs = np.array([[1, 1], [2, 2], [3, 3]], dtype=np.float32)
        p.upsert(Batch(ids=["a", "b", "a"], vectors=vecs, metadata=[{"k": 1}, {"k": 2}, {"k": 3}]))
        got = p.fetch(["a", "b"])
        assert got.ids == ["a", "b"] and got.metadata == [{"k": 3}, {"k": 2}]
        assert got.vectors.tolist() == [[3, 3], [2, 2]]


def test_upsert_jsonb_metadata_mode(pg_db: str) -> None:
    with provider(pg_db, "j", pointer="/target", fields=Fields(metadata="meta", text="body")) as p:
        p.create_collection(CollectionSchema(dimension=3, metric="cosine", id_type="int", text=True))
        assert columns_of(pg_db, "j") == {"id": "bigint", "embedding": "vector(3)", "meta": "jsonb", "body": "text"}
        docs = [{"a": 1, "nested": {"x": [1, 2.5, None], "s": "日本"}}, {}, {"flag": True, "tags": ["q"]}]
        vecs = make_vectors(3, 3)
        p.upsert(Batch(ids=[1, 2, 3], vectors=vecs, metadata=docs, texts=["t1", None, "t3"]))
        inv = p.inventory()
        assert inv.fields == {"meta": "json"} and inv.extra["metadata_column"] == "meta"
        got = scan_all(p)
        assert got.metadata == docs and got.texts == ["t1", None, "t3"]
        assert got.vectors.tobytes() == vecs.tobytes()


def test_upsert_coerces_safe_values_and_names_bad_records(pg_db: str) -> None:
    with provider(pg_db, "c", pointer="/target", fields=Fields()) as p:
        p.create_collection(
            CollectionSchema(dimension=2, metric="cosine", id_type="int", metadata={"n": "int", "tags": "text[]"})
        )
        vecs = np.ones((2, 2), dtype=np.float32)
        p.upsert(Batch(ids=[1, 2], vectors=vecs, metadata=[{"n": 3.0}, {"tags": ("x", "y")}]))
        assert p.fetch([1, 2]).metadata == [{"n": 3}, {"tags": ["x", "y"]}]
        with pytest.raises(TerminalError, match=r"record 2: metadata field 'n'"):
            p.upsert(Batch(ids=[1, 2], vectors=vecs, metadata=[{"n": 1}, {"n": "many"}]))
        with pytest.raises(TerminalError, match="no column") as exc:
            p.upsert(Batch(ids=[1], vectors=vecs[:1], metadata=[{"surprise": 1}]))
        assert exc.value.hint and "mapping" in exc.value.hint
        with pytest.raises(TerminalError, match="dimensions"):
            p.upsert(Batch(ids=[1], vectors=np.ones((1, 3), np.float32), metadata=[{}]))
        with pytest.raises(TerminalError, match=r"record 2: metadata field .* holds a NUL character .*FD002"):
            p.upsert(_nul_batch(vecs))
        # The failed batches left nothing behind, and the connection is still usable.
        assert p.fetch([1, 2]).metadata == [{"n": 3}, {"tags": ["x", "y"]}]
        # Ids are normalised to the column type before duplicates are resolved.
        p.upsert(Batch(ids=[5, "5"], vectors=vecs, metadata=[{"n": 1}, {"n": 2}]))
        assert p.fetch([5]).metadata == [{"n": 2}]


def _nul_batch(vecs: np.ndarray) -> Batch:
    return Batch(ids=[1, 2], vectors=vecs, metadata=[{"tags": ["ok"]}, {"tags": ["bad\x00"]}])


def test_fetch_and_delete(pg_db: str) -> None:
    data = make_docs_table(pg_db, "docs", 50, 8)
    with provider(pg_db) as p:
        got = p.fetch([30, 3, 999])
        assert got.ids == [3, 30] and got.vectors.tobytes() == data.vectors[[2, 29]].tobytes()
        assert p.fetch([]).ids == []
        p.delete([3, 4, 12345])
        assert p.count() == 48 and p.fetch([3, 4]).ids == []
        p.delete([])


def test_create_and_drop_collection(pg_db: str) -> None:
    with provider(pg_db, "made", pointer="/target") as p:
        p.create_collection(
            CollectionSchema(
                dimension=5,
                metric="dotproduct",
                id_type="text",
                metadata={"t": "text", "i": "int", "f": "float", "b": "bool", "a": "text[]", "j": "json"},
                text=True,
            )
        )
        assert columns_of(pg_db, "made") == {
            "id": "text",
            "embedding": "vector(5)",
            "t": "text",
            "i": "bigint",
            "f": "double precision",
            "b": "boolean",
            "a": "text[]",
            "j": "jsonb",
            "body": "text",
        }
        inv = p.inventory()
        # The metric is known before any index exists (kept in a column comment).
        assert inv.metric == "dotproduct" and inv.index is None and inv.count == 0 and inv.id_type == "text"
        schema = p.estimate_schema()
        assert schema is not None and schema.dimension == 5 and schema.metric == "dotproduct" and schema.text
        # Creating again with the same shape is a no-op; a different shape is refused.
        p.create_collection(CollectionSchema(dimension=5, metric="dotproduct", id_type="text"))
        with pytest.raises(TerminalError, match="different shape"):
            p.create_collection(CollectionSchema(dimension=6, metric="cosine", id_type="text"))
        p.drop_collection()
        assert not p.collection_exists() and p.estimate_schema() is None
        p.drop_collection()  # idempotent


def test_source_connection_does_not_create_extension(pg_db: str) -> None:
    with provider(pg_db, "docs") as p:
        assert not p.inventory().exists
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 0


# ---- indexes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "metric", "opclass", "params"),
    [
        (IndexSpec("hnsw", m=12, ef_construction=40), "cosine", "vector_cosine_ops", {"m": 12, "ef_construction": 40}),
        (IndexSpec(type="ivfflat", lists=10), "euclidean", "vector_l2_ops", {"lists": 10}),
        (IndexSpec(type="hnsw"), "dotproduct", "vector_ip_ops", {"m": 16, "ef_construction": 64}),
    ],
)
def test_build_index_and_metric_detection(
    pg_db: str, index: IndexSpec, metric: str, opclass: str, params: dict[str, int]
) -> None:
    make_docs_table(pg_db, "docs", 400, 8)
    with provider(pg_db) as p:
        name = p.build_index(index, metric)
        assert name == f"docs_embedding_{index.type}_idx"
        inv = p.inventory()
        assert inv.metric == metric
        query_time = {"ef_search": 40} if index.type == "hnsw" else {"probes": 1}  # pgvector's defaults
        assert inv.index == {"name": name, "type": index.type, "opclass": opclass, "params": params,
                             **params, **query_time}
        assert p.build_index(index, metric) == name, "building again is a no-op"
        with pytest.raises(TerminalError, match="different settings"):
            p.build_index(index, "cosine" if metric != "cosine" else "euclidean")
        p.drop_index(name)
        assert p.inventory().index is None and p.inventory().metric is None
        assert p.build_index(IndexSpec(type="none"), metric) is None


# ---- aliases (views) ----------------------------------------------------------------------------


def test_alias_switch_back_and_forth(pg_db: str) -> None:
    make_docs_table(pg_db, "blue", 30, 8, seed=1)
    make_docs_table(pg_db, "green", 40, 8, seed=2)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE green ADD COLUMN note text")  # a different column list
    with provider(pg_db, "green", alias="live", pointer="/target") as p:
        assert p.read_alias("live") is None
        p.switch_alias("live", "blue")
        assert p.read_alias("live") == "blue"
        assert p.inventory().aliases == {"live": "blue"}
        p.switch_alias("live", "green")  # green adds a column at the end: CREATE OR REPLACE works
        assert p.read_alias("live") == "green"
        assert p.inventory().aliases == {"live": "green"}
        with psycopg.connect(pg_db) as conn:
            assert conn.execute("SELECT count(*) FROM live").fetchone()[0] == 40
        p.switch_alias("live", "blue")
        assert p.read_alias("live") == "blue"
        # Grants on the alias survive a switch that has to drop and re-create the view.
        reader = f"reader_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(reader)))
            conn.execute(sql.SQL("GRANT SELECT ON live TO {}").format(sql.Identifier(reader)))
        try:
            p.switch_alias("live", "green")
            before = view_oid(pg_db, "live")
            p.switch_alias("live", "blue")  # loses green's extra column: DROP + CREATE
            assert view_oid(pg_db, "live") != before
            with psycopg.connect(pg_db) as conn:
                ok = conn.execute("SELECT has_table_privilege(%s, 'live', 'SELECT')", (reader,)).fetchone()[0]
            assert ok
        finally:
            with psycopg.connect(pg_db, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))
        with pytest.raises(TerminalError, match="read from it"):
            provider(pg_db, "blue", pointer="/target").drop_collection()
        p.switch_alias("live", None)
        assert p.read_alias("live") is None
        p.switch_alias("live", None)  # idempotent
        # A table is never replaced by an alias, nor read as one.
        with pytest.raises(TerminalError, match="not a view"):
            p.switch_alias("blue", "green")
        with pytest.raises(TerminalError, match="not a view"):
            p.read_alias("green")
        with pytest.raises(TerminalError, match="does not exist"):
            p.switch_alias("live", "missing")
        # Somebody's real view (over two tables) is not an alias to be replaced.
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("CREATE VIEW report AS SELECT b.id FROM blue b JOIN green g USING (id)")
        with pytest.raises(TerminalError, match="several relations"):
            p.switch_alias("report", "green")
        with pytest.raises(TerminalError, match="several relations"):
            p.read_alias("report")


def test_view_as_source(pg_db: str) -> None:
    data = make_docs_table(pg_db, "docs", 120, 8, index="hnsw")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    with provider(pg_db, "docs_live") as p:
        inv = p.inventory()
        assert inv.exists and inv.count == 120 and inv.dimension == 8 and inv.metric == "cosine"
        assert inv.extra["relkind"] == "view" and inv.extra["view_of"] == "docs"
        assert scan_all(p, size=50).ids == sorted(data.ids)
        with pytest.raises(TerminalError, match="writes only to tables"):
            p.upsert(data.batch().take([0]))
    with provider(pg_db, "docs") as p:
        assert p.inventory().aliases == {"docs_live": "docs"}


# ---- identifiers --------------------------------------------------------------------------------


def test_mixed_case_identifiers_are_quoted(pg_db: str) -> None:
    fields = Fields(id="DocID", vector="Vec", text="Body Text", metadata=("Title", "select"))
    with provider(pg_db, "MyDocs", fields=fields, alias="My Alias", pointer="/target") as p:
        p.create_collection(
            CollectionSchema(
                dimension=3, metric="cosine", id_type="int", metadata={"Title": "text", "select": "int"}, text=True
            )
        )
        assert list(columns_of(pg_db, "MyDocs")) == ["DocID", "Vec", "Title", "select", "Body Text"]
        vecs = make_vectors(3, 3)
        p.upsert(
            Batch(
                ids=[1, 2, 3],
                vectors=vecs,
                metadata=[{"Title": "A", "select": 1}, {"Title": "B"}, {}],
                texts=["x", "y", None],
            )
        )
        name = p.build_index(IndexSpec(type="hnsw"), "cosine")
        assert name == "MyDocs_Vec_hnsw_idx"
        p.switch_alias("My Alias", "MyDocs")
        inv = p.inventory()
        assert inv.count == 3 and inv.metric == "cosine" and inv.aliases == {"My Alias": "MyDocs"}
        got = scan_all(p, size=2)
        assert got.ids == [1, 2, 3] and got.metadata[0] == {"Title": "A", "select": 1} and got.texts[1] == "y"
        assert p.shards(inv, 1) == p.shards(inv, 1) and len(p.shards(inv, 1)) == 3
        p.delete([2])
        assert p.count() == 2
        p.switch_alias("My Alias", None)
        p.drop_collection()
        assert not p.collection_exists()


def test_long_names_get_a_stable_short_index_name(pg_db: str) -> None:
    table = "t" * 60
    with provider(pg_db, table, pointer="/target", fields=Fields()) as p:
        p.create_collection(CollectionSchema(dimension=2, metric="cosine", id_type="int"))
        name = p.build_index(IndexSpec(type="ivfflat", lists=1), "cosine")
        assert name is not None and len(name.encode()) <= 63
        assert p.inventory().index["name"] == name  # type: ignore[index]
        assert p.build_index(IndexSpec(type="ivfflat", lists=1), "cosine") == name


# ---- errors -------------------------------------------------------------------------------------


def test_missing_table_is_terminal_with_hint(pg_db: str) -> None:
    with provider(pg_db, "nope") as p:
        with pytest.raises(TerminalError) as exc:
            list(p.scan(None, None, 10))
        assert "table 'nope' does not exist" in exc.value.message and exc.value.hint == "check source.collection"
        with pytest.raises(TerminalError, match="does not exist"):
            p.count()


def test_missing_columns_are_terminal_with_hint(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 5, 4)
    with provider(pg_db, fields=Fields(vector="vec")) as p, pytest.raises(TerminalError) as exc:
        p.inventory()
    assert "no column 'vec'" in exc.value.message and exc.value.hint == "check source.fields.vector"
    with provider(pg_db, fields=Fields(vector="title")) as p, pytest.raises(TerminalError, match="not a pgvector"):
        p.inventory()


def test_connection_errors_are_classified_without_secrets(pg: Any) -> None:
    refused = provider("postgresql://alice:hunter2secret@127.0.0.1:1/db")
    with pytest.raises(TransientError) as exc:
        refused.connect()
    assert "hunter2secret" not in exc.value.one_line() and "127.0.0.1:1/db" in exc.value.one_line()

    no_db = provider(pg.url("no_such_database"))
    with pytest.raises(TerminalError, match="does not exist") as exc2:
        no_db.inventory()
    assert exc2.value.hint and "source.connection" in exc2.value.hint

    bad = provider("postgresql://u:pw with space@h/db")
    with pytest.raises(TerminalError) as exc3:
        bad.connect()
    assert "pw with space" not in exc3.value.one_line()

    with pytest.raises(TerminalError, match="needs 'dsn' or 'embedded'"):
        PgvectorProvider(pg_store(None, "docs")).connect()


def test_dropped_connection_is_transient_then_reconnects(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 10, 4)
    with provider(pg_db) as p:
        assert p.count() == 10
        pid = p._connection().info.backend_pid
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(TransientError):
            p.count()
        assert p.count() == 10  # the next call reconnects


# ---- embedded server ----------------------------------------------------------------------------


def test_embedded_server_starts_is_shared_and_stops(server_tmpdir: Path) -> None:
    data_dir = server_tmpdir / "pg"
    spec = pg_store(embedded="pg", collection="docs", pointer="/target", fields=Fields(), base_dir=server_tmpdir)
    schema = CollectionSchema(dimension=4, metric="cosine", id_type="int", metadata={"w": "int"})

    first = PgvectorProvider(spec)
    first.connect()
    assert embedded.is_running(data_dir) and embedded.references(data_dir) == 1
    first.create_collection(schema)

    # N worker threads, each with its own instance, share the one server.
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with PgvectorProvider(spec) as w:
                vecs = make_vectors(50, 4, seed=k)
                w.upsert(Batch(ids=list(range(k * 50, k * 50 + 50)), vectors=vecs, metadata=[{"w": k}] * 50))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and first.count() == 200

    # A process that died holding the server (SIGKILL) must not keep it alive forever.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    handles = data_dir / ".handle_pids.json"
    handles.write_text(json.dumps([*json.loads(handles.read_text()), dead.pid]))

    second = PgvectorProvider(spec)
    assert second.count() == 200 and embedded.references(data_dir) == 2
    first.close()
    assert embedded.is_running(data_dir), "closing one user must not stop the server under another"
    assert second.count() == 200
    second.close()
    second.close()  # idempotent
    assert not embedded.is_running(data_dir) and embedded.references(data_dir) == 0

    # Starting again on the same directory finds the data.
    with PgvectorProvider(spec) as again:
        assert again.count() == 200
    assert not embedded.is_running(data_dir)


def test_embedded_without_pgserver_says_how_to_install(server_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail
    p = PgvectorProvider(pg_store(embedded="pg", base_dir=server_tmpdir))
    with pytest.raises(TerminalError) as exc:
        p.connect()
    assert exc.value.hint == "pip install 'vecmig[embedded]'"
    assert embedded.references(server_tmpdir / "pg") == 0
