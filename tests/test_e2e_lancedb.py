"""LanceDB end to end through the real CLI: a table seeded with lancedb's own API → pgvector
(embedded PostgreSQL), pgvector → a new LanceDB table with its vector index, each SIGKILLed
mid-copy and resumed, compared record by record (ids, float32 bits, metadata with int and float
kept apart, text), then rolled back; blue-green repoints a pointer file (LanceDB has no aliases);
a table too small to train an index gets none, and the plan says so (LD001).

Both stores are read back independently of vecmig: LanceDB with lancedb, PostgreSQL with psycopg.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import psycopg
import pyarrow as pa
from pgvector.psycopg import register_vector

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, env_for, write_spec
from tests.test_kill_resume import kill_at, progress
from vecmig.records import canonical_metadata

SEED = 20261206
Record = tuple[bytes, bytes, str | None]  # vector bits, metadata (strict canonical form), text
PG_SOURCE = ('{provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs, '
             "fields: {id: id, vector: embedding, text: body}}")


# ---- seeding and reading back, without vecmig -----------------------------------------------------


def seed_lancedb(path: Path, table: str, n: int, dim: int, seed: int) -> None:
    """A table the way a LanceDB user makes one: ``create_table`` from an Arrow table, typed
    columns with nulls, int64 ids from both ends of the range, vectors holding -0.0."""
    rng = np.random.default_rng(seed)
    ids = [int(x) for x in rng.choice(10**12, size=n, replace=False)]
    ids[0], ids[1] = 2**63 - 1, -(2**63) + 1
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors[::7, 0] = np.float32(-0.0)
    data = pa.table({
        "id": pa.array(ids, pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        "text": pa.array([f"body {i} · naïve café" if i % 5 else None for i in range(n)], pa.string()),
        "title": pa.array([f"Doc «{i}»" for i in range(n)], pa.string()),
        "year": pa.array([1990 + i % 35 if i % 9 else None for i in range(n)], pa.int64()),
        "score": pa.array([float(i) if i % 4 == 0 else i / 3 for i in range(n)], pa.float64()),
        "published": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
        "tags": pa.array([["a", f"t{i % 4}"][: i % 3] for i in range(n)], pa.list_(pa.string())),
    })
    lancedb.connect(str(path)).create_table(table, data=data)


def meta_of(row: dict[str, Any]) -> bytes:
    return canonical_metadata({k: v for k, v in row.items() if v is not None}, strict=True)


def lancedb_records(path: Path, table: str) -> dict[int | str, Record]:
    rows = lancedb.connect(str(path)).open_table(table).to_arrow().to_pylist()
    out: dict[int | str, Record] = {}
    for r in rows:
        rid, vec, text = r.pop("id"), r.pop("vector"), r.pop("text", None)
        assert rid not in out, f"id {rid} twice"
        out[rid] = (np.asarray(vec, dtype=np.float32).tobytes(), meta_of(r), text)
    return out


def pg_records(dsn: str, table: str, text: str = "body") -> dict[int | str, Record]:
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        cur = conn.execute(f'SELECT * FROM "{table}"')
        cols = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    out: dict[int | str, Record] = {}
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        rid, vec, body = r.pop("id"), r.pop("embedding"), r.pop(text, None)
        out[rid] = (np.asarray(vec.to_numpy(), dtype=np.float32).tobytes(), meta_of(r), body)
    return out


def assert_same(want: dict[int | str, Record], got: dict[int | str, Record]) -> None:
    assert len(got) == len(want), f"{len(got)} records, expected {len(want)}"
    assert got.keys() == want.keys(), f"ids differ: {sorted(set(want) ^ set(got), key=str)[:5]}"
    for rid, rec in want.items():
        assert got[rid][0] == rec[0], f"record {rid}: vector bits differ"
        assert got[rid][1] == rec[1], f"record {rid}: metadata {got[rid][1]!r} != {rec[1]!r}"
        assert got[rid][2] == rec[2], f"record {rid}: text differs"


def tables(path: Path) -> list[str]:
    return list(lancedb.connect(str(path)).list_tables().tables) if path.exists() else []


# ---- SIGKILL and resume ---------------------------------------------------------------------------


def kill_and_resume(spec: Path, env: dict[str, str], db: Path, total: int, kills: int,
                    actions: tuple[str, ...] = ()) -> list[str]:
    """SIGKILL `vecmig apply` mid-copy (at record counts, then at named actions), then let one
    last apply finish. Returns what each kill found checkpointed."""
    rng = random.Random(f"{SEED}:{spec.parent.name}")
    points: list[tuple[str, object]] = [("records", t) for t in sorted(rng.sample(range(1, total - 1), kills))]
    points += [("action", a) for a in actions]
    landed = []
    for point in points:
        if kill_at(spec, env, db, point, rng.uniform(0, 0.03)):
            done, running = progress(db)
            landed.append(f"{point[0]}={point[1]}: {done} checkpointed, running {sorted(running)}")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout, r.stdout
    assert len(landed) >= kills, f"only {len(landed)} kills landed: {landed}"
    return landed


def assert_no_secret(*texts: str, paths: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert SECRET not in text, "a secret reached the output"
    for p in paths:
        for f in (x for x in p.rglob("*") if x.is_file()):
            assert SECRET.encode() not in f.read_bytes(), f"a secret reached {f}"


# ---- lancedb → pgvector ---------------------------------------------------------------------------


def test_lancedb_to_pgvector_kill_resume_rollback(pg_db: str, tmp_path: Path) -> None:
    n = 3000
    seed_lancedb(tmp_path / "lance", "docs", n, 16, seed=1)
    before = lancedb_records(tmp_path / "lance", "docs")
    spec = write_spec(tmp_path, """
        version: 1
        name: lance-to-pg
        source: {provider: lancedb, connection: {path: lance}, collection: docs}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_back,
                 fields: {id: id, vector: embedding, text: body}}
        strategy: {type: big-bang, batch_size: 100, concurrency: 2, shard_size: 1000}
        """)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(r.stdout)
    copies = [a for a in body["actions"] if a["kind"] == "copy_shard"]
    assert len(copies) == 3 and sum(c["params"]["shard"]["records"] for c in copies) == n
    db = tmp_path / ".vecmig" / "lance-to-pg.db"
    landed = kill_and_resume(spec, env, db, n, kills=2, actions=("validate.completeness",))
    print("\nlance-to-pg kills:\n  " + "\n  ".join(landed))
    assert_same(before, pg_records(pg_db, "docs_back"))
    with psycopg.connect(pg_db) as conn:
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'docs_back'").fetchall())
    assert (types["id"], types["year"], types["score"], types["published"], types["tags"]) == \
        ("bigint", "bigint", "double precision", "boolean", "ARRAY")

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_back')").fetchone() == (None,)
    assert lancedb_records(tmp_path / "lance", "docs") == before, "the source is untouched"
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path / ".vecmig", tmp_path / "lance"))


# ---- pgvector → lancedb ---------------------------------------------------------------------------


def make_source(dsn: str, n: int, dim: int, seed: int) -> None:
    make_docs_table(dsn, "docs", n, dim, seed=seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('VACUUM "docs"')  # settle the table's size: pgvector's inventory reads it


def test_pgvector_to_lancedb_with_index_kill_resume_rollback(pg_db: str, tmp_path: Path) -> None:
    n = 3000
    make_source(pg_db, n, 24, seed=2)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-lance
        source: {PG_SOURCE}
        target: {{provider: lancedb, connection: {{path: lance}}, collection: docs_v2,
                 create: {{metric: cosine, index: {{type: hnsw, m: 12, ef_construction: 48}}}}}}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2, shard_size: 1000}}
        """)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(r.stdout)
    assert "LD001" not in {w["code"] for w in body["warnings"]}
    assert [a["kind"] for a in body["actions"]].count("build_index") == 1
    assert not (tmp_path / "lance").exists(), "plan creates nothing"
    db = tmp_path / ".vecmig" / "pg-to-lance.db"
    landed = kill_and_resume(spec, env, db, n, kills=2, actions=("build_index.target",))
    print("\npg-to-lance kills:\n  " + "\n  ".join(landed))
    want = pg_records(pg_db, "docs")
    got = lancedb_records(tmp_path / "lance", "docs_v2")
    assert_same(want, got)
    table = lancedb.connect(str(tmp_path / "lance")).open_table("docs_v2")
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 24)
    assert table.schema.field("year").type == pa.int64() and table.schema.field("score").type == pa.float64()
    (index,) = table.list_indices()
    assert "hnsw" in str(index.index_type).lower(), index
    stats = table.index_stats(index.name)
    assert stats.distance_type == "cosine" and stats.num_indexed_rows == n
    # The index serves searches: a record's own vector finds it.
    probe = np.frombuffer(next(iter(want.values()))[0], dtype=np.float32)
    assert table.search(probe).limit(1).to_arrow().column("id").to_pylist() == [next(iter(want))]

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tables(tmp_path / "lance") == [], "rollback drops the table vecmig created"
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path / ".vecmig", tmp_path / "lance"))


