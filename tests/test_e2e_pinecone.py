"""Pinecone end to end through the real CLI: pgvector → Pinecone (big-bang and blue-green with
a pointer), Pinecone → pgvector, Pinecone → parquet and jsonl (sparse values), each SIGKILLed
at random points and resumed, then compared record by record; rollback; a run under injected
429/503s and dropped connections.

The local Pinecone server runs in its own process (``PineconeLocal.spawn``) and the CLI in
another, reaching it through ``connection.host`` in the spec. Records are read back with the
SDK directly (not through vecmig) and compared through vecmig's canonical forms: ids as
text, vectors as float32 bits, metadata canonical JSON (Pinecone keeps numbers as doubles,
so an int comes back as 2003.0), sparse values as sorted (index, float32) pairs.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow.parquet as pq
from pgvector.psycopg import register_vector
from pinecone import Pinecone

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.pinecone import API_KEY  # a marker: it must never show up in state, plans or output
from tests.support.specs import SECRET, env_for, write_spec
from tests.test_kill_resume import kill_at, progress
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import PineconeProvider, packing
from vecmig.records import Batch, canonical_metadata, canonical_sparse
from vecmig.spec import CreateSpec, StoreSpec

SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "20261126"))

Record = tuple[bytes, bytes, str | None, bytes | None]  # vector bits, metadata, text, sparse


# ---- fixtures -----------------------------------------------------------------------------------


def pc_env(dsn: str | None = None) -> dict[str, str]:
    env = env_for(dsn) if dsn else {}
    return {**env, "PINECONE_API_KEY": API_KEY}


def pinecone_block(pinecone_srv: SpawnedPineconeLocal, index: str, extra: str = "") -> str:
    return (f'{{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{pinecone_srv.url}", '
            f"concurrency: 2}}, collection: {index}{extra}}}")


PG_SOURCE = ('{provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs, '
             "fields: {id: id, vector: embedding, text: body}}")


# ---- reading stores back, independently of vecmig -------------------------------------------------


def pinecone_records(pinecone_srv: SpawnedPineconeLocal, index: str, text_key: str = "text") -> dict[str, Record]:
    """Every record of every namespace, through the SDK (list pages + fetch)."""
    out: dict[str, Record] = {}
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        host = pc.indexes.describe(index).host
        with pc.Index(host=host) as idx:
            for ns in sorted(idx.describe_index_stats().namespaces):
                token: str | None = None
                while True:
                    page = idx.list_paginated(namespace=ns, limit=100, pagination_token=token)
                    ids = [v.id for v in page.vectors]
                    got = idx.fetch(ids=ids, namespace=ns).vectors if ids else {}
                    for rid in ids:
                        r = got[rid]
                        meta = dict(r.metadata or {})
                        text = meta.pop(text_key, None)
                        assert rid not in out, f"id {rid} twice"
                        out[rid] = (np.asarray(r.values, dtype=np.float32).tobytes(), canonical_metadata(meta),
                                    text, canonical_sparse(r.sparse_values))
                    token = page.pagination.next if page.pagination is not None else None
                    if not token:
                        break
    return out


def pinecone_indexes(pinecone_srv: SpawnedPineconeLocal) -> list[str]:
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        return sorted(m.name for m in pc.indexes.list())


def pg_records(dsn: str, table: str, text: str = "body") -> dict[str, Record]:
    """Every row of a docs-shaped table, keyed by the id's text (Pinecone's id form)."""
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (table,))]
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    out: dict[str, Record] = {}
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        rid, vec, body = r.pop("id"), r.pop("embedding"), r.pop(text, None)
        meta = {k: v for k, v in r.items() if v is not None}
        vec = vec.to_numpy() if hasattr(vec, "to_numpy") else vec
        out[str(rid)] = (np.asarray(vec, dtype=np.float32).tobytes(), canonical_metadata(meta), body, None)
    return out


def parquet_records(path: Path) -> dict[str, Record]:
    table = pq.read_table(path)
    out: dict[str, Record] = {}
    names = [n for n in table.column_names if n not in ("id", "vector", "text")]
    for row in table.to_pylist():
        meta = row.get("metadata") if names == ["metadata"] else {k: row[k] for k in names}
        if isinstance(meta, str):
            meta = json.loads(meta)
        meta = {k: v for k, v in (meta or {}).items() if v is not None}
        out[str(row["id"])] = (np.asarray(row["vector"], dtype=np.float32).tobytes(), canonical_metadata(meta),
                               row.get("text"), None)
    return out


def jsonl_records(path: Path) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[str(rec["id"])] = (np.asarray(rec["vector"], dtype=np.float32).tobytes(),
                               canonical_metadata(rec.get("metadata") or {}), rec.get("text"),
                               canonical_sparse(rec.get("sparse")))
    return out


def assert_same_records(want: dict[str, Record], got: dict[str, Record]) -> None:
    assert len(got) == len(want), f"{len(got)} records, expected {len(want)}"
    assert got.keys() == want.keys(), f"ids differ: {sorted(set(want) ^ set(got))[:5]}"
    for rid, rec in want.items():
        other = got[rid]
        assert other[0] == rec[0], f"record {rid}: vector bits differ"
        assert other[1] == rec[1], f"record {rid}: metadata {other[1]!r} != {rec[1]!r}"
        assert other[2] == rec[2], f"record {rid}: text differs"
        assert other[3] == rec[3], f"record {rid}: sparse values differ"


# ---- seeding a Pinecone source --------------------------------------------------------------------


def seed_pinecone(pinecone_srv: SpawnedPineconeLocal,
                  index: str, n: int, dim: int, *, namespaces: tuple[str, ...] = ("",),
                  sparse: bool = False, seed: int = 0) -> None:
    """An index like a real one: string ids, metadata of every kind Pinecone keeps, some text,
    records spread over ``namespaces``; with ``sparse``, a dotproduct hybrid index where most
    records carry sparse values."""
    rng = np.random.default_rng(seed)
    create = CreateSpec(dimension=dim, metric="dotproduct" if sparse else "cosine", sparse=sparse)
    for k, ns in enumerate(namespaces):
        store = StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": pinecone_srv.url},
                          collection=index, namespace=ns or None, create=create, pointer="/source")
        p = PineconeProvider(store)
        try:
            if k == 0:
                p.create_collection(CollectionSchema(dimension=dim, metric=create.metric or "cosine",
                                                     id_type="text", sparse=sparse))
            m = n // len(namespaces) + (1 if k < n % len(namespaces) else 0)
            base = sum(n // len(namespaces) + (1 if j < n % len(namespaces) else 0) for j in range(k))
            ids = [f"doc-{base + i:06d}" for i in range(m)]
            vectors = rng.standard_normal((m, dim)).astype(np.float32)
            metadata = [{"title": f"Doc {base + i}", "year": int(1990 + (base + i) % 35), "score": float(rng.random()),
                         "published": bool((base + i) % 3), "tags": ["a", f"t{(base + i) % 4}"][: (base + i) % 3]}
                        for i in range(m)]
            texts = [f"body of {base + i} · naïve café" if (base + i) % 7 else None for i in range(m)]
            batch = Batch(ids=list(ids), vectors=vectors, metadata=metadata, texts=texts)
            if sparse:
                sparse_values: list[dict[str, list[Any]] | None] = []
                for i in range(m):
                    if (base + i) % 5 == 0:
                        sparse_values.append(None)  # dense-only records exist in hybrid indexes too
                        continue
                    nnz = int(rng.integers(1, 12))
                    sparse_values.append({
                        "indices": sorted(rng.choice(30_000, size=nnz, replace=False).tolist()),
                        "values": rng.standard_normal(nnz).astype(np.float32).tolist(),
                    })
                batch.extra["sparse"] = sparse_values
            for start in range(0, m, 1000):
                p.upsert(batch.take(range(start, min(m, start + 1000))))
        finally:
            p.close()


# ---- SIGKILL and resume ---------------------------------------------------------------------------


def kill_and_resume(spec: Path, env: dict[str, str], db: Path, total: int, *, actions: tuple[str, ...] = (),
                    kills: int = 5, seed: int = SEED) -> int:
    """SIGKILL `vecmig apply` at random points (a time, record counts, named actions), then
    let a last apply finish. Returns how many kills landed (at least ``kills``)."""
    rng = random.Random(f"{seed}:{spec.parent.name}")  # each test its own points, the same every run
    points: list[tuple[str, object]] = [("time", rng.uniform(0.3, 1.0))]
    points += [("records", t) for t in sorted(rng.sample(range(1, max(2, total - 1)), kills))]
    points += [("action", a) for a in actions]
    landed: list[str] = []

    def attempt(point: tuple[str, object], jitter: float) -> bool:
        if not kill_at(spec, env, db, point, jitter):
            return False
        done, running = progress(db)
        landed.append(f"{point[0]}={point[1]!s:.6}: {done} checkpointed, running {sorted(running)}")
        return True

    for point in points:
        attempt(point, rng.uniform(0, 0.05))
    # Late kill points may find the apply already past them: kill by time until enough landed.
    while len(landed) < kills and attempt(("time", rng.uniform(0.2, 0.6)), 0.0):
        pass
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout or "No changes" in r.stdout, r.stdout
    assert len(landed) >= kills, f"only {len(landed)} kills landed: {landed}"
    print(f"\n{spec.parent.name}: {len(landed)} kills\n  " + "\n  ".join(landed))
    return len(landed)


def assert_no_secret(*texts: str, paths: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert API_KEY not in text and SECRET not in text, "a secret reached the output"
    for p in paths:
        for f in ([p] if p.is_file() else [x for x in p.rglob("*") if x.is_file()]):
            data = f.read_bytes()
            assert API_KEY.encode() not in data and SECRET.encode() not in data, f"a secret reached {f}"


def make_source(dsn: str, name: str, n: int, dim: int, seed: int) -> None:
    """The docs table, vacuumed now. PostgreSQL 16 extends a table by several pages at once
    during COPY and a later (auto)vacuum truncates the unused ones: the table's size, which
    pgvector's inventory divides into bytes per record, would change under a running test and
    make the source look changed (a new round instead of "No changes")."""
    make_docs_table(dsn, name, n, dim, seed=seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'VACUUM "{name}"')


# ---- pgvector → Pinecone ---------------------------------------------------------------------------


def test_pgvector_to_pinecone_big_bang_kill_resume_rollback(pg_db: str, pinecone_srv: SpawnedPineconeLocal,
                                                            tmp_path: Path) -> None:
    n = 3000
    make_source(pg_db, "docs", n, 32, seed=3)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-pc
        source: {PG_SOURCE}
        target: {pinecone_block(pinecone_srv, "docs-v2", ", create: {metric: cosine, tags: {team: search}}")}
        strategy: {{type: big-bang, batch_size: 200, concurrency: 2, shard_size: 1000}}
        cost: {{transition_days: 15, pinecone: {{write_units_per_million: 5.0}}}}
        """)
    env = pc_env(pg_db)
    outputs: list[str] = []

    a = vecmig("plan", str(spec), "--json", env=env)
    b = vecmig("plan", str(spec), "--json", env=env)
    assert a.returncode == 0, a.stdout + a.stderr
    assert a.stdout == b.stdout, "same inputs must give a byte-identical plan"
    assert not (tmp_path / ".vecmig").exists(), "plan must not create state"
    assert pinecone_indexes(pinecone_srv) == [], "plan must not create the index"
    body = json.loads(a.stdout)
    codes = {w["code"]: w for w in body["warnings"]}
    assert codes["PC015"]["severity"] == "info" and codes["PC015"]["hint"], codes
    copies = [x for x in body["actions"] if x["kind"] == "copy_shard"]
    assert len(copies) == 3 and all(c["params"]["batch_size"] == 10_000 for c in copies)
    assert all(c["estimate"]["cost"].get("pinecone_write_units", 0) > 0 for c in copies)
    assert all(c["estimate"]["cost"].get("pinecone_storage", 0) > 0 for c in copies)
    validate = next(x for x in body["actions"] if x["kind"] == "validate_completeness")
    assert validate["estimate"]["cost"].get("pinecone_read_units", 0) > 0
    assert body["totals"]["cost"]["pinecone_write_units"] > 0
    assert any("copy batches hold 10,000 records" in note for note in body["notes"])
    outputs += [a.stdout, a.stderr]
    plan_file = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(plan_file), env=env).returncode == 0

    db = tmp_path / ".vecmig" / "pg-to-pc.db"
    kill_and_resume(spec, env, db, n, actions=("validate.completeness",))
    assert_same_records(pg_records(pg_db, "docs"), pinecone_records(pinecone_srv, "docs-v2"))
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        model = pc.indexes.describe("docs-v2")
        assert model.tags == {"created-by": "vecmig", "team": "search"}

    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    outputs += [r.stdout, r.stderr]
    v = vecmig("state", "verify", str(spec), env=env)
    assert v.returncode == 0, v.stdout + v.stderr

    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    outputs += [r.stdout, r.stderr]
    assert pinecone_indexes(pinecone_srv) == [], "rollback deletes the index vecmig created"
    assert_no_secret(*outputs, paths=(tmp_path,))


