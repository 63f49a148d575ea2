"""The row-version shortcut of the record-level diff (vecmig.diff.versions), pgvector → pgvector:
it finds exactly what the full diff finds after every kind of edit, tells drift bucket by
bucket, and a validation records the baseline it needs and, in a delta round, hashes only the
buckets that were written."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import big_bang_spec, env_for
from vecmig.diff import RecordDiff, diff_records
from vecmig.diff.baseline import last_baseline, last_versions
from vecmig.diff.versions import VersionBaseline
from vecmig.refresh import refresh
from vecmig.spec_loader import load_spec
from vecmig.state.store import StateStore

N = 3000
COLS = "id, embedding, title, lang, year, score, published, tags, body"


@dataclass
class Applied:
    spec: Path
    env: dict[str, str]
    dsn: str
    db: Path


@pytest.fixture
def applied(pg_db: str, tmp_path: Path) -> Iterator[Applied]:
    make_docs_table(pg_db, "docs", N, 16)
    spec = big_bang_spec(tmp_path, batch=200, shard=1000)
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    yield Applied(spec, env, pg_db, tmp_path / ".vecmig" / "e2e.db")


def sql_run(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s)  # type: ignore[arg-type]


def results(db: Path, kind: str = "validate_completeness") -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT result_json FROM actions WHERE kind = ? AND status = 'done' ORDER BY round",
                            (kind,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def both_diffs(a: Applied) -> tuple[RecordDiff, RecordDiff]:
    """The diff with the shortcut, and the full diff forced (no versions to compare with)."""
    spec = load_spec(a.spec, env=a.env)
    state = StateStore.open(spec.name, a.db, None, create=False)
    assert state is not None
    drift_base, versions = last_baseline(state), last_versions(state)
    assert versions is not None and "versions" in versions
    shards = list(refresh(spec, records=False).shards)
    fast = diff_records(spec, shards, drift_base, versions_baseline=versions)
    plain = {k: v for k, v in drift_base.items() if k != "versions"} if drift_base else None
    full = diff_records(spec, shards, plain)
    assert "buckets_hashed" not in full.reads
    return fast, full


def same_result(fast: RecordDiff, full: RecordDiff) -> None:
    assert fast.method == full.method == "server-hash"
    assert [s.counts for s in fast.shards] == [s.counts for s in full.shards]
    for f, g in zip(fast.shards, full.shards, strict=True):
        assert (sorted(f.ids) if f.ids is not None else None) == (sorted(g.ids) if g.ids is not None else None)
    assert sorted(fast.delete_ids or ()) == sorted(full.delete_ids or ())
    assert fast.delete_count == full.delete_count
    assert (fast.source_records, fast.target_records) == (full.source_records, full.target_records)
    # The content digests (plan staleness) and the target's bucket sums are the same values.
    assert (fast.source_digest, fast.target_digest) == (full.source_digest, full.target_digest)
    assert fast.buckets == full.buckets


def shortcut_used(d: RecordDiff) -> bool:
    return "buckets_hashed" in d.reads


EDITS: dict[str, tuple[str, ...]] = {
    "insert": (f"INSERT INTO docs ({COLS}) SELECT id + 50000, embedding, title, lang, year, score, published, tags, "
               "body FROM docs WHERE id <= 30",),
    "update_vector": ("UPDATE docs SET embedding = embedding + embedding WHERE id IN (5, 777, 2999)",),
    "update_metadata": ("UPDATE docs SET title = 'edited', tags = '{a,b}' WHERE id IN (6, 800, 1500)",),
    "update_text": ("UPDATE docs SET body = body || ' (edited)' WHERE id IN (7, 900)",),
    "delete": ("DELETE FROM docs WHERE id IN (8, 1000, 1600)",),
    # Same content under new row versions: hashed again, found equal.
    "delete_reinsert_same": ("CREATE TABLE keep AS SELECT * FROM docs WHERE id IN (9, 1100)",
                             "DELETE FROM docs WHERE id IN (9, 1100)",
                             "INSERT INTO docs SELECT * FROM keep", "DROP TABLE keep"),
    "noop_update": ("UPDATE docs SET title = title WHERE id BETWEEN 100 AND 140",),
    "target_outside_vecmig": ("UPDATE docs_v2 SET lang = 'xx' WHERE id IN (10, 1200)",
                              "DELETE FROM docs_v2 WHERE id = 1300",
                              f"INSERT INTO docs_v2 ({COLS}) SELECT id + 90000, embedding, title, lang, year, score, "
                              "published, tags, body FROM docs WHERE id = 11"),
}


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_shortcut_equals_the_full_diff(applied: Applied, kind: str) -> None:
    sql_run(applied.dsn, *EDITS[kind])
    fast, full = both_diffs(applied)
    assert shortcut_used(fast)
    same_result(fast, full)
    assert 0 < fast.reads["buckets_hashed"] < fast.reads["buckets"] // 10
    assert fast.reads["source_rows_hashed"] < N // 10


def test_random_edits_equal_the_full_diff(applied: Applied) -> None:
    rng = np.random.default_rng(7)
    ids = rng.choice(np.arange(1, N + 1), size=120, replace=False).tolist()
    vec, meta, text, gone = ids[:30], ids[30:60], ids[60:90], ids[90:]
    sql_run(applied.dsn,
            f"UPDATE docs SET embedding = embedding + embedding WHERE id = ANY(ARRAY{vec}::bigint[])",
            f"UPDATE docs SET year = year + 1 WHERE id = ANY(ARRAY{meta}::bigint[])",
            f"UPDATE docs SET body = coalesce(body, '') || '!' WHERE id = ANY(ARRAY{text}::bigint[])",
            f"DELETE FROM docs WHERE id = ANY(ARRAY{gone}::bigint[])",
            f"INSERT INTO docs ({COLS}) SELECT id + 70000, embedding, title, lang, year, score, published, tags, "
            "body FROM docs WHERE id % 97 = 3")
    fast, full = both_diffs(applied)
    assert shortcut_used(fast)
    same_result(fast, full)
    # year + 1 leaves a NULL year as it was: not every metadata edit is a change.
    assert 60 <= fast.counts.change <= 90 and fast.counts.delete == 30 and fast.counts.add > 20


@pytest.mark.parametrize("rewrite", ["VACUUM FULL docs", "CLUSTER docs USING docs_pkey", "VACUUM FREEZE docs"])
def test_rewrites_keep_the_result(applied: Applied, rewrite: str) -> None:
    """VACUUM FULL and CLUSTER keep xmin but move rows (new relfilenode): the shortcut is not
    used, the full diff decides. VACUUM FREEZE keeps the raw xmin: nothing moved."""
    sql_run(applied.dsn, "UPDATE docs SET title = 'before rewrite' WHERE id = 42", rewrite)
    fast, full = both_diffs(applied)
    same_result(fast, full)
    assert fast.counts.change == 1
    assert shortcut_used(fast) == (rewrite == "VACUUM FREEZE docs")


def test_truncate_and_reload_is_not_taken_for_unchanged(applied: Applied) -> None:
    sql_run(applied.dsn, "CREATE TABLE keep AS SELECT * FROM docs",
            "UPDATE keep SET title = 'reloaded' WHERE id IN (3, 1400)",
            "TRUNCATE docs", "INSERT INTO docs SELECT * FROM keep", "DROP TABLE keep")
    fast, full = both_diffs(applied)
    assert not shortcut_used(fast)  # a new relfilenode: the versions are not comparable
    same_result(fast, full)
    assert fast.counts.change == 2 and fast.counts.unchanged == N - 2


def test_drift_is_exact_by_bucket(applied: Applied) -> None:
    sql_run(applied.dsn, "UPDATE docs SET title = 'source edit' WHERE id IN (20, 1020)",
            "UPDATE docs_v2 SET title = 'target edit' WHERE id IN (30, 1030, 1530)")
    fast, full = both_diffs(applied)
    same_result(fast, full)
    assert fast.counts.change == 5
    with psycopg.connect(applied.dsn) as conn:
        n = fast.reads["buckets"]
        got = conn.execute(f"SELECT id, hashtextextended(id::text, 0) & {n - 1} FROM docs "
                           "WHERE id IN (20, 1020, 30, 1030, 1530)").fetchall()
    bucket = dict(got)
    source_buckets = {bucket[20], bucket[1020]}
    target_only = [i for i in (30, 1030, 1530) if bucket[i] not in source_buckets]
    assert fast.drift.known
    assert fast.drift.records == len(target_only)
    assert sorted(fast.drift.examples) == sorted(target_only)
    assert fast.drift.both == 3 - len(target_only)


def test_validation_records_the_versions_baseline(applied: Applied) -> None:
    (first,) = results(applied.db)
    assert first["ok"] and first["method"] == "server-digest"
    acc = first["versions"]
    assert acc["baseline"] is False and acc["hashed_buckets"] == acc["buckets"] == 1024
    assert acc["rows_hashed"] == {"source": N, "target": N}
    base = VersionBaseline.from_json(first["baseline"]["versions"])
    assert base is not None and base.buckets == 1024 and not base.unequal
    assert base.source_scheme != base.target_scheme  # two relations
    assert int((base.source != base.target).sum()) > 900  # other xmins on the target side
    # The 1024-bucket digests drift compares are the versions' digests folded.
    folded = np.zeros(1024, dtype=np.uint64)
    np.add.at(folded, np.arange(1024), base.digests)
    assert first["baseline"]["buckets"] == "".join(f"{int(v):016x}" for v in folded)


def test_delta_round_validation_hashes_only_written_buckets(applied: Applied) -> None:
    sql_run(applied.dsn, "UPDATE docs SET title = 'delta' WHERE id IN (50, 650, 1250)",
            "DELETE FROM docs WHERE id = 2900",
            f"INSERT INTO docs ({COLS}) SELECT 60000, embedding, title, lang, year, score, published, tags, body "
            "FROM docs WHERE id = 1")
    r = vecmig("apply", str(applied.spec), "--auto-approve", env=applied.env)
    assert r.returncode == 0, r.stdout + r.stderr
    _, second = results(applied.db)
    acc = second["versions"]
    assert second["ok"] and acc["baseline"] is True
    # Five records written on each side: at most five buckets moved, a few dozen rows hashed.
    assert 1 <= acc["hashed_buckets"] <= 5
    assert acc["rows_hashed"]["source"] <= 5 * 10 and acc["rows_hashed"]["target"] <= 5 * 10
    assert second["source"] == second["target"]
    # The next plan compares versions only: nothing moved since that validation.
    r = vecmig("plan", str(applied.spec), "--json", "--detailed-exitcode", env=applied.env)
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(r.stdout)
    assert body["diff"]["reads"]["buckets_hashed"] == 0 and body["diff"]["reads"]["source_rows_hashed"] == 0
    assert body["diff"]["drift"] == {"known": True, "records": 0}


def test_delta_validation_catches_a_target_write_between_copy_and_validate(
        applied: Applied, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write to the target after vecmig copied it moves that bucket's versions: the
    shortcut validation hashes it and fails naming the id, as the full one would."""
    from vecmig.actions import KINDS, RunContext
    from vecmig.errors import ValidationFailed
    from vecmig.model import Plan

    spec = load_spec(applied.spec, env=applied.env)
    state = StateStore.open(spec.name, applied.db, None, create=False)
    assert state is not None
    plan = Plan.from_json(json.loads(state.rounds()[-1]["plan_json"]))
    check = next(x for x in plan.actions if x.kind == "validate_completeness")
    sql_run(applied.dsn, "UPDATE docs_v2 SET title = 'tampered' WHERE id = 1234",
            "DELETE FROM docs_v2 WHERE id = 321")
    with pytest.raises(ValidationFailed) as caught:
        KINDS["validate_completeness"].run(RunContext(spec=spec, state=state, round=2), check)
    found = caught.value.result
    assert found is not None and found["versions"]["baseline"] is True
    assert found["versions"]["hashed_buckets"] <= 2
    assert sum(s["missing"] for s in found["shards"]) == 1 and sum(s["different"] for s in found["shards"]) == 1
    named = [i for s in found["shards"] for i in (*s.get("missing_ids", []), *s.get("different_ids", []))]
    assert sorted(named) == [321, 1234]


