"""The record-level diff against ground truth, pgvector → pgvector (pushed down to the servers):
inserts, vector and metadata edits, deletes in the source, edits in the target (drift); apply
moves only the delta, then the plan is empty; rollback of a delta round restores the target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.cli import table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import big_bang_spec, env_for

N = 3000


def plan_json(spec: Path, env: dict[str, str]) -> dict[str, Any]:
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def edit_source(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        # +100 new ids, ~10 edited in place (5 vectors, 5 metadata), -5 deleted
        conn.execute("INSERT INTO docs (id, title, lang, year, score, published, tags, body, embedding) "
                     "SELECT id + 10000, title, lang, year, score, published, tags, body, embedding FROM docs "
                     "WHERE id <= 100")
        conn.execute("UPDATE docs SET embedding = embedding + embedding WHERE id IN (11, 1200, 1300, 2500, 2999)")
        conn.execute("UPDATE docs SET title = 'edited ' || id WHERE id IN (12, 13, 1500, 2600, 2700)")
        conn.execute("DELETE FROM docs WHERE id IN (20, 21, 1700, 2800, 2900)")


@pytest.fixture
def applied(pg_db: str, tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    make_docs_table(pg_db, "docs", N, 16)
    spec = big_bang_spec(tmp_path, batch=200, shard=1000)
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return spec, env, pg_db


def test_identical_tables_plan_no_changes(applied: tuple[Path, dict[str, str], str]) -> None:
    spec, env, _ = applied
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Records: +0 to add, ~0 to change, -0 to delete, {N:,} unchanged" in r.stdout
    body = plan_json(spec, env)
    assert body["records"] == {"add": 0, "change": 0, "delete": 0, "unchanged": N}
    assert body["diff"]["method"] == "server-hash"
    assert body["diff"]["drift"] == {"known": True, "records": 0}
    assert body["actions"] == []


def test_source_edits_counted_and_only_the_delta_moves(applied: tuple[Path, dict[str, str], str]) -> None:
    spec, env, dsn = applied
    edit_source(dsn)
    body = plan_json(spec, env)
    assert body["records"] == {"add": 100, "change": 10, "delete": 5, "unchanged": N - 15}
    copies = [a for a in body["actions"] if a["kind"] == "copy_shard"]
    listed = sorted(i for a in copies for i in a["params"].get("ids", []))
    edited = [11, 1200, 1300, 2500, 2999, 12, 13, 1500, 2600, 2700]
    # A shard of only new records is copied whole (a range scan beats fetching all by id).
    whole = [a for a in copies if "ids" not in a["params"]]
    assert all(a["records"]["unchanged"] == 0 for a in whole)
    assert listed + [10001 + i for i in range(sum(a["records"]["add"] for a in whole))] == sorted(
        [*edited, *range(10001, 10101)])
    assert sum(a["records"]["add"] for a in copies) == 100
    assert sum(a["records"]["change"] for a in copies) == 10
    for a in copies:  # descriptions are true: never "not in the target yet" for records that are there
        assert "not in the target yet" not in a["reason"]
        r = a["records"]
        assert f"{r['add'] + r['change'] + r['unchanged']:,} source records" in a["reason"]
    (prune,) = [a for a in body["actions"] if a["kind"] == "delete_extra"]
    assert sorted(prune["params"]["ids"]) == [20, 21, 1700, 2800, 2900]
    assert prune["records"] == {"add": 0, "change": 0, "delete": 5, "unchanged": 0}
    text = vecmig("plan", str(spec), env=env).stdout
    assert f"Records: +100 to add, ~10 to change, -5 to delete, {N - 15:,} unchanged" in text
    md = vecmig("plan", str(spec), "--format", "markdown", env=env).stdout
    assert f"Records: +100 to add, ~10 to change, -5 to delete, {N - 15:,} unchanged" in md

    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(dsn, "docs_v2") == table_rows(dsn, "docs")
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_in_place_edit_is_a_change_not_no_changes(applied: tuple[Path, dict[str, str], str]) -> None:
    """Count, min and max id stay the same: a fingerprint of those saw nothing."""
    spec, env, dsn = applied
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE docs SET body = body || '!' WHERE id = 1500")
    r = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"~1 to change, -0 to delete, {N - 1:,} unchanged" in r.stdout


def test_target_edits_are_drift(applied: tuple[Path, dict[str, str], str]) -> None:
    spec, env, dsn = applied
    edit_source(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE docs_v2 SET lang = 'xx' WHERE id IN (400, 1400)")
        conn.execute("DELETE FROM docs_v2 WHERE id = 2400")
    body = plan_json(spec, env)
    assert body["records"]["change"] == 12 and body["records"]["add"] == 101
    drift = body["diff"]["drift"]
    assert drift["known"] and drift["records"] + drift.get("both_sides", 0) == 3
    assert set(drift["examples"]) <= {400, 1400, 2400}
    text = vecmig("plan", str(spec), env=env).stdout
    assert "changed in the target outside vecmig" in text
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(dsn, "docs_v2") == table_rows(dsn, "docs")
    assert vecmig("plan", str(spec), "--detailed-exitcode", env=env).returncode == 0


def test_saved_plan_goes_stale_on_an_in_place_edit(applied: tuple[Path, dict[str, str], str]) -> None:
    spec, env, dsn = applied
    edit_source(dsn)
    out = spec.parent / "p.plan"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE docs SET title = 'late' WHERE id = 42")
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "stale" in (r.stdout + r.stderr), r.stdout + r.stderr


def test_rollback_of_a_delta_round_restores_the_target(applied: tuple[Path, dict[str, str], str]) -> None:
    spec, env, dsn = applied
    before = table_rows(dsn, "docs_v2")
    edit_source(dsn)
    assert vecmig("apply", str(spec), "--auto-approve", env=env).returncode == 0
    assert table_rows(dsn, "docs_v2") == table_rows(dsn, "docs")
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    del before  # round 1 created the table: rolling back everything drops it