def test_pgvector_to_pinecone_blue_green_repoints_file_and_command(pg_db: str, pinecone_srv: SpawnedPineconeLocal,
                                                                   tmp_path: Path) -> None:
    n = 2000
    make_source(pg_db, "docs", n, 16, seed=4)
    live = tmp_path / "live-index.json"
    original = json.dumps({"index": "docs-blue", "host": "https://docs-blue.example", "namespace": "prod"}) + "\n"
    live.write_text(original)
    log = tmp_path / "repoint.log"
    # The command records what it was given; it sleeps so that kills can land inside it.
    script = tmp_path / "repoint.sh"
    script.write_text('#!/bin/sh\nsleep 0.3\nprintf \'%s %s %s %s %s\\n\' "$VECMIG_OPERATION" "$VECMIG_INDEX" '
                      '"$VECMIG_HOST" "$VECMIG_NAMESPACE" "$VECMIG_PREVIOUS_INDEX" >> repoint.log\n'
                      'env > env.dump\n')
    script.chmod(0o755)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-to-pc-bg
        source: {PG_SOURCE}
        target: {pinecone_block(pinecone_srv, "docs-green", ", namespace: prod, pointer: {file: live-index.json, "
                                "command: ./repoint.sh}")}
        strategy: {{type: blue-green, batch_size: 100, concurrency: 2, shard_size: 1000}}
        """)
    env = pc_env(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    cut = next(x for x in json.loads(r.stdout)["actions"] if x["kind"] == "cutover")
    assert cut["id"] == "cutover.pointer" and cut["params"]["from"] == "docs-blue"
    assert cut["params"]["pointer"] == {"file": "live-index.json", "command": "./repoint.sh"}

    db = tmp_path / ".vecmig" / "pg-to-pc-bg.db"
    kill_and_resume(spec, env, db, n, actions=("validate.completeness", "cutover.pointer"))
    assert_same_records(pg_records(pg_db, "docs"), pinecone_records(pinecone_srv, "docs-green"))

    pointer = json.loads(live.read_text())
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        host = pc.indexes.describe("docs-green").host
    assert pointer["index"] == "docs-green" and pointer["host"] == host and pointer["namespace"] == "prod"
    assert pointer["previous"] == "docs-blue" and pointer["switched_at"]
    runs = log.read_text().splitlines()
    assert runs and set(runs) == {f"cutover docs-green {host} prod docs-blue"}, runs  # reruns are the same call
    dump = (tmp_path / "env.dump").read_text()
    assert API_KEY not in dump and SECRET not in dump, "the command's environment holds no secret"

    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert live.read_text() == original, "rollback restores the pointer file byte for byte"
    assert log.read_text().splitlines()[-1] == "rollback docs-blue https://docs-blue.example prod docs-green"
    assert pinecone_indexes(pinecone_srv) == []
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path / ".vecmig",))


def test_pinecone_to_pinecone_blue_green_with_a_command_only(pinecone_srv: SpawnedPineconeLocal,
                                                             tmp_path: Path) -> None:
    """Without a pointer file the previous index is the blue one (same kind of store): the
    command is told so at cutover and is called with it at rollback."""
    seed_pinecone(pinecone_srv, "docs-blue", 400, 8, seed=10)
    (tmp_path / "repoint.sh").write_text('#!/bin/sh\necho "$VECMIG_OPERATION $VECMIG_INDEX $VECMIG_HOST '
                                         '$VECMIG_PREVIOUS_INDEX" >> repoint.log\n')
    (tmp_path / "repoint.sh").chmod(0o755)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-to-pc
        source: {pinecone_block(pinecone_srv, "docs-blue")}
        target: {pinecone_block(pinecone_srv, "docs-green", ", pointer: {command: ./repoint.sh}")}
        strategy: {{type: blue-green}}
        """)
    env = pc_env()
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_records(pinecone_records(pinecone_srv, "docs-blue"), pinecone_records(pinecone_srv, "docs-green"))
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        blue, green = pc.indexes.describe("docs-blue").host, pc.indexes.describe("docs-green").host
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "repoint.log").read_text().splitlines() == [
        f"cutover docs-green {green} docs-blue", f"rollback docs-blue {blue} docs-green"]
    assert pinecone_indexes(pinecone_srv) == ["docs-blue"]


