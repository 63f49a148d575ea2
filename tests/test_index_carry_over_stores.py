"""The source's index carried over across stores, checked against the target's own index config:
pgvector HNSW (m 16, ef_construction 64, a database default ef_search) → Milvus HNSW (M,
efConstruction, the search params kept in a collection property) and → LanceDB IVF_HNSW_SQ
(max_connections, construction_ef); pgvector IVFFlat (lists, probes) → LanceDB IVF_FLAT. Each
target's inventory reports the index back in the neutral shape. Qdrant and Chroma sources report
theirs (hnsw_config; the hnsw configuration) and a pgvector target is planned with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import lancedb
import numpy as np
import psycopg
import pytest
from chromadb.config import Settings
from psycopg import sql

from tests.qdrant_local import QdrantLocal
from tests.support.data import make_docs_table
from tests.support.milvus import MilvusLite
from vecmig import indexes
from vecmig.executor import apply_plan
from vecmig.model import Plan
from vecmig.planner import make_plan
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.records import Batch
from vecmig.refresh import refresh
from vecmig.spec import Spec, StoreSpec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

pytestmark = pytest.mark.integration

N, DIM = 300, 8  # LanceDB trains an index on 200 rows or more


@pytest.fixture(scope="module")
def milvus() -> Iterator[MilvusLite]:
    srv = MilvusLite()
    try:
        yield srv
    finally:
        srv.stop()


def source_with(dsn: str, index_sql: str, setting: str) -> None:
    make_docs_table(dsn, "docs", N, DIM, seed=7)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(index_sql)
        conn.execute(sql.SQL("ALTER DATABASE {} SET " + setting).format(
            sql.Identifier(urlsplit(dsn).path.lstrip("/"))))


def migrate(tmp_path: Path, dsn: str, target: dict[str, Any], env: dict[str, str]) -> tuple[Spec, Plan]:
    text = json.dumps({
        "version": 1, "name": "idx-x", "state": {"path": "state.db"},
        "source": {"provider": "pgvector", "connection": {"dsn": "${env:DSN}"}, "collection": "docs",
                   "fields": {"id": "id", "vector": "embedding", "text": "body"}},
        "target": {**target, "collection": "docs_v2", "fields": {"text": "body"}},
        "strategy": {"type": "big-bang", "batch_size": 100, "concurrency": 1},
    })
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env={"DSN": dsn, **env})
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
    assert state is not None
    try:
        plan = make_plan(spec, state, refresh(spec))
        apply_plan(spec, plan, state, approval="auto-approve")
    finally:
        state.close()
    return spec, plan


def target_index(spec: Spec) -> dict[str, Any] | None:
    with provider_class(spec.target.provider)(spec.target) as p:
        return p.inventory().index


def test_pgvector_hnsw_to_milvus_keeps_m_ef_construction_and_ef_search(pg_db: str, tmp_path: Path,
                                                                      milvus: MilvusLite) -> None:
    source_with(pg_db, "CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops) WITH (m = 16, "
                       "ef_construction = 64)", "hnsw.ef_search = 77")
    spec, plan = migrate(tmp_path, pg_db, {"provider": "milvus", "connection": {"uri": "${env:MILVUS_URI}"}},
                         {"MILVUS_URI": milvus.uri})

    said = {w.code: w.message for w in plan.warnings}
    assert '{"ef": 77}' in said[indexes.READER_SETTINGS] and indexes.NO_INDEX not in said
    client = milvus.client()
    try:
        desc = client.describe_index("docs_v2", client.list_indexes("docs_v2")[0])
        props = client.describe_collection("docs_v2")["properties"]
    finally:
        client.close()
    # Milvus Lite's describe_index omits build params (a Milvus server lists M and efConstruction):
    # the server shows the type and metric, vecmig's property record the rest.
    assert (desc["index_type"], desc["metric_type"]) == ("HNSW", "COSINE")
    assert json.loads(props["vecmig.index"]) == {"type": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 77}
    index = target_index(spec)
    assert index is not None
    assert {k: index.get(k) for k in ("type", "m", "ef_construction", "ef_search")} == {
        "type": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 77}
    with provider_class("milvus")(spec.target) as p:  # vecmig's own searches pass ef 77
        assert p.search_settings()["ef_search"] == 77
        assert len(p.query(np_rows(1)[0], 5)) == 5


def test_pgvector_hnsw_to_lancedb_builds_ivf_hnsw_with_the_same_graph_parameters(pg_db: str,
                                                                                 tmp_path: Path) -> None:
    source_with(pg_db, "CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops) WITH (m = 12, "
                       "ef_construction = 48)", "hnsw.ef_search = 90")
    spec, plan = migrate(tmp_path, pg_db, {"provider": "lancedb", "connection": {"path": "lance"}}, {})

    assert ".ef(90)" in {w.code: w.message for w in plan.warnings}[indexes.READER_SETTINGS]
    table = lancedb.connect(str(tmp_path / "lance")).open_table("docs_v2")
    (config,) = table.list_indices()
    assert "Hnsw" in str(config.index_type)
    hnsw = config.index_details["hnsw"]
    assert (hnsw["max_connections"], hnsw["construction_ef"]) == (12, 48), "LanceDB's own report of the graph"
    assert config.index_details["metric_type"] == "COSINE"
    index = target_index(spec)
    assert index is not None
    assert {k: index.get(k) for k in ("type", "m", "ef_construction", "ef_search")} == {
        "type": "hnsw", "m": 12, "ef_construction": 48, "ef_search": 90}
    with provider_class("lancedb")(spec.target) as p:  # vecmig's own searches pass ef 90
        assert p.search_settings()["ef"] == 90
        assert len(p.query(np_rows(1)[0], 5)) == 5


def test_pgvector_ivfflat_to_lancedb_builds_ivf_flat_with_lists_and_probes(pg_db: str, tmp_path: Path) -> None:
    source_with(pg_db, "CREATE INDEX ON docs USING ivfflat (embedding vector_l2_ops) WITH (lists = 6)",
                "ivfflat.probes = 3")
    spec, plan = migrate(tmp_path, pg_db, {"provider": "lancedb", "connection": {"path": "lance"}}, {})

    build = next(a for a in plan.actions if a.kind == "build_index")
    assert (build.params["index"]["type"], build.params["index"]["lists"], build.params["index"]["probes"]) == (
        "ivfflat", 6, 3)
    table = lancedb.connect(str(tmp_path / "lance")).open_table("docs_v2")
    (config,) = table.list_indices()
    assert str(config.index_type) == "IvfFlat" and config.index_details["metric_type"] == "L2"
    assert table.index_stats(config.name).distance_type == "l2"
    assert target_index(spec) == {"name": config.name, "type": "ivfflat", "lists": 6, "probes": 3}
    with provider_class("lancedb")(spec.target) as p:  # vecmig's own searches pass nprobes 3
        assert p.search_settings()["nprobes"] == 3
        assert len(p.query(np_rows(1)[0], 5)) == 5


def plan_only(tmp_path: Path, source: dict[str, Any], dsn: str) -> Plan:
    """The plan of ``source`` → a new pgvector table (no create block): read-only, no state."""
    text = json.dumps({
        "version": 1, "name": "idx-src",
        "source": {**source, "collection": "docs"},
        "target": {"provider": "pgvector", "connection": {"dsn": "${env:DSN}"}, "collection": "docs_v2"},
    })
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env={"DSN": dsn})
    return make_plan(spec, None, refresh(spec))


def built(plan: Plan) -> dict[str, Any]:
    return dict(next(a for a in plan.actions if a.kind == "build_index").params["index"])


def test_a_qdrant_source_reports_its_hnsw_config_and_pgvector_gets_it(pg_db: str, tmp_path: Path) -> None:
    with QdrantLocal() as srv:
        source = {"provider": "qdrant", "connection": {"url": srv.url}}
        spec = load_spec_text(json.dumps({"version": 1, "name": "q", "source": {**source, "collection": "docs"},
                                          "target": {"provider": "jsonl", "connection": {"path": "x.jsonl"}}}),
                              base_dir=tmp_path)
        with provider_class("qdrant")(replace_role(spec)) as q:
            q.create_collection(CollectionSchema(dimension=DIM, metric="euclidean", id_type="int"))
            q.upsert(Batch(ids=[1, 2], vectors=np_rows(2), metadata=[{}, {}], texts=[None, None]))
            # Qdrant's hnsw_config (the local server answers Qdrant's defaults: m 16, ef_construct 100);
            # a search without hnsw_ef uses ef_construct.
            assert q.inventory().index == {"type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 100}
        plan = plan_only(tmp_path, source, pg_db)
    assert built(plan) == {"type": "hnsw", "m": 16, "ef_construction": 100, "lists": 100, "ef_search": 100,
                           "probes": None}


def test_a_chroma_source_reports_its_hnsw_configuration_and_pgvector_gets_it(pg_db: str, tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection("docs", configuration={
        "hnsw": {"space": "cosine", "max_neighbors": 24, "ef_construction": 80, "ef_search": 50}})
    coll.add(ids=["a", "b"], embeddings=np_rows(2).tolist())
    del client
    plan = plan_only(tmp_path, {"provider": "chroma", "connection": {"path": "chroma"}}, pg_db)
    assert plan.source.index == {"type": "hnsw", "m": 24, "ef_construction": 80, "ef_search": 50}
    assert built(plan) == {"type": "hnsw", "m": 24, "ef_construction": 80, "lists": 100, "ef_search": 50,
                           "probes": None}


def np_rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, DIM)).astype(np.float32)


def replace_role(spec: Spec) -> StoreSpec:
    """The spec's source as a store a provider may write to (the test fills it)."""
    return replace(spec.source, pointer="/target")


