"""Qdrant end to end through the real CLI, against the local Qdrant server in its own process:
qdrant → pgvector and pgvector → a new qdrant collection, each SIGKILLed at random points and
resumed, then compared record by record, bit for bit; rollback; the cosine refusal (QD003).

Records are read back with qdrant-client and psycopg directly, not through vecmig. Qdrant
keeps payload numbers as typed JSON, so the Qdrant side is compared strictly: an int must
come back an int and a float a float (``json.dumps`` of the metadata must be equal).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from qdrant_client import QdrantClient, models

from tests.qdrant_local import QdrantLocal, SpawnedQdrantLocal
from tests.support.cli import vecmig
from tests.support.specs import SECRET, env_for, write_spec
from tests.test_e2e_pinecone import kill_and_resume, make_source

API_KEY = "qdrant-MARKER-key-do-not-leak-51c9"
ID_KEY = "_vecmig_id"

Record = tuple[bytes, str, str | None]  # vector bits, metadata as sorted JSON (types kept), text


@pytest.fixture(scope="module")
def server() -> Iterator[SpawnedQdrantLocal]:
    with QdrantLocal.spawn(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def srv(server: SpawnedQdrantLocal) -> Iterator[SpawnedQdrantLocal]:
    server.reset()
    yield server
    server.reset()


def client(srv: SpawnedQdrantLocal) -> QdrantClient:
    import warnings

    with warnings.catch_warnings():  # the API key over plain http: a local test server
        warnings.simplefilter("ignore")
        return QdrantClient(url=srv.url, api_key=API_KEY, prefer_grpc=False, check_compatibility=False)


def qd_env(dsn: str) -> dict[str, str]:
    return {**env_for(dsn), "QDRANT_API_KEY": API_KEY}


def qdrant_block(srv: SpawnedQdrantLocal, collection: str, extra: str = "") -> str:
    return (f'{{provider: qdrant, connection: {{url: "{srv.url}", api_key: "${{env:QDRANT_API_KEY}}"}}, '
            f"collection: {collection}{extra}}}")


def _meta_json(meta: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in meta.items() if v is not None}, sort_keys=True)


def qdrant_records(srv: SpawnedQdrantLocal, collection: str) -> dict[str, Record]:
    """Every point, keyed by the record id's text (the original id where vecmig mapped it)."""
    out: dict[str, Record] = {}
    with closing(client(srv)) as qc:
        offset: Any = None
        while True:
            points, offset = qc.scroll(collection, offset=offset, limit=256, with_payload=True, with_vectors=True)
            for p in points:
                payload = dict(p.payload or {})
                rid = payload.pop(ID_KEY, p.id)
                if rid != p.id:
                    assert isinstance(p.id, str) and uuid.UUID(p.id).version == 5, "mapped ids live under uuid5"
                text = payload.pop("text", None)
                assert str(rid) not in out, f"id {rid} twice"
                out[str(rid)] = (np.asarray(p.vector, dtype=np.float32).tobytes(), _meta_json(payload), text)
            if offset is None:
                return out


def pg_records(dsn: str, table: str) -> dict[str, Record]:
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        cur = conn.execute(f'SELECT * FROM "{table}"')
        cols = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    out: dict[str, Record] = {}
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        rid, vec, text = r.pop("id"), r.pop("embedding"), r.pop("body", None)
        vec = vec.to_numpy() if hasattr(vec, "to_numpy") else vec
        out[str(rid)] = (np.asarray(vec, dtype=np.float32).tobytes(), _meta_json(r), text)
    return out


def assert_same(want: dict[str, Record], got: dict[str, Record]) -> None:
    assert got.keys() == want.keys(), f"ids differ: {sorted(set(want) ^ set(got))[:5]}"
    for rid, rec in want.items():
        assert got[rid][0] == rec[0], f"record {rid}: vector bits differ"
        assert got[rid][1] == rec[1], f"record {rid}: metadata {got[rid][1]} != {rec[1]}"
        assert got[rid][2] == rec[2], f"record {rid}: text {got[rid][2]!r} != {rec[2]!r}"


def assert_no_secret(*texts: str, paths: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert API_KEY not in text and SECRET not in text, "a secret reached the output"
    for p in paths:
        for f in [x for x in p.rglob("*") if x.is_file()]:
            data = f.read_bytes()
            assert API_KEY.encode() not in data and SECRET.encode() not in data, f"a secret reached {f}"


def seed_qdrant(srv: SpawnedQdrantLocal, collection: str, n: int, dim: int, seed: int) -> None:
    """A collection as an application would fill it with qdrant-client: UUID point ids,
    payloads of every JSON type Qdrant keeps, some text, a dot-product vector."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    points = []
    for i in range(n):
        payload: dict[str, Any] = {"title": f"Doc {i} · naïve", "year": 1990 + i % 35, "score": float(rng.random()),
                                   "published": bool(i % 3), "tags": ["a", f"t{i % 4}"][: i % 3],
                                   "note": None if i % 5 == 0 else f"n{i}"}
        if i % 7:
            payload["text"] = f"body of {i} — café"
        points.append(models.PointStruct(id=str(uuid.UUID(int=int(rng.integers(1, 2**62)) << 64 | i)),
                                         vector=vectors[i].tolist(), payload=payload))
    with closing(client(srv)) as qc:
        qc.create_collection(collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT))
        qc.upload_points(collection, points=points, batch_size=256, wait=True)


def test_qdrant_to_pgvector_kill_resume_rollback(pg_db: str, srv: SpawnedQdrantLocal, tmp_path: Path) -> None:
    n = 1500
    seed_qdrant(srv, "docs", n, 24, seed=5)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: qd-to-pg
        source: {qdrant_block(srv, "docs")}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_back,
                 fields: {{id: id, vector: embedding, text: body}}}}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2, shard_size: 1000}}
        """)
    env = qd_env(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(r.stdout)
    assert sum(1 for a in body["actions"] if a["kind"] == "copy_shard") == 2, "two point-id ranges of up to 1000"
    db = tmp_path / ".vecmig" / "qd-to-pg.db"
    kill_and_resume(spec, env, db, n, actions=("validate.completeness",), kills=4)
    want = qdrant_records(srv, "docs")
    assert len(want) == n
    assert_same(want, pg_records(pg_db, "docs_back"))
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_back')").fetchone()[0] is None  # type: ignore[index]
    assert qdrant_records(srv, "docs") == want, "the source is untouched"
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path,))


