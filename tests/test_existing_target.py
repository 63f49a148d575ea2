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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_existing_target_that_cannot_hold_the_records(pg_db: str, tmp_path: Path, case: str) -> None:
    ddl, code, words = CASES[case]
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(ddl)
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
