"""Milvus end to end through the real CLI, against a real Milvus server (milvus-lite's gRPC
server in its own process, started once for the module): a collection seeded with pymilvus
(two partitions, int64 ids, JSON metadata, text) → pgvector, and pgvector → a new Milvus
collection (HNSW index built after the load), each apply SIGKILLed at random points and
resumed, then every record compared bit for bit (read back with pymilvus and psycopg, not
through vecmig); rollback drops what vecmig created. The server address and token travel only
through the environment and must never reach the output, the plan or the state."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from pymilvus import DataType, MilvusClient

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.milvus import MilvusLite
from tests.support.specs import SECRET, env_for, write_spec
from tests.test_kill_resume import kill_at, progress
from vecmig.records import canonical_metadata

TOKEN = "root:Milvus-MARKER-token-do-not-leak-91c2"
SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "20261206"))
Record = tuple[bytes, bytes, str | None]  # vector bits, canonical metadata, text
MILVUS = 'connection: {uri: "${env:MILVUS_URI}", token: "${env:MILVUS_TOKEN}"}'


@pytest.fixture(scope="module")
def server() -> Iterator[MilvusLite]:
    srv = MilvusLite()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def srv(server: MilvusLite) -> Iterator[MilvusLite]:
    server.drop_all()
    yield server
    server.drop_all()


def env(srv: MilvusLite, dsn: str) -> dict[str, str]:
    return {**env_for(dsn), "MILVUS_URI": srv.uri, "MILVUS_TOKEN": TOKEN}


# ---- reading both stores back, independently of vecmig -------------------------------------------


def milvus_records(srv: MilvusLite, name: str) -> dict[Any, Record]:
    client = srv.client()
    try:
        out: dict[Any, Record] = {}
        it = client.query_iterator(name, batch_size=500, filter="", output_fields=["*"], consistency_level="Strong")
        while rows := it.next():
            for r in rows:
                assert r["id"] not in out, f"id {r['id']} twice"
                meta = {k: v for k, v in (r.get("metadata") or {}).items() if v is not None}
                out[r["id"]] = (np.asarray(r["vector"], dtype=np.float32).tobytes(), canonical_metadata(meta),
                                r.get("text"))
        it.close()
        return out
    finally:
        client.close()


def pg_records(dsn: str, table: str) -> dict[Any, Record]:
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        cur = conn.execute(f'SELECT * FROM "{table}"')
        cols = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    out: dict[Any, Record] = {}
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        rid, vec, body = r.pop("id"), r.pop("embedding"), r.pop("body", None)
        vec = vec.to_numpy() if hasattr(vec, "to_numpy") else vec
        meta = {k: v for k, v in r.items() if v is not None}
        out[rid] = (np.asarray(vec, dtype=np.float32).tobytes(), canonical_metadata(meta), body)
    return out


def assert_same(want: dict[Any, Record], got: dict[Any, Record]) -> None:
    assert len(got) == len(want), f"{len(got)} records, expected {len(want)}"
    assert got.keys() == want.keys(), f"ids differ: {sorted(set(want) ^ set(got))[:5]}"
    for rid, rec in want.items():
        assert got[rid][0] == rec[0], f"record {rid}: vector bits differ"
        assert got[rid][1] == rec[1], f"record {rid}: metadata {got[rid][1]!r} != {rec[1]!r}"
        assert got[rid][2] == rec[2], f"record {rid}: text {got[rid][2]!r} != {rec[2]!r}"


def assert_no_secret(srv: MilvusLite, *texts: str, paths: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert TOKEN not in text and SECRET not in text, "a secret reached the output"
    for p in paths:
        for f in ([p] if p.is_file() else [x for x in p.rglob("*") if x.is_file()]):
            data = f.read_bytes()
            assert TOKEN.encode() not in data and SECRET.encode() not in data, f"a secret reached {f}"
            assert srv.uri.encode() not in data, f"the server address (a secret) reached {f}"


# ---- SIGKILL and resume ---------------------------------------------------------------------------


def kill_and_resume(spec: Path, environ: dict[str, str], db: Path, total: int, kills: int = 2,
                    actions: tuple[str, ...] = ()) -> list[str]:
    """SIGKILL `vecmig apply` at random record counts, once by time and inside the named actions,
    then let an apply finish."""
    rng = random.Random(f"{SEED}:{spec.parent.name}")
    points: list[tuple[str, object]] = [("time", rng.uniform(0.5, 1.5))]
    points += [("records", t) for t in sorted(rng.sample(range(1, total - 1), kills))]
    points += [("action", a) for a in actions]
    landed: list[str] = []
    for point in points:
        if kill_at(spec, environ, db, point, rng.uniform(0, 0.05)):
            landed.append(f"{point[0]}={point[1]!s:.6}: {progress(db)[0]} checkpointed")
    r = vecmig("apply", str(spec), "--auto-approve", env=environ)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout, r.stdout
    assert any(x.startswith("records") for x in landed), f"no kill landed mid-copy: {landed}"
    print(f"\n{spec.parent.name}: kills\n  " + "\n  ".join(landed))
    return landed


# ---- Milvus → pgvector ----------------------------------------------------------------------------


def seed_milvus(srv: MilvusLite, name: str, n: int, dim: int, seed: int) -> None:
    """A collection as a Milvus user makes it: INT64 key, a vector, a nullable VARCHAR text, JSON
    metadata of every kind, records spread over two partitions besides the default one."""
    rng = np.random.default_rng(seed)
    client = srv.client()
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("text", DataType.VARCHAR, max_length=4096, nullable=True)
        schema.add_field("metadata", DataType.JSON)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE",
                        params={"M": 8, "efConstruction": 40})
        client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        for p in ("p_2024", "p_2025"):
            client.create_partition(name, p)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors[0, :3] = [1e-45, -0.0, np.finfo(np.float32).max]  # bits a lossy path would change
        rows = []
        for i in range(n):
            rid = 2**62 + 7919 * i if i % 2 else i  # int64 ids beyond 2**53, and small ones
            meta: dict[str, Any] = {"title": f"Doc {i} · naïve", "year": 1990 + i % 35, "score": float(rng.random()),
                                    "published": bool(i % 3), "tags": ["a", f"t{i % 4}"][: i % 3]}
            if i % 5 == 0:
                del meta["score"]  # absent keys stay absent (NULL in pgvector)
            rows.append({"id": rid, "vector": vectors[i].tolist(), "text": None if i % 7 == 0 else f"body {i} ✓",
                         "metadata": meta})
        for k, part in enumerate(("_default", "p_2024", "p_2025")):
            chunk = rows[k::3]
            for start in range(0, len(chunk), 500):
                client.insert(name, chunk[start:start + 500], partition_name=part)
    finally:
        client.close()


def test_milvus_to_pgvector_kill_resume_rollback(pg_db: str, srv: MilvusLite, tmp_path: Path) -> None:
    n = 1800
    seed_milvus(srv, "docs", n, 16, seed=7)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: mv-to-pg
        source: {{provider: milvus, {MILVUS}, collection: docs}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_back,
                 fields: {{id: id, vector: embedding, text: body}}, create: {{index: {{type: hnsw}}}}}}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2}}
        """)
    environ = env(srv, pg_db)
    a = vecmig("plan", str(spec), "--json", env=environ)
    b = vecmig("plan", str(spec), "--json", env=environ)
    assert a.returncode == 0, a.stdout + a.stderr
    assert a.stdout == b.stdout, "same inputs must give a byte-identical plan"
    body = json.loads(a.stdout)
    copies = [x for x in body["actions"] if x["kind"] == "copy_shard"]
    assert [c["params"]["shard"] for c in copies] == [
        {"namespace": p, "records": 600} for p in ("_default", "p_2024", "p_2025")], "a partition is a shard"

    db = tmp_path / ".vecmig" / "mv-to-pg.db"
    kill_and_resume(spec, environ, db, n)
    want = milvus_records(srv, "docs")
    assert len(want) == n
    assert_same(want, pg_records(pg_db, "docs_back"))

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=environ)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r2 = vecmig("rollback", str(spec), "--auto-approve", env=environ)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_back')").fetchone() == (None,), "rollback drops the table"
    assert_no_secret(srv, a.stdout, a.stderr, r.stdout, r.stderr, r2.stdout, r2.stderr, paths=(tmp_path,))