def test_blue_green_repoints_a_file_and_a_table_too_small_for_an_index_gets_none(pg_db: str,
                                                                                 tmp_path: Path) -> None:
    """LanceDB has no aliases: blue-green repoints a pointer file readers follow. The table is too
    small to train an index: the plan says so (LD001) and apply builds none."""
    make_source(pg_db, 60, 8, seed=3)
    live = tmp_path / "live.json"
    original = json.dumps({"index": "docs_blue", "host": None, "namespace": None}) + "\n"
    live.write_text(original)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-lance-small
        source: {PG_SOURCE}
        target: {{provider: lancedb, connection: {{path: lance}}, collection: docs_green,
                 pointer: {{file: live.json}}, create: {{index: {{type: ivfflat, lists: 100}}}}}}
        strategy: {{type: blue-green}}
        """)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {w["code"]: w for w in json.loads(r.stdout)["warnings"]}
    assert found["LD001"]["severity"] == "warning" and "60 record(s)" in found["LD001"]["message"], found
    assert found["LD001"]["hint"]
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LD001" in r.stdout + r.stderr, "apply shows the plan's warning too"
    assert_same(pg_records(pg_db, "docs"), lancedb_records(tmp_path / "lance", "docs_green"))
    assert lancedb.connect(str(tmp_path / "lance")).open_table("docs_green").list_indices() == []
    pointer = json.loads(live.read_text())
    assert (pointer["index"], pointer["previous"]) == ("docs_green", "docs_blue")
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert live.read_text() == original, "rollback restores the pointer file byte for byte"
    assert tables(tmp_path / "lance") == []