def test_pgvector_to_new_qdrant_collection_string_ids_kill_resume_rollback(
        pg_db: str, srv: SpawnedQdrantLocal, tmp_path: Path) -> None:
    n = 1500
    make_source(pg_db, "docs", n, 16, seed=3)
    with psycopg.connect(pg_db, autocommit=True) as conn:  # string ids, as many stores have them
        conn.execute("ALTER TABLE docs ALTER COLUMN id TYPE text USING 'doc-' || id::text")
        conn.execute("VACUUM FULL docs")
    body = f"""
        version: 1
        name: pg-to-qd
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {qdrant_block(srv, "docs-v2", "{create}")}
        strategy: {{type: big-bang, batch_size: 150, concurrency: 2, shard_size: 1000}}
        """
    env = qd_env(pg_db)
    # Cosine: Qdrant would store the vectors normalised. The plan says so and apply refuses.
    cosine = write_spec(tmp_path, body.replace("{create}", ", create: {metric: cosine}"))
    r = vecmig("plan", str(cosine), "--json", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    finding = next(w for w in json.loads(r.stdout)["warnings"] if w["code"] == "QD003")
    assert finding["severity"] == "error" and "normalised" in finding["message"] and finding["hint"]
    with closing(client(srv)) as qc:
        assert not qc.collection_exists("docs-v2"), "nothing was applied"

    spec = write_spec(tmp_path, body.replace("{create}", ", create: {metric: dotproduct}"))
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    codes = {w["code"]: w for w in json.loads(r.stdout)["warnings"]}
    assert codes["QD001"]["severity"] == "info" and ID_KEY in codes["QD001"]["message"]
    db = tmp_path / ".vecmig" / "pg-to-qd.db"
    kill_and_resume(spec, env, db, n, actions=("validate.completeness",), kills=4)
    got = qdrant_records(srv, "docs-v2")
    assert_same(pg_records(pg_db, "docs"), got)
    assert all(k.startswith("doc-") for k in got)
    stats = srv.stats()
    assert stats["points_upserted"] >= n

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with closing(client(srv)) as qc:
        assert not qc.collection_exists("docs-v2"), "rollback deletes the collection vecmig created"
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path,))


def test_injected_503_429_and_drops_lose_and_double_nothing(pg_db: str, srv: SpawnedQdrantLocal,
                                                            tmp_path: Path) -> None:
    n = 1000
    make_source(pg_db, "docs", n, 32, seed=8)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: qd-faults
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {qdrant_block(srv, "docs-faults", ", create: {metric: euclidean}")}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2}}
        """)
    env = qd_env(pg_db)
    srv.set_faults(["ok", "503", "drop", "ok", "429", "502", "drop", "ok", "500"], endpoints=["upsert"])
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    stats = srv.stats()
    srv.clear_faults()
    assert r.returncode == 0, r.stdout + r.stderr
    assert stats["faults"] == {"503": 1, "drop": 2, "429": 1, "502": 1, "500": 1}, stats
    assert stats["points_upserted"] == n, "every record written exactly once: refused requests wrote nothing"
    assert_same(pg_records(pg_db, "docs"), qdrant_records(srv, "docs-faults"))
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path,))


def test_pgvector_to_qdrant_blue_green_switches_the_alias_and_rolls_back(
        pg_db: str, srv: SpawnedQdrantLocal, tmp_path: Path) -> None:
    n = 1200
    make_source(pg_db, "docs", n, 16, seed=11)
    with closing(client(srv)) as qc:
        qc.create_collection("docs-blue", vectors_config=models.VectorParams(size=16, distance=models.Distance.DOT))
        qc.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name="docs-blue", alias_name="docs_live"))])
    spec = write_spec(tmp_path, f"""
        version: 1
        name: qd-bg
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {qdrant_block(srv, "docs-green", ", alias: docs_live, create: {metric: dotproduct}")}
        strategy: {{type: blue-green, batch_size: 100, concurrency: 2, shard_size: 1000}}
        """)
    env = qd_env(pg_db)
    db = tmp_path / ".vecmig" / "qd-bg.db"
    kill_and_resume(spec, env, db, n, actions=("cutover.alias",), kills=2)
    assert_same(pg_records(pg_db, "docs"), qdrant_records(srv, "docs-green"))
    with closing(client(srv)) as qc:
        assert [(a.alias_name, a.collection_name) for a in qc.get_aliases().aliases] == [("docs_live", "docs-green")]
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with closing(client(srv)) as qc:
        assert [(a.alias_name, a.collection_name) for a in qc.get_aliases().aliases] == [("docs_live", "docs-blue")]
        assert not qc.collection_exists("docs-green") and qc.collection_exists("docs-blue")
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path,))