def test_a_pinecone_source_has_a_managed_index_so_the_target_gets_its_store_default(tmp_path: Path) -> None:
    from tests.pinecone_local import PineconeLocal, reset_sdk_host_state

    key = "pc-local-key"
    with PineconeLocal(api_key=key) as srv:
        conn = {"api_key": "${env:PINECONE_API_KEY}", "host": srv.url}
        store = load_spec_text(json.dumps({
            "version": 1, "name": "pc", "source": {"provider": "pinecone", "connection": conn, "collection": "docs"},
            "target": {"provider": "jsonl", "connection": {"path": "x.jsonl"}}}),
            base_dir=tmp_path, env={"PINECONE_API_KEY": key}).source
        with provider_class("pinecone")(replace(store, pointer="/target")) as pc:
            pc.create_collection(CollectionSchema(dimension=DIM, metric="cosine", id_type="text"))
            pc.upsert(Batch(ids=["a", "b"], vectors=np_rows(2), metadata=[{}, {}], texts=[None, None]))
        spec = load_spec_text(json.dumps({
            "version": 1, "name": "pc-idx",
            "source": {"provider": "pinecone", "connection": conn, "collection": "docs"},
            "target": {"provider": "lancedb", "connection": {"path": "lance"}, "collection": "docs_v2"}}),
            base_dir=tmp_path, env={"PINECONE_API_KEY": key})
        plan = make_plan(spec, None, refresh(spec))
    reset_sdk_host_state()
    assert plan.source.index == {"type": "managed"}
    # Two records are too few for LanceDB to build any index (LD001: the plan defers it), so the
    # decision is read from vecmig.indexes, which the plan's build_index freezes on a bigger table.
    from vecmig import indexes
    chosen = indexes.resolve(spec, plan.source, plan.target, provider_class("lancedb")).index
    assert chosen is not None and chosen.type == "hnsw" and (chosen.m, chosen.ef_construction) == (16, 64)
    assert not any(a.kind == "build_index" for a in plan.actions)
    default = next(w for w in plan.warnings if w.code == indexes.STORE_DEFAULT)
    assert default.severity == "info" and "lancedb's default" in default.message
