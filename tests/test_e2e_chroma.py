"""Chroma end to end through the real CLI against a real ``chroma run`` server (started once for
the module on a free port): Chroma → pgvector and pgvector → a new Chroma collection, each
SIGKILLed at random points and resumed, then compared record by record with chromadb's own
client and psycopg (ids, metadata and text exactly; vectors bit for bit where the collection
keeps them so — l2 — and within its declared 2 ulp for cosine), then rolled back.

The source collection is seeded with chromadb's own client, not through vecmig.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from tests.support.chroma import ChromaServer, chroma_server
from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, env_for, write_spec
from tests.test_kill_resume import kill_at, progress
from vecmig.records import canonical_metadata
from vecmig.tolerance import ulp_distance, within_ulp

DIM = 24
SEED = 20261206

Row = tuple[np.ndarray, bytes, str | None]  # float32 vector, canonical metadata, text


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as srv:
        yield srv


def seed_chroma(srv: ChromaServer, name: str, space: str, n: int, seed: int) -> None:
    """A collection as an application would fill it, with chromadb's own client: string ids,
    every metadata type Chroma keeps (1.0 stays a float), documents with and without text."""
    rng = np.random.default_rng(seed)
    client = srv.client()
    coll = client.create_collection(name, metadata={"hnsw:space": space}, embedding_function=None)
    vectors = (rng.standard_normal((n, DIM)) * rng.uniform(0.01, 50, (n, 1))).astype(np.float32)
    ids, metas, docs = [], [], []
    for i in range(n):
        ids.append(f"doc-{i:05d}")
        meta: dict[str, Any] = {"lang": ("en", "de", "日本語")[i % 3], "year": 1990 + i % 35, "score": i / 7,
                                "whole": 1.0, "published": i % 2 == 0, "tags": ["a", "ü"] if i % 4 else ["b"]}
        if i % 10 == 0:
            del meta["score"]  # absent in some records
        metas.append(meta)
        docs.append(None if i % 13 == 0 else ("" if i % 17 == 0 else f"café paragraph {i} ✓"))
    for start in range(0, n, 500):
        coll.add(ids=ids[start:start + 500], embeddings=vectors[start:start + 500],
                 metadatas=metas[start:start + 500], documents=docs[start:start + 500])


def chroma_rows(srv: ChromaServer, name: str) -> dict[str, Row]:
    """Every record of a collection, read with chromadb's own client, keyed by its id."""
    coll = srv.client().get_collection(name, embedding_function=None)
    out: dict[str, Row] = {}
    offset = 0
    while True:
        got = coll.get(include=["embeddings", "metadatas", "documents"], limit=500, offset=offset)
        for rid, vec, meta, doc in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"],
                                       strict=True):
            out[rid] = (np.asarray(vec, dtype=np.float32), canonical_metadata(meta or {}, strict=True), doc)
        if len(got["ids"]) < 500:
            return out
        offset += 500


def pg_rows(dsn: str, table: str) -> dict[str, Row]:
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (table,))]
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    out: dict[str, Row] = {}
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        rid, vec, body = r.pop("id"), r.pop("embedding"), r.pop("body", None)
        meta = {k: v for k, v in r.items() if v is not None}
        vec = vec.to_numpy() if hasattr(vec, "to_numpy") else vec
        out[str(rid)] = (np.asarray(vec, dtype=np.float32), canonical_metadata(meta, strict=True), body)
    return out


def assert_same(want: dict[str, Row], got: dict[str, Row], ulp: int) -> int:
    """Every record equal: ids, metadata and text exactly, vectors within ``ulp`` (0: bit for bit).
    Returns how many vectors differ in their bits at all."""
    assert got.keys() == want.keys(), f"ids differ: {sorted(set(want) ^ set(got))[:5]}"
    moved = 0
    for rid, (vec, meta, text) in want.items():
        o_vec, o_meta, o_text = got[rid]
        assert o_meta == meta, f"record {rid}: metadata {o_meta!r} != {meta!r}"
        assert o_text == text, f"record {rid}: text {o_text!r} != {text!r}"
        assert within_ulp(vec, o_vec, ulp), f"record {rid}: vector beyond {ulp} ulp: {ulp_distance(vec, o_vec).max()}"
        moved += vec.tobytes() != o_vec.tobytes()
    return moved


def kill_and_resume(spec: Path, env: dict[str, str], db: Path, total: int, kills: int = 3) -> list[str]:
    """SIGKILL `vecmig apply` at record counts and a time, then let a last apply finish."""
    rng = random.Random(f"{SEED}:{spec.parent.name}")
    points: list[tuple[str, object]] = [("records", t) for t in sorted(rng.sample(range(1, total - 1), kills))]
    points.append(("action", "validate.completeness"))
    landed = []
    for point in points:
        if kill_at(spec, env, db, point, rng.uniform(0, 0.05)):
            done, running = progress(db)
            landed.append(f"{point}: {done} checkpointed, running {sorted(running)}")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout, r.stdout
    assert len(landed) >= 2, f"only {len(landed)} kills landed: {landed}"
    return landed