# ---- Pinecone → elsewhere ------------------------------------------------------------------------


def test_pinecone_to_pgvector_kill_resume_rollback(pg_db: str,
                                                   pinecone_srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    n = 1500
    seed_pinecone(pinecone_srv, "docs", n, 24, namespaces=("", "eu", "us"), seed=5)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-to-pg
        source: {pinecone_block(pinecone_srv, "docs", ", namespace: '*'")}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_back,
                 fields: {{id: id, vector: embedding, text: body}}}}
        strategy: {{type: big-bang, batch_size: 100, concurrency: 2}}
        """)
    env = pc_env(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(r.stdout)
    assert [a["params"]["shard"]["namespace"] for a in body["actions"] if a["kind"] == "copy_shard"] == \
        ["", "eu", "us"]
    assert body["totals"]["cost"].get("pinecone_read_units", 0) > 0, "reading Pinecone costs read units"
    db = tmp_path / ".vecmig" / "pc-to-pg.db"
    kill_and_resume(spec, env, db, n, actions=("validate.completeness",))
    assert_same_records(pinecone_records(pinecone_srv, "docs"), pg_records(pg_db, "docs_back"))
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_back')").fetchone()[0] is None
    assert len(pinecone_records(pinecone_srv, "docs")) == n, "the source is untouched"


def test_sparse_values_are_never_dropped_into_pgvector(pg_db: str, pinecone_srv: SpawnedPineconeLocal,
                                                       tmp_path: Path) -> None:
    """pgvector here has no sparsevec: the plan says so (VM104, an error), apply refuses; with the
    finding lowered by policy, the copy still stops at the first record that has sparse values."""
    seed_pinecone(pinecone_srv, "hybrid", 300, 8, sparse=True, seed=9)
    body = f"""
        version: 1
        name: pc-sparse-pg
        source: {pinecone_block(pinecone_srv, "hybrid")}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: hybrid_back}}
        """
    spec = write_spec(tmp_path, body)
    env = pc_env(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    finding = next(w for w in json.loads(r.stdout)["warnings"] if w["code"] == "VM104")
    assert finding["severity"] == "error" and "pgvector cannot store" in finding["message"] and finding["hint"]
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1 and "VM104" in r.stderr, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('hybrid_back')").fetchone()[0] is None, "nothing was applied"

    spec = write_spec(tmp_path, body.rstrip(" ") + "        policy: {warn: [VM104]}\n")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "record 'doc-000001' has sparse values, which pgvector cannot store" in r.stderr, r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM hybrid_back").fetchone()[0] == 0, "no batch went in"


def test_pinecone_to_parquet_export_kill_resume(pinecone_srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    n = 1500
    seed_pinecone(pinecone_srv, "docs", n, 16, seed=6)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-to-parquet
        source: {pinecone_block(pinecone_srv, "docs")}
        target: {{provider: parquet, connection: {{path: export.parquet}}}}
        strategy: {{type: big-bang, batch_size: 100}}
        """)
    env = pc_env()
    db = tmp_path / ".vecmig" / "pc-to-parquet.db"
    kill_and_resume(spec, env, db, n, actions=("finalize.target", "validate.completeness"))
    assert_same_records(pinecone_records(pinecone_srv, "docs"), parquet_records(tmp_path / "export.parquet"))


