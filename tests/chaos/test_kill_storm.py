"""SIGKILL storms across one long apply, then apply again: every record equal, nothing doubled.

25 kills per storm by default, so the whole suite stays under 20 minutes on 2 cores; set
``VECMIG_CHAOS_KILLS=50`` (or more) for the long storm."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from tests.chaos.storm import assert_clean_state, storm
from tests.support.cli import table_rows
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from vecmig.providers import provider_class
from vecmig.records import Checksum
from vecmig.sample import write_jsonl
from vecmig.spec_loader import load_spec

KILLS = int(os.environ.get("VECMIG_CHAOS_KILLS", "25"))
SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "7"))


def full_checksum(spec_path: Path, side: str, env: dict[str, str]) -> Checksum:
    spec = load_spec(spec_path, env=env)
    store = getattr(spec, side)
    total = Checksum()
    with provider_class(store.provider)(store) as p:
        for batch in p.scan(None, None, 2000):
            total.add_batch(batch)
    return total


def test_storm_jsonl_to_pgvector(pg_db: str, tmp_path: Path) -> None:
    n = 40_000
    write_jsonl(str(tmp_path / "in.jsonl"), n, 32, seed=SEED)
    spec = write_spec(tmp_path, """
        version: 1
        name: storm-jsonl
        source: {provider: jsonl, connection: {path: in.jsonl}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}, create: {index: {type: hnsw}}}
        strategy: {type: big-bang, batch_size: 50, concurrency: 2, shard_size: 3000}
        """)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "storm-jsonl.db"
    report = storm(spec, env, db, n, KILLS, SEED)
    print(f"\njsonl→pgvector storm: {report}")
    assert report.kills >= KILLS, report
    src, tgt = full_checksum(spec, "source", env), full_checksum(spec, "target", env)
    assert tgt.count == n and src.to_json() == tgt.to_json()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(DISTINCT id) FROM docs").fetchone()[0] == n
    assert_clean_state(spec, env, db)


def test_storm_pgvector_blue_green(pg_db: str, tmp_path: Path) -> None:
    n = 40_000
    make_docs_table(pg_db, "docs", n, 32, id_type="text", seed=SEED)
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    spec = write_spec(tmp_path, """
        version: 1
        name: storm-bg
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_green,
                 alias: docs_live, fields: {id: id, vector: embedding, text: body},
                 create: {metric: cosine, index: {type: hnsw}}}
        strategy: {type: blue-green, batch_size: 50, concurrency: 2, shard_size: 3000}
        """)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "storm-bg.db"
    report = storm(spec, env, db, n, KILLS, SEED + 1)
    print(f"\npgvector blue-green storm: {report}")
    assert report.kills >= KILLS, report
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_green")
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM docs_live").fetchone()[0] == n
        live = conn.execute("SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
                            "JOIN pg_class c ON c.oid = d.refobjid WHERE w.ev_class = 'docs_live'::regclass "
                            "AND c.relname <> 'docs_live'").fetchall()
        assert [r[0] for r in live] == ["docs_green"]
    assert_clean_state(spec, env, db)
