"""A pgvector target that already exists but cannot hold the records: found by `plan` (exit 1, an
error-level finding with a stable code, in the words the copy would fail with), refused by `apply`
before any state exists."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.cli_utils import vecmig
from tests.test_e2e_pgvector import env_for

SPEC = """\
version: 1
name: existing
source: {provider: jsonl, connection: {path: src.jsonl}}
target:
  provider: pgvector
  connection: {dsn: "${env:TARGET_DSN}"}
  collection: t
"""

CASES = {
    "metadata-without-columns": ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4), body text)",
                                 "VM140", "metadata field(s) a, s have no column in 't'"),
    "text-without-column": ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4), a bigint, s text)",
                            "VM141", "records carry text but 't' has no text column"),
    "a-view": ("CREATE TABLE base (id bigint PRIMARY KEY, embedding vector(4), body text, a bigint, s text); "
               "CREATE VIEW t AS SELECT * FROM base", "VM142", "'t' is a view; vecmig writes only to tables"),
    "no-unique-id": ("CREATE TABLE t (id bigint, embedding vector(4), body text, a bigint, s text)",
                     "VM143", "'t'.id has no primary key or unique index"),
    "not-null-column-never-filled": (
        "CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4), body text, a bigint, s text, "
        "owner text NOT NULL)", "VM145", "column 'owner' of 't' is NOT NULL without a default"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_existing_target_that_cannot_hold_the_records(pg_db: str, tmp_path: Path, case: str) -> None:
    ddl, code, words = CASES[case]
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        for statement in ddl.split("; "):
            conn.execute(statement)
    with (tmp_path / "src.jsonl").open("w") as f:
        for i in range(5):
            f.write(json.dumps({"id": i, "vector": [0.5, 0.5, 0.5, 0.5], "metadata": {"a": i, "s": "x"},
                                "text": f"doc {i}"}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert code in r.stdout and words in r.stdout, r.stdout
    assert "error-level lint finding(s)" in r.stderr and code in r.stderr, r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env, cwd=tmp_path)
    assert r.returncode == 1 and code in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / ".vecmig").exists(), "apply created state for a plan it refused"


def test_integer_id_column_refuses_string_ids_at_plan(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4), body text, a bigint, s text)")
    with (tmp_path / "src.jsonl").open("w") as f:
        for i in range(3):
            f.write(json.dumps({"id": f"doc-{i}", "vector": [0.5] * 4, "metadata": {"a": i, "s": "x"},
                                "text": "t"}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    r = vecmig("plan", str(spec), env=env_for(pg_db), cwd=tmp_path)
    assert r.returncode == 1 and "VM144" in r.stdout and "'doc-0'" in r.stdout, r.stdout + r.stderr


def test_a_policy_cannot_lower_a_finding_that_makes_apply_impossible(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE t (id bigint, embedding vector(4), body text, a bigint, s text)")
    (tmp_path / "src.jsonl").write_text(json.dumps({"id": 1, "vector": [0.5] * 4}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "policy: {warn: [VM143]}\n")
    r = vecmig("plan", str(spec), env=env_for(pg_db), cwd=tmp_path)
    assert r.returncode == 1 and "VM143" in r.stderr, r.stdout + r.stderr