# ---- pgvector → Milvus ----------------------------------------------------------------------------


def test_pgvector_to_new_milvus_collection_kill_resume_index_rollback(pg_db: str, srv: MilvusLite,
                                                                      tmp_path: Path) -> None:
    n = 2400
    make_docs_table(pg_db, "docs", n, 32, seed=3)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute('VACUUM "docs"')  # a stable size: see test_e2e_pinecone.make_source
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-mv
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: milvus, {MILVUS}, collection: docs_v2, fields: {{text: body}},
                 create: {{metric: cosine, index: {{type: hnsw, m: 12, ef_construction: 48}}}}}}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2, shard_size: 1000}}
        """)
    environ = env(srv, pg_db)
    a = vecmig("plan", str(spec), "--json", env=environ)
    assert a.returncode == 0, a.stdout + a.stderr
    kinds = [x["kind"] for x in json.loads(a.stdout)["actions"]]
    assert "build_index" in kinds and kinds.index("build_index") > max(
        i for i, k in enumerate(kinds) if k == "copy_shard"), "the index is built after the load"
    client = srv.client()
    try:
        assert client.list_collections() == [], "plan creates nothing"
    finally:
        client.close()

    db = tmp_path / ".vecmig" / "pg-to-mv.db"
    landed = kill_and_resume(spec, environ, db, n, actions=("build_index.target",))
    assert any(x.startswith("action=build_") for x in landed), landed  # a kill inside the index swap
    got = milvus_records_text(srv, "docs_v2")
    assert_same(pg_records(pg_db, "docs"), got)
    client = srv.client()
    try:
        index = client.describe_index("docs_v2", "vector")
        assert index["index_type"] == "HNSW" and index["metric_type"] == "COSINE", index
        fields = {f["name"]: f["type"] for f in client.describe_collection("docs_v2")["fields"]}
        assert fields == {"id": DataType.INT64, "vector": DataType.FLOAT_VECTOR, "body": DataType.VARCHAR,
                          "metadata": DataType.JSON}
    finally:
        client.close()

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=environ)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r2 = vecmig("rollback", str(spec), "--auto-approve", env=environ)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    client = srv.client()
    try:
        assert client.list_collections() == [], "rollback drops the collection vecmig created"
    finally:
        client.close()
    assert_no_secret(srv, a.stdout, a.stderr, r.stdout, r.stderr, r2.stdout, r2.stderr, paths=(tmp_path,))


def milvus_records_text(srv: MilvusLite, name: str) -> dict[Any, Record]:
    """:func:`milvus_records` for a collection whose text field is ``body``."""
    client = srv.client()
    try:
        out: dict[Any, Record] = {}
        it = client.query_iterator(name, batch_size=500, filter="", output_fields=["*"], consistency_level="Strong")
        while rows := it.next():
            for r in rows:
                assert r["id"] not in out, f"id {r['id']} twice"
                meta = {k: v for k, v in (r.get("metadata") or {}).items() if v is not None}
                out[r["id"]] = (np.asarray(r["vector"], dtype=np.float32).tobytes(), canonical_metadata(meta),
                                r.get("body"))
        it.close()
        return out
    finally:
        client.close()


# ---- bad input: one line, non-zero exit, no traceback, no secret ---------------------------------


def test_bad_input_is_one_line_naming_what_and_how(pg_db: str, srv: MilvusLite, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 20, 8, seed=1)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET body = repeat('é', 40000) WHERE id = 7")  # 80,000 bytes of UTF-8
    spec = write_spec(tmp_path, f"""
        version: 1
        name: bad
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: milvus, {MILVUS}, collection: docs_v2, fields: {{text: body}}}}
        """)
    environ = env(srv, pg_db)
    r = vecmig("plan", str(spec), env=environ)
    assert r.returncode != 0, r.stdout
    assert "MV004" in r.stdout + r.stderr and "record 7" in r.stdout, r.stdout + r.stderr
    missing = write_spec(tmp_path, f"""
        version: 1
        name: missing
        source: {{provider: milvus, {MILVUS}, collection: nowhere}}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        """)
    m = vecmig("plan", str(missing), env=environ)
    assert m.returncode != 0 and "nowhere" in m.stderr and len(m.stderr.strip().splitlines()) == 1, m.stderr
    down = vecmig("plan", str(missing), env={**environ, "MILVUS_URI": "http://127.0.0.1:1"})
    assert down.returncode != 0 and "source.connection.uri" in down.stderr, down.stderr
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert_no_secret(srv, r.stdout, r.stderr, m.stdout, m.stderr, down.stdout, down.stderr, paths=(tmp_path,))


# ---- blue-green through a Milvus alias -------------------------------------------------------------


def test_blue_green_moves_a_milvus_alias_and_rollback_removes_it(srv: MilvusLite, tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "vector": [0.5, float(i), -0.0], "metadata": {"k": i, "f": i / 3},
                         "text": f"t{i}"}) for i in range(1, 301)]
    (tmp_path / "src.jsonl").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path, f"""
        version: 1
        name: bg
        source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
        target: {{provider: milvus, {MILVUS}, collection: docs_green, alias: docs_live, create: {{metric: cosine}}}}
        strategy: {{type: blue-green}}
        """)
    environ = {"MILVUS_URI": srv.uri, "MILVUS_TOKEN": TOKEN}
    r = vecmig("apply", str(spec), "--auto-approve", env=environ)
    assert r.returncode == 0 and "docs_live: None → docs_green" in r.stdout, r.stdout + r.stderr
    client = srv.client()
    try:
        assert client.describe_alias("docs_live")["collection_name"] == "docs_green"
        rows = client.query("docs_live", filter="id == 7", output_fields=["*"], consistency_level="Strong")
        assert rows[0]["metadata"] == {"k": 7, "f": 7 / 3} and rows[0]["text"] == "t7", "read through the alias"
    finally:
        client.close()
    r2 = vecmig("rollback", str(spec), "--auto-approve", env=environ)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    client = srv.client()
    try:
        assert client.list_aliases()["aliases"] == [] and client.list_collections() == []
    finally:
        client.close()
    assert_no_secret(srv, r.stdout, r.stderr, r2.stdout, r2.stderr, paths=(tmp_path,))


# ---- Milvus → Milvus, partition for partition ------------------------------------------------------


def test_milvus_to_milvus_keeps_each_record_in_its_partition(srv: MilvusLite, tmp_path: Path) -> None:
    seed_milvus(srv, "src", 600, 8, seed=11)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: mv-to-mv
        source: {{provider: milvus, {MILVUS}, collection: src, namespace: "*"}}
        target: {{provider: milvus, {MILVUS}, collection: dst, namespace: "*",
                 create: {{metric: cosine, index: {{type: ivfflat, lists: 8}}}}}}
        strategy: {{type: big-bang, batch_size: 64}}
        """)
    environ = {"MILVUS_URI": srv.uri, "MILVUS_TOKEN": TOKEN}
    r = vecmig("apply", str(spec), "--auto-approve", env=environ)
    assert r.returncode == 0 and "Apply complete" in r.stdout, r.stdout + r.stderr
    client = srv.client()
    try:
        for part in ("_default", "p_2024", "p_2025"):
            ids = [x["id"] for x in client.query("src", filter="id >= 0", output_fields=["id"],
                                                 partition_names=[part], consistency_level="Strong")]
            got = [x["id"] for x in client.query("dst", filter="id >= 0", output_fields=["id"],
                                                 partition_names=[part], consistency_level="Strong")]
            assert len(ids) == 200 and sorted(got) == sorted(ids), f"partition {part}"
        assert client.describe_index("dst", "vector")["index_type"] == "IVF_FLAT"
    finally:
        client.close()
    assert_same(milvus_records(srv, "src"), milvus_records(srv, "dst"))
    p = vecmig("plan", str(spec), "--detailed-exitcode", env=environ)
    assert p.returncode == 0 and "No changes" in p.stdout, p.stdout + p.stderr
    assert_no_secret(srv, r.stdout, r.stderr, p.stdout, p.stderr, paths=(tmp_path,))
