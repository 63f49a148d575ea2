"""Bad input through the real CLI: one line (what, where, how to fix), exit 1, no traceback, no state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, env_for

GOOD = """\
version: 1
name: cli-errors
source:
  provider: pgvector
  connection: {dsn: "${env:SOURCE_DSN}"}
  collection: docs
target:
  provider: pgvector
  connection: {dsn: "${env:TARGET_DSN}"}
  collection: docs_v2
"""

CASES = [
    ("typo", GOOD.replace("collection: docs\n", "colection: docs\n", 1), ":6:",
     "did you mean 'collection'"),
    ("provider", GOOD.replace("provider: pgvector", "provider: pgvectr", 1), ":4:", "did you mean 'pgvector'"),
    ("unset-env", GOOD.replace("SOURCE_DSN", "NOPE_NOT_SET"), ":5:", "export NOPE_NOT_SET="),
    ("yaml", GOOD.replace("collection: docs_v2", "collection: [docs_v2"), ":", "YAML"),
    ("identifier", GOOD.replace("collection: docs_v2", 'collection: "docs; drop table x"'), ":10:",
     "not a plain name"),
    ("type", GOOD + "strategy: {batch_size: many}\n", ":11:", "must be an integer"),
    ("missing", GOOD.replace("  provider: pgvector\n", "", 1), ":3:1:", "missing required key 'provider'"),
]


def write(tmp: Path, text: str) -> Path:
    p = tmp / "spec.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("name", "text", "where", "what"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_bad_spec_one_line_exit_1_no_state(tmp_path: Path, name: str, text: str, where: str, what: str,
                                           command: str) -> None:
    spec = write(tmp_path, text)
    env = {"SOURCE_DSN": f"postgresql://u:{SECRET}@127.0.0.1:1/x", "TARGET_DSN": f"postgresql://u:{SECRET}@h/x"}
    args = [command, str(spec)] + (["--auto-approve"] if command == "apply" else [])
    r = vecmig(*args, env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ") and "spec.yaml" in lines[0] and where in lines[0] and what in lines[0]
    assert "Traceback" not in r.stderr and SECRET not in r.stderr + r.stdout
    assert not (tmp_path / ".vecmig").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    spec = write(tmp_path, CASES[0][1])
    r = vecmig("--debug", "validate", str(spec))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_dimension_and_metric_mismatch_at_plan(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 20, 8, index="hnsw")
    env = env_for(pg_db)
    for extra, where, what in [
        ("  create: {dimension: 16}\n", "spec.yaml:11:", "target.create.dimension is 16 but the source vectors have 8"),
        ("  create: {metric: euclidean}\n", "spec.yaml:11:", "source is indexed for cosine"),
    ]:
        spec = write(tmp_path, GOOD + extra)
        for command in ("plan", "apply"):
            r = vecmig(command, str(spec), "--auto-approve", env=env) if command == "apply" else vecmig(
                command, str(spec), env=env)
            assert r.returncode == 1, r.stdout + r.stderr
            line = r.stderr.strip()
            assert "\n" not in line and where in line and what in line, line
            assert not (tmp_path / ".vecmig").exists()


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    spec = write(tmp_path, GOOD)
    env = {"SOURCE_DSN": f"postgresql://u:{SECRET}@127.0.0.1:1/x?connect_timeout=2",
           "TARGET_DSN": f"postgresql://u:{SECRET}@127.0.0.1:1/x?connect_timeout=2"}
    r = vecmig("plan", str(spec), env=env)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert SECRET not in r.stderr and "127.0.0.1:1" in r.stderr


def test_missing_source_table(pg_db: str, tmp_path: Path) -> None:
    spec = write(tmp_path, GOOD)
    r = vecmig("plan", str(spec), env=env_for(pg_db))
    assert r.returncode == 1 and "does not exist" in r.stderr and "spec.yaml:" in r.stderr


def test_cancelled_apply_changes_nothing(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 20, 8)
    spec = write(tmp_path, GOOD)
    r = vecmig("apply", str(spec), env=env_for(pg_db), input="no\n")
    assert r.returncode == 1 and "cancelled" in r.stderr
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env_for(pg_db))
    assert r.returncode == 2


def test_usage_error_exits_1(tmp_path: Path) -> None:
    r = vecmig("plan")
    assert r.returncode == 1
    r = vecmig("plan", str(write(tmp_path, GOOD)), "--no-such-flag")
    assert r.returncode == 1