def test_sparse_values_go_to_jsonl_and_are_refused_by_parquet(pinecone_srv: SpawnedPineconeLocal,
                                                              tmp_path: Path) -> None:
    n = 1200
    seed_pinecone(pinecone_srv, "hybrid", n, 8, sparse=True, seed=7)
    env = pc_env()
    refused = write_spec(tmp_path, f"""
        version: 1
        name: pc-sparse-parquet
        source: {pinecone_block(pinecone_srv, "hybrid")}
        target: {{provider: parquet, connection: {{path: hybrid.parquet}}}}
        """)
    r = vecmig("plan", str(refused), "--json", env=env)
    body = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
    findings = {w["code"]: w for w in body["warnings"]} if body else {}
    assert "VM104" in findings or "VM104" in r.stderr, r.stdout + r.stderr
    if body:
        assert findings["VM104"]["severity"] == "error" and "sparse" in findings["VM104"]["message"]
    r = vecmig("apply", str(refused), "--auto-approve", env=env)
    assert r.returncode != 0, "sparse values must not be dropped silently"
    assert "sparse" in (r.stdout + r.stderr)
    assert not (tmp_path / "hybrid.parquet").exists()

    spec = tmp_path / "jsonl.yaml"
    spec.write_text(f"""
version: 1
name: pc-sparse-jsonl
source: {pinecone_block(pinecone_srv, "hybrid")}
target: {{provider: jsonl, connection: {{path: hybrid.jsonl}}}}
strategy: {{type: big-bang, batch_size: 100}}
""")
    db = tmp_path / ".vecmig" / "pc-sparse-jsonl.db"
    kill_and_resume(spec, env, db, n, actions=("finalize.target",))
    got = jsonl_records(tmp_path / "hybrid.jsonl")
    want = pinecone_records(pinecone_srv, "hybrid")
    assert sum(1 for rec in want.values() if rec[3] is not None) > n // 2
    assert_same_records(want, got)