def _validate_now(a: Applied) -> dict[str, Any]:
    """The round's validate action run again in-process (round 2: the baseline of round 1 is the one before it)."""
    from vecmig.actions import KINDS, RunContext
    from vecmig.model import Plan

    spec = load_spec(a.spec, env=a.env)
    state = StateStore.open(spec.name, a.db, None, create=False)
    assert state is not None
    plan = Plan.from_json(json.loads(state.rounds()[-1]["plan_json"]))
    check = next(x for x in plan.actions if x.kind == "validate_completeness")
    return KINDS["validate_completeness"].run(RunContext(spec=spec, state=state, round=2), check)


def test_a_bucket_only_the_servers_see_differ_stays_hashed(applied: Applied) -> None:
    """NULL and '' text are one record to the record check, not to the servers: validation
    passes, and the baseline marks the bucket unequal, so the shortcut keeps hashing it and
    reports the record as the full diff does."""
    sql_run(applied.dsn, "UPDATE docs SET body = NULL WHERE id = 77", "UPDATE docs_v2 SET body = '' WHERE id = 77")
    first = _validate_now(applied)
    assert first["ok"] and first["versions"]["baseline"] is True
    base = VersionBaseline.from_json(first["baseline"]["versions"])
    assert base is not None and len(base.unequal) == 1
    spec = load_spec(applied.spec, env=applied.env)
    shards = list(refresh(spec, records=False).shards)
    fast = diff_records(spec, shards, first["baseline"], versions_baseline=first["baseline"])
    full = diff_records(spec, shards, None)
    assert shortcut_used(fast) and fast.reads["buckets_hashed"] == 1
    same_result(fast, full)
    assert fast.counts.change == 1


