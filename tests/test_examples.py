"""Every example spec in plans/ is planned here; the embedded and file-backed ones are applied too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import psycopg

from tests.support.cli import ROOT, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for
from vecmig.providers import provider_class
from vecmig.records import Checksum
from vecmig.schemas import load as load_schema
from vecmig.spec_loader import load_spec


def copy_plans(dest: Path) -> Path:
    shutil.copytree(ROOT / "plans", dest / "plans")
    return dest / "plans"


def checksum(spec_path: Path, side: str, env: dict[str, str]) -> Checksum:
    spec = load_spec(spec_path, env=env)
    store = getattr(spec, side)
    total = Checksum()
    with provider_class(store.provider)(store) as p:
        for batch in p.scan(None, None, 1000):
            if side == "source":
                batch.metadata = [spec.mapping.apply(m) for m in batch.metadata]
            total.add_batch(batch)
    return total


def test_every_example_is_covered() -> None:
    names = {p.name for p in (ROOT / "plans").glob("*.yaml")}
    assert names == {"quickstart.yaml", "jsonl-to-pgvector.yaml", "pgvector-to-parquet.yaml",
                     "pgvector-blue-green.yaml"}


def test_quickstart_applies_replans_clean_and_rolls_back(server_tmpdir: Path) -> None:
    plans = copy_plans(server_tmpdir)
    spec = plans / "quickstart.yaml"
    r = vecmig("quickstart", str(spec), "--records", "1500")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete" in r.stdout and "cutover.alias" in r.stdout and "1,500 records match" in r.stdout
    assert "vecmig rollback" in r.stdout
    assert checksum(spec, "source", {}).to_json() == checksum(spec, "target", {}).to_json()
    r = vecmig("plan", str(spec), "--detailed-exitcode")
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    r = vecmig("plan", str(spec), "--json")
    body = json.loads(r.stdout)
    assert body["actions"][0]["kind"] == "create_collection"


def test_jsonl_to_pgvector_example(server_tmpdir: Path) -> None:
    plans = copy_plans(server_tmpdir)
    spec = plans / "jsonl-to-pgvector.yaml"
    r = vecmig("plan", str(spec), "--json")
    assert r.returncode == 0, r.stderr
    jsonschema.validate(json.loads(r.stdout), load_schema("plan.v1"))
    r = vecmig("apply", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert checksum(spec, "source", {}).to_json() == checksum(spec, "target", {}).to_json()
    assert checksum(spec, "target", {}).count == 400
    assert vecmig("rollback", str(spec), "--auto-approve").returncode == 0


def test_pgvector_to_parquet_example(pg_db: str, tmp_path: Path) -> None:
    plans = copy_plans(tmp_path)
    make_docs_table(pg_db, "docs", 3000, 24, id_type="text", seed=9)
    env = env_for(pg_db)
    spec = plans / "pgvector-to-parquet.yaml"
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / ".vecmig" / "export" / "docs.parquet"
    assert out.exists() and not (tmp_path / ".vecmig" / "export" / "docs.parquet.vecmig-parts").exists()
    import pyarrow.parquet as pq

    schema = pq.read_schema(out)
    assert str(schema.field("vector").type) == "fixed_size_list<element: float>[24]"
    assert checksum(spec, "source", env).to_json() == checksum(spec, "target", env).to_json()
    assert vecmig("plan", str(spec), "--detailed-exitcode", env=env).returncode == 0
    assert vecmig("rollback", str(spec), "--auto-approve", env=env).returncode == 0
    assert not out.exists()


def test_pgvector_blue_green_example(pg_db: str, tmp_path: Path) -> None:
    plans = copy_plans(tmp_path)
    make_docs_table(pg_db, "docs", 2000, 16, seed=4, index="hnsw")
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    env = env_for(pg_db)
    spec = plans / "pgvector-blue-green.yaml"
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    jsonschema.validate(body, load_schema("plan.v1"))
    assert [a["kind"] for a in body["actions"]] == ["create_collection", "copy_shard", "build_index",
                                                    "validate_completeness", "validate_queries", "cutover"]
    assert body["source"]["metric"] == "cosine"
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM docs_live").fetchone()[0] == 2000
    assert checksum(spec, "source", env).to_json() == checksum(spec, "target", env).to_json()