# ---- faults, request packing ---------------------------------------------------------------------


def test_injected_429_503_and_drops_lose_and_double_nothing(pg_db: str, pinecone_srv: SpawnedPineconeLocal,
                                                            tmp_path: Path) -> None:
    n, dim = 10_000, 384
    make_source(pg_db, "docs", n, dim, seed=8)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: faults
        source: {PG_SOURCE}
        target: {pinecone_block(pinecone_srv, "docs-faults", ", create: {metric: cosine}")}
        strategy: {{type: big-bang, concurrency: 2, shard_size: 10000}}
        """)
    env = pc_env(pg_db)
    # 10% of data-plane requests fail with 429 or 503, 2% more lose their connection; the
    # first upserts are scripted so that drops happen however few requests the run makes.
    pinecone_srv.set_faults(rate_429=0.05, rate_503=0.05, rate_drop=0.02, retry_after=0, retry_after_503=0, seed=SEED,
                   script=("ok", "drop", "ok", "503", "drop", "429"))
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    stats = pinecone_srv.stats()
    pinecone_srv.clear_faults()
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_records(pg_records(pg_db, "docs"), pinecone_records(pinecone_srv, "docs-faults"))
    faults = stats["faults"]
    assert faults.get("429", 0) and faults.get("503", 0) and faults.get("drop", 0), faults
    # Requests the server accepted: every upsert carried distinct records, and all of them.
    accepted = stats["responses"]["upsert"].get("200", 0)
    assert stats["vectors_upserted"] == n, "each record written exactly once"
    # Packing: compare with the fewest requests the limits (1000 records, 2 MB) allow.
    p = PineconeProvider(StoreSpec(provider="pinecone", collection="docs-faults", pointer="/target",
                                   connection={"api_key": API_KEY, "host": pinecone_srv.url}))
    try:
        rows = pg_records(pg_db, "docs")
        with psycopg.connect(pg_db) as conn:
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM docs ORDER BY id")]
        batch = Batch(ids=ids, vectors=np.stack([np.frombuffer(rows[str(i)][0], np.float32) for i in ids]),
                      metadata=[json.loads(rows[str(i)][1]) for i in ids], texts=[rows[str(i)][2] for i in ids])
        _, sizes = p._prepare(batch)
    finally:
        p.close()
    minimum = packing.min_requests(sizes, overhead=packing.upsert_overhead(""))
    assert accepted <= minimum * 1.05, f"{accepted} upsert requests for {n} records; the limits allow {minimum}"
    print(f"\nfaults: {faults}; upserts accepted {accepted} for {n} records of {dim} dims, minimum {minimum} "
          f"({(accepted / minimum - 1) * 100:.1f}% over)")
    assert_no_secret(r.stdout, r.stderr, paths=(tmp_path / ".vecmig",))