def validation_result(db: Path) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT result_json FROM actions WHERE kind = 'validate_completeness' "
                         "AND status = 'done' ORDER BY round DESC").fetchall()
    assert rows, "validation ran and passed"
    result: dict[str, Any] = json.loads(rows[0][0])
    return result


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_chroma_to_pgvector_kill_resume_rollback(chroma: ChromaServer, pg_db: str, tmp_path: Path,
                                                 space: str) -> None:
    n = 2200
    name = f"src-{space}"
    seed_chroma(chroma, name, space, n, seed=3)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: ch-to-pg
        source: {{provider: chroma, connection: {{host: {chroma.host}, port: {chroma.port}}}, collection: {name}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_back,
                 fields: {{id: id, vector: embedding, text: body}}}}
        strategy: {{type: big-bang, batch_size: 200, concurrency: 2, shard_size: 1000}}
        """)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert len([a for a in plan["actions"] if a["kind"] == "copy_shard"]) == 3, "id-range shards of 1000"
    codes = {w["code"] for w in plan["warnings"]}
    assert ("VM118" in codes) == (space == "cosine"), plan["warnings"]
    db = tmp_path / ".vecmig" / "ch-to-pg.db"
    kill_and_resume(spec, env, db, n)
    # Chroma reads back the same values every time: what it gave vecmig is now in PostgreSQL bit for bit.
    want = chroma_rows(chroma, name)
    assert assert_same(want, pg_rows(pg_db, "docs_back"), 0) == 0
    result = validation_result(db)
    assert result["ok"] is True
    assert result.get("vector_ulps", 0) == (2 if space == "cosine" else 0)
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_back')").fetchone()[0] is None
    assert len(chroma_rows(chroma, name)) == n, "the source is untouched"
    for out in (r.stdout, r.stderr):
        assert SECRET not in out


def test_pgvector_to_new_chroma_cosine_kill_resume_rollback(chroma: ChromaServer, pg_db: str,
                                                            tmp_path: Path) -> None:
    n = 2000
    make_docs_table(pg_db, "docs", n, DIM, seed=7)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-ch
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: chroma, connection: {{host: {chroma.host}, port: {chroma.port}}}, collection: docs-v2,
                 create: {{metric: cosine}}}}
        strategy: {{type: big-bang, batch_size: 200, concurrency: 2, shard_size: 1000}}
        """)
    env = env_for(pg_db)
    # The generated table holds some empty tag arrays, and doubles of 17 significant digits, some of
    # which Chroma's JSON parser keeps 1 ulp off: both refused up front, naming the field.
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 1 and "CH005" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    found = {w["code"]: w for w in json.loads(r.stdout)["warnings"]}
    assert found["CH005"]["severity"] == "error" and "metadata.tags" in found["CH005"]["message"], found
    assert found["CH012"]["severity"] == "error" and "metadata.score" in found["CH012"]["message"], found
    assert found["CH002"]["severity"] == "info"
    assert "within 2 ulp" in found["VM118"]["message"] and "chroma (cosine)" in found["VM118"]["message"]
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode != 0 and "CH005" in r.stderr and "CH012" in r.stderr
    assert "docs-v2" not in [c.name for c in chroma.client().list_collections()], "nothing was created"
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET tags = NULL WHERE cardinality(tags) = 0")
        conn.execute("UPDATE docs SET score = round(score::numeric, 12)::float8")  # 12 digits: kept exactly

    db = tmp_path / ".vecmig" / "pg-to-ch.db"
    kill_and_resume(spec, env, db, n)
    got = chroma_rows(chroma, "docs-v2")
    moved = assert_same(pg_rows(pg_db, "docs"), got, 2)
    assert moved > n // 10, f"only {moved} vectors moved: the tolerance is what lets this validate"
    coll = chroma.client().get_collection("docs-v2", embedding_function=None)
    assert (coll.metadata or {}).get("vecmig:id_type") == "int", "int ids map back to ints"
    result = validation_result(db)
    assert result["ok"] is True and result["vector_ulps"] == 2 and result["method"] == "records"
    # A second plan diffs the records within the tolerance: nothing to copy again.
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [a for a in json.loads(r.stdout)["actions"] if a["kind"] == "copy_shard"]
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "docs-v2" not in [c.name for c in chroma.client().list_collections()]


def test_jsonl_into_a_local_persistent_store_and_back(tmp_path: Path) -> None:
    """``connection: {path: ...}`` (PersistentClient, relative to the spec): int ids come back as
    ints and l2 vectors bit for bit, JSONL → Chroma → JSONL; a bad name is one line, no traceback."""
    rng = np.random.default_rng(11)
    rows = [{"id": i, "vector": [float(x) for x in rng.standard_normal(8).astype(np.float32)],
             "metadata": {"k": i % 3, "f": 0.25, "s": "ü"}, "text": None if i % 4 == 0 else f"t{i}"}
            for i in range(1, 301)]
    (tmp_path / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, source, target in (
            ("to-chroma", "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: chroma, connection: {path: chroma-data}, collection: docs, create: {metric: euclidean}}"),
            ("from-chroma", "{provider: chroma, connection: {path: chroma-data}, collection: docs}",
             "{provider: jsonl, connection: {path: back.jsonl}}")):
        spec = write_spec(tmp_path, f"""
            version: 1
            name: {name}
            source: {source}
            target: {target}
            strategy: {{type: big-bang, batch_size: 64}}
            """)
        r = vecmig("apply", str(spec), "--auto-approve")
        assert r.returncode == 0, r.stdout + r.stderr
    back = [json.loads(line) for line in (tmp_path / "back.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in back}
    assert sorted(by_id) == list(range(1, 301)), "int ids, each once"
    for want in rows:
        got = by_id[want["id"]]
        assert np.array_equal(np.asarray(got["vector"], dtype=np.float32).view(np.int32),
                              np.asarray(want["vector"], dtype=np.float32).view(np.int32))
        assert got.get("metadata") == want["metadata"] and got.get("text") == want["text"]
    bad = write_spec(tmp_path, """
        version: 1
        name: bad
        source: {provider: jsonl, connection: {path: src.jsonl}}
        target: {provider: chroma, connection: {path: chroma-data}, collection: "x"}
        """)
    r = vecmig("plan", str(bad))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Chroma collection name" in r.stderr
