"""The record-level diff for every kind of pair against ground truth: files (read and hashed
here), pgvector with int ids into stores that keep string ids, Pinecone through the local
server with namespaces kept apart. Each: apply, edit (insert, vector edit, metadata edit,
delete), plan counts exactly, apply moves only the delta, and the next plan is empty."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pinecone import Pinecone

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.test_e2e_pinecone import (
    API_KEY,
    assert_same_records,
    jsonl_records,
    pg_records,
    pinecone_records,
    seed_pinecone,
)


def plan_body(spec: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def apply_ok(spec: Path, env: dict[str, str] | None = None) -> None:
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def settled(spec: Path, env: dict[str, str] | None = None) -> None:
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def sample_records(n: int, dim: int = 8, seed: int = 0, str_ids: bool = False) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    return [{"id": f"doc-{i}" if str_ids else i, "vector": [float(x) for x in vecs[i]],
             "metadata": {"lang": ["en", "de"][i % 2], "n": i}, "text": f"text {i}"} for i in range(n)]


def edit(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """+3 new, 1 vector edit, 1 metadata edit, 1 text edit, -2 deleted."""
    out = [dict(r) for r in records]
    out[10] = {**out[10], "vector": [v * 2 for v in out[10]["vector"]]}
    out[20] = {**out[20], "metadata": {**out[20]["metadata"], "lang": "fr"}}
    out[30] = {**out[30], "text": "rewritten"}
    del out[40:42]
    base = records[0]["id"]
    for k in range(3):
        new = dict(records[0])
        new["id"] = f"new-{k}" if isinstance(base, str) else 100_000 + k
        out.append(new)
    return out


EXPECTED = {"add": 3, "change": 3, "delete": 2}


def check_counts(body: dict[str, Any], total: int) -> None:
    assert body["records"] == {**EXPECTED, "unchanged": total - 5}, body["records"]
    actions = body["actions"]
    assert sum(a["records"]["add"] for a in actions if a["kind"] == "copy_shard") == 3
    assert sum(a["records"]["change"] for a in actions if a["kind"] == "copy_shard") == 3
    assert sum(a["records"]["delete"] for a in actions if a["kind"] == "delete_extra") == 2


def test_jsonl_to_jsonl(tmp_path: Path) -> None:
    recs = sample_records(600)
    write_jsonl(tmp_path / "src.jsonl", recs)
    spec = write_spec(tmp_path, """
        version: 1
        name: files
        source: {provider: jsonl, connection: {path: src.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        strategy: {shard_size: 1000}
        """)
    apply_ok(spec)
    settled(spec)
    write_jsonl(tmp_path / "src.jsonl", edit(recs))
    body = plan_body(spec)
    check_counts(body, 600)
    assert body["diff"]["method"] == "scan"
    apply_ok(spec)
    assert jsonl_records(tmp_path / "out.jsonl") == jsonl_records(tmp_path / "src.jsonl")
    settled(spec)
    # Drift: the target file edited by hand.
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    out[5]["metadata"]["lang"] = "zz"
    write_jsonl(tmp_path / "out.jsonl", out)
    body = plan_body(spec)
    assert body["records"]["change"] == 1
    assert body["diff"]["drift"]["known"] and body["diff"]["drift"]["records"] == 1
    assert body["diff"]["drift"]["examples"] == [out[5]["id"]]


def test_parquet_to_jsonl(tmp_path: Path) -> None:
    recs = sample_records(500, str_ids=True)

    def write_parquet(rows: list[dict[str, Any]]) -> None:
        table = pa.table({"id": [r["id"] for r in rows],
                          "vector": pa.array([r["vector"] for r in rows], type=pa.list_(pa.float32(), 8)),
                          "text": [r["text"] for r in rows],
                          "lang": [r["metadata"]["lang"] for r in rows], "n": [r["metadata"]["n"] for r in rows]})
        pq.write_table(table, tmp_path / "src.parquet")

    write_parquet(recs)
    spec = write_spec(tmp_path, """
        version: 1
        name: pq
        source: {provider: parquet, connection: {path: src.parquet}, fields: {metadata: [lang, n]}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        """)
    apply_ok(spec)
    settled(spec)
    write_parquet(edit(recs))
    check_counts(plan_body(spec), 500)
    apply_ok(spec)
    settled(spec)


def test_pgvector_int_ids_into_jsonl_and_back(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 1200, 8)
    spec = write_spec(tmp_path, """
        version: 1
        name: pg-out
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        strategy: {shard_size: 1000}
        """)
    env = env_for(pg_db)
    apply_ok(spec, env)
    settled(spec, env)
    with psycopg.connect(pg_db) as conn:
        conn.execute("UPDATE docs SET embedding = embedding + embedding WHERE id = 5")
        conn.execute("UPDATE docs SET year = 1800 WHERE id = 1100")
        conn.execute("UPDATE docs SET body = 'x' WHERE id = 600")
        conn.execute("DELETE FROM docs WHERE id IN (7, 1150)")
        conn.execute("INSERT INTO docs (id, title, lang, year, score, published, tags, body, embedding) "
                     "SELECT id + 5000, title, lang, year, score, published, tags, body, embedding FROM docs "
                     "WHERE id <= 3")
    check_counts(plan_body(spec, env), 1200)
    apply_ok(spec, env)
    assert jsonl_records(tmp_path / "out.jsonl") == pg_records(pg_db, "docs")
    settled(spec, env)


# ---- Pinecone (local server, real SDK) ------------------------------------------------------------


def block(pinecone_srv: SpawnedPineconeLocal, index: str, extra: str = "") -> str:
    return (f'{{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{pinecone_srv.url}"}}, '
            f"collection: {index}{extra}}}")


def test_pgvector_int_ids_into_pinecone_string_ids(pg_db: str,
                                                   pinecone_srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 800, 8)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pg-pc
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {block(pinecone_srv, "docs-diff")}
        """)
    env = {**env_for(pg_db), "PINECONE_API_KEY": API_KEY}
    apply_ok(spec, env)
    body = plan_body(spec, env)
    assert body["records"] == {"add": 0, "change": 0, "delete": 0, "unchanged": 800}, body["records"]
    assert body["diff"]["method"] == "scan" and body["diff"]["cost"], body["diff"]  # the reads are billed
    with psycopg.connect(pg_db) as conn:
        conn.execute("UPDATE docs SET embedding = embedding + embedding WHERE id = 5")
        conn.execute("UPDATE docs SET title = 'new' WHERE id = 6")
        conn.execute("UPDATE docs SET body = 'b' WHERE id = 8")
        conn.execute("DELETE FROM docs WHERE id IN (9, 10)")
        conn.execute("INSERT INTO docs (id, title, lang, year, score, published, tags, body, embedding) "
                     "SELECT id + 5000, title, lang, year, score, published, tags, body, embedding FROM docs "
                     "WHERE id <= 3")
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:  # drift: edited in the target directly
        pc.Index(host=pc.describe_index("docs-diff").host).update(id="700", set_metadata={"lang": "zz"})
    body = plan_body(spec, env)
    assert body["records"] == {"add": 3, "change": 4, "delete": 2, "unchanged": 800 - 6}, body["records"]
    assert body["diff"]["drift"]["records"] == 1 and body["diff"]["drift"]["examples"] == [700]
    apply_ok(spec, env)
    assert_same_records(pg_records(pg_db, "docs"), pinecone_records(pinecone_srv, "docs-diff"))
    settled(spec, env)


def test_pinecone_namespaces_kept_apart(pinecone_srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    """The same ids live in two namespaces: an edit or a delete in one is not one in the other."""
    seed_pinecone(pinecone_srv, "src-ns", 300, 8, namespaces=("a", "b"), seed=3)
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        idx = pc.Index(host=pc.describe_index("src-ns").host)
        fetched = idx.fetch(ids=["doc-000001"], namespace="a").vectors["doc-000001"]
        idx.upsert(vectors=[{"id": "doc-000001", "values": list(fetched.values), "metadata": {"k": "b-copy"}}],
                   namespace="b")  # now "doc-000001" is in both namespaces, with other metadata
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-ns
        source: {block(pinecone_srv, "src-ns", ", namespace: '*'")}
        target: {block(pinecone_srv, "dst-ns", ", namespace: '*'")}
        """)
    env = {"PINECONE_API_KEY": API_KEY}
    apply_ok(spec, env)
    settled(spec, env)
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        idx = pc.Index(host=pc.describe_index("src-ns").host)
        idx.update(id="doc-000001", set_metadata={"k": "changed in b"}, namespace="b")
        idx.delete(ids=["doc-000001"], namespace="a")
    body = plan_body(spec, env)
    assert body["records"] == {"add": 0, "change": 1, "delete": 1, "unchanged": 299}, body["records"]
    (prune,) = [a for a in body["actions"] if a["kind"] == "delete_extra"]
    assert prune["params"]["ids"] == [["a", "doc-000001"]]
    apply_ok(spec, env)
    assert_same_records(pinecone_records(pinecone_srv, "src-ns"), pinecone_records(pinecone_srv, "dst-ns"))
    settled(spec, env)
