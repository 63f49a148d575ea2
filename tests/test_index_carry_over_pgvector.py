"""The source's vector index carried over to a pgvector target, against real PostgreSQL + pgvector:
type and build parameters on the new index, the query-time setting the source session sees (a
database or role default) recorded on it and applied by every new provider session, the plan's
findings; and a source without an index giving a target without one, with the warning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.support.data import make_docs_table
from vecmig import indexes
from vecmig.executor import apply_plan
from vecmig.model import Plan
from vecmig.planner import make_plan
from vecmig.providers.pgvector.provider import PgvectorProvider
from vecmig.refresh import refresh
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

N, DIM = 300, 8


def dbname(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def migrate(tmp_path: Path, dsn: str, target_extra: str = "") -> tuple[Spec, Plan]:
    """pgvector docs → pgvector docs_v2 (same database), planned and applied in-process."""
    text = json.dumps({
        "version": 1, "name": "idx", "state": {"path": "state.db"},
        "source": {"provider": "pgvector", "connection": {"dsn": "${env:DSN}"}, "collection": "docs",
                   "fields": {"id": "id", "vector": "embedding", "text": "body"}},
        "target": {"provider": "pgvector", "connection": {"dsn": "${env:DSN}"}, "collection": "docs_v2",
                   "fields": {"id": "id", "vector": "embedding", "text": "body"},
                   **(json.loads(target_extra) if target_extra else {})},
        "strategy": {"type": "big-bang", "batch_size": 100, "concurrency": 1},
    })
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env={"DSN": dsn})
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
    assert state is not None
    try:
        plan = make_plan(spec, state, refresh(spec))
        apply_plan(spec, plan, state, approval="auto-approve")
    finally:
        state.close()
    return spec, plan


def vector_indexes(dsn: str, table: str) -> list[tuple[str, list[str], str | None]]:
    """(method, reloptions, comment) of every vector index on ``table``."""
    with psycopg.connect(dsn) as conn:
        return [(m, list(o or []), c) for m, o, c in conn.execute(
            "SELECT am.amname, i.reloptions, obj_description(i.oid, 'pg_class') FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
            "WHERE x.indrelid = %s::regclass AND am.amname IN ('hnsw', 'ivfflat')", (table,)).fetchall()]


def provider_setting(dsn: str, collection: str, name: str) -> str:
    """``SHOW name`` in a new provider session on ``collection``: what vecmig's own queries use."""
    store = load_spec_text(json.dumps({
        "version": 1, "name": "peek",
        "source": {"provider": "pgvector", "connection": {"dsn": "${env:DSN}"}, "collection": collection},
        "target": {"provider": "jsonl", "connection": {"path": "x.jsonl"}},
    }), env={"DSN": dsn}).source
    p = PgvectorProvider(store)
    with p, p._tx() as cur:
        row = cur.execute(sql.SQL("SHOW {}").format(sql.Identifier(*name.split(".")))).fetchone()
        assert row is not None
        return str(row[0])


def plain_setting(dsn: str, name: str) -> str:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT '[1]'::vector")  # pgvector's library loaded: its settings are defined
        row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(*name.split(".")))).fetchone()
        assert row is not None
        return str(row[0])


@pytest.fixture
def db(pg_db: str) -> Iterator[str]:
    yield pg_db
    with psycopg.connect(pg_db, autocommit=True) as conn:  # role defaults outlive the database otherwise
        conn.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} RESET ALL").format(sql.Identifier(dbname(pg_db))))


def test_hnsw_with_a_database_default_ef_search_is_carried_over_without_a_create_block(db: str,
                                                                                       tmp_path: Path) -> None:
    make_docs_table(db, "docs", N, DIM, seed=1)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE INDEX docs_hnsw ON docs USING hnsw (embedding vector_cosine_ops) "
                     "WITH (m = 16, ef_construction = 64)")
        conn.execute(sql.SQL("ALTER DATABASE {} SET hnsw.ef_search = 77").format(sql.Identifier(dbname(db))))

    _, plan = migrate(tmp_path, db)

    build = next(a for a in plan.actions if a.kind == "build_index")
    params: dict[str, Any] = build.params["index"]
    assert (params["type"], params["m"], params["ef_construction"], params["ef_search"]) == ("hnsw", 16, 64, 77)
    said = {w.code: w for w in plan.warnings}
    assert indexes.NO_INDEX not in said
    assert said[indexes.READER_SETTINGS].severity == "info"
    assert "SET hnsw.ef_search = 77" in said[indexes.READER_SETTINGS].message
    assert vector_indexes(db, "docs_v2") == [("hnsw", ["m=16", "ef_construction=64"], "vecmig: hnsw.ef_search=77")]

    # Without the database default, a new provider session on the target still searches with 77
    # (read from the index's comment), while a plain session gets pgvector's 40.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET hnsw.ef_search").format(sql.Identifier(dbname(db))))
    assert plain_setting(db, "hnsw.ef_search") == "40"
    assert provider_setting(db, "docs_v2", "hnsw.ef_search") == "77"


def test_ivfflat_with_a_role_default_probes_is_carried_over(db: str, tmp_path: Path) -> None:
    make_docs_table(db, "docs", N, DIM, seed=2)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE INDEX docs_ivf ON docs USING ivfflat (embedding vector_l2_ops) WITH (lists = 12)")
        conn.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET ivfflat.probes = 5").format(
            sql.Identifier(dbname(db))))

    _, plan = migrate(tmp_path, db, '{"create": {"metric": "euclidean"}}')

    build = next(a for a in plan.actions if a.kind == "build_index")
    assert (build.params["index"]["type"], build.params["index"]["lists"], build.params["index"]["probes"]) == (
        "ivfflat", 12, 5)
    assert vector_indexes(db, "docs_v2") == [("ivfflat", ["lists=12"], "vecmig: ivfflat.probes=5")]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} RESET ivfflat.probes").format(
            sql.Identifier(dbname(db))))
    assert provider_setting(db, "docs_v2", "ivfflat.probes") == "5"


def test_no_source_index_and_a_create_block_without_index_gives_no_index_and_a_warning(db: str,
                                                                                      tmp_path: Path) -> None:
    make_docs_table(db, "docs", N, DIM, seed=3)

    _, plan = migrate(tmp_path, db, '{"create": {"metric": "cosine"}}')

    assert "build_index" not in [a.kind for a in plan.actions]
    warning = next(w for w in plan.warnings if w.code == indexes.NO_INDEX)
    assert warning.severity == "warning" and "the source has no vector index" in warning.message
    assert "target.create.index" in warning.hint
    assert vector_indexes(db, "docs_v2") == []


def test_the_spec_index_wins_and_its_query_time_setting_is_recorded(db: str, tmp_path: Path) -> None:
    make_docs_table(db, "docs", N, DIM, seed=4, index="hnsw")
    migrate(tmp_path, db, '{"create": {"index": {"type": "hnsw", "m": 8, "ef_construction": 32, "ef_search": 120}}}')
    assert vector_indexes(db, "docs_v2") == [("hnsw", ["m=8", "ef_construction=32"], "vecmig: hnsw.ef_search=120")]
    assert provider_setting(db, "docs_v2", "hnsw.ef_search") == "120"