def test_text_ids(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", N, 16, id_type="text")
    spec = big_bang_spec(tmp_path, batch=200, shard=1000)
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    a = Applied(spec, env, pg_db, tmp_path / ".vecmig" / "e2e.db")
    sql_run(pg_db, "UPDATE docs SET title = 'x' WHERE id IN ('doc-5', 'doc-1500')",
            "DELETE FROM docs WHERE id = 'doc-2000'",
            f"INSERT INTO docs ({COLS}) SELECT 'new-' || id, embedding, title, lang, year, score, published, tags, "
            "body FROM docs WHERE id IN ('doc-1', 'doc-2')")
    fast, full = both_diffs(a)
    assert shortcut_used(fast)
    same_result(fast, full)
    assert (fast.counts.add, fast.counts.change, fast.counts.delete) == (2, 2, 1)


def test_source_without_an_index_on_the_id(applied: Applied) -> None:
    """Listing picks ids from the primary key where there is one; without, one filtered pass."""
    sql_run(applied.dsn, "ALTER TABLE docs DROP CONSTRAINT docs_pkey",
            "UPDATE docs SET title = 'no index' WHERE id IN (15, 1515, 2515)", "DELETE FROM docs WHERE id = 16")
    fast, full = both_diffs(applied)
    assert shortcut_used(fast)
    same_result(fast, full)
    assert (fast.counts.change, fast.counts.delete) == (3, 1)
