"""The completeness validation's server-side fast path (pgvector → pgvector digests).

One real identity apply through the CLI (module fixture) gives a source, a target and the
plan's validate action; each tampering test copies that target, changes one thing in the
copy and validates against it in-process, so it can see how every shard was decided.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support.cli import vecmig
from tests.support.data import make_docs_table, pg_store
from tests.support.specs import big_bang_spec, env_for
from vecmig.actions import KINDS, RunContext
from vecmig.actions import validate_completeness as vc
from vecmig.errors import ValidationFailed
from vecmig.model import Action, Plan
from vecmig.providers.pgvector import PgvectorProvider, digest
from vecmig.spec_loader import load_spec
from vecmig.state.store import StateStore

N = 3000  # ids 1..3000; shard_size 1000 cuts them at 1001 and 2001
NULL_ROWS = (7, 8, 9)
_CHECK_SHARD = vc._check_shard


@dataclass
class Applied:
    dsn: str
    tmp: Path
    env: dict[str, str]
    result: dict[str, Any]  # the stored validate_completeness result of the real apply
    check: Action  # the plan's validate action


def _stored_result(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        (res,) = conn.execute("SELECT result_json FROM actions WHERE kind = 'validate_completeness'").fetchone()
    return json.loads(res)


@pytest.fixture(scope="module")
def applied(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    name = f"digest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg.url(name)
    try:
        make_docs_table(dsn, "docs", N, 16)
        with psycopg.connect(dsn) as conn:
            # NULLs of every kind: a row with nothing but id and vector, a NULL text, arrays
            # that are empty or hold a NULL.
            conn.execute("UPDATE docs SET title = NULL, lang = NULL, year = NULL, score = NULL, "
                         "published = NULL, tags = NULL, body = NULL WHERE id = 7")
            conn.execute("UPDATE docs SET body = NULL, tags = '{}' WHERE id = 8")
            conn.execute("UPDATE docs SET tags = '{NULL,x}' WHERE id = 9")
        tmp = tmp_path_factory.mktemp("digest")
        spec = big_bang_spec(tmp, batch=200, shard=1000)
        env = env_for(dsn)
        r = vecmig("apply", str(spec), "--auto-approve", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        db = tmp / ".vecmig" / "e2e.db"
        state = StateStore.open("e2e", db, None, create=False)
        assert state is not None
        plan = Plan.from_json(json.loads(state.rounds()[-1]["plan_json"]))
        check = next(a for a in plan.actions if a.kind == "validate_completeness")
        yield Applied(dsn, tmp, env, _stored_result(db), check)
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _copy_target(dsn: str, name: str, *statements: str) -> None:
    """A fresh copy of the applied target as ``name``, then ``statements`` (``{t}`` = the copy)."""
    with psycopg.connect(dsn) as conn:
        t = sql.Identifier(name)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE docs_v2 INCLUDING ALL)").format(t))
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM docs_v2").format(t))
        for stmt in statements:
            conn.execute(sql.SQL(stmt).format(t=t))


def _validate(applied: Applied, tmp: Path, target: str,
              monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any] | None, str | None, list[Any]]:
    """Run the plan's validate action against ``target``: (result or None, failure message,
    per-shard outcomes in shard order)."""
    spec = load_spec(big_bang_spec(tmp, target=target, batch=200, shard=1000), env=applied.env)
    state = StateStore.open(spec.name, tmp / "state.db", None, create=True)
    assert state is not None
    outcomes: dict[int, Any] = {}
    real = _CHECK_SHARD
    shards = applied.check.params["shards"]

    def spy(ctx: RunContext, action: Action, shard: dict[str, Any] | None, *args: Any) -> Any:
        out = real(ctx, action, shard, *args)
        outcomes[shards.index(shard)] = out
        return out

    monkeypatch.setattr(vc, "_check_shard", spy)
    try:
        result = KINDS["validate_completeness"].run(RunContext(spec=spec, state=state, round=1), applied.check)
    except ValidationFailed as e:
        return None, e.message, [outcomes[i] for i in sorted(outcomes)]
    return result, None, [outcomes[i] for i in sorted(outcomes)]


# ---- the fast path on a real apply ---------------------------------------------------------------


def test_identity_apply_is_validated_by_server_digests(applied: Applied, tmp_path: Path) -> None:
    res = applied.result
    assert len(res["shards"]) == 3
    assert res["ok"] is True and res["method"] == "server-digest"
    assert res["digest_scheme"].startswith(digest.ALGORITHM + " ")
    assert "server_digest_skipped" not in res
    for s in res["shards"]:
        assert s["method"] == "server-digest" and "fallback" not in s
        assert s["source"] == s["target"] and s["source"]["count"] > 0
    assert res["source"] == res["target"] and res["source"]["count"] == N == res["target_count"]
    # The NULL rows went through the fast path too (they are in shard 0, which agreed).
    with psycopg.connect(applied.dsn) as conn:
        nulls = conn.execute("SELECT count(*) FROM docs_v2 WHERE id = ANY(%s) AND body IS NULL",
                             (list(NULL_ROWS),)).fetchone()[0]
    assert nulls == 2
    # The recorded result still satisfies the auditors' tools.
    spec = applied.tmp / "spec.yaml"
    r = vecmig("state", "verify", str(spec), env=applied.env)
    assert r.returncode == 0, r.stdout + r.stderr
    import jsonschema

    from vecmig.schemas import load as load_schema

    out = tmp_path / "export.json"
    r = vecmig("state", "export", str(spec), "-o", str(out), env=applied.env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, load_schema("state-export.v1"))
    exported = next(a for a in doc["actions"] if a["kind"] == "validate_completeness")
    assert exported["result"]["method"] == "server-digest"


def test_shard_digest_is_the_md5_sum_of_the_row_bytes(applied: Applied) -> None:
    """The recorded digest can be recomputed from its definition, shard by shard."""
    store = pg_store(applied.dsn, "docs_v2", pointer="/target")
    with PgvectorProvider(store) as p:
        d = p.server_digest()
        layout = p.layout()
        total = (0, 0)
        for i, shard in enumerate(applied.check.params["shards"]):
            count, value = d.shard(shard)
            q = sql.SQL("SELECT {} FROM docs_v2 AS t WHERE {}").format(
                digest.row_bytes(layout), digest.shard_where(p, layout, shard))
            with p.transaction() as cur:
                rows = [bytes(r[0]) for r in cur.execute(q).fetchall()]
            expect = sum(int.from_bytes(hashlib.md5(b).digest(), "big") for b in rows) % 2**128
            assert (count, value) == (len(rows), expect)
            assert {"count": count, "sum": f"{value:032x}"} == applied.result["shards"][i]["target"]
            total = (total[0] + count, (total[1] + value) % 2**128)
        assert d.shard(None) == total == (N, int(applied.result["target"]["sum"], 16))


def test_text_id_shards_cover_the_same_rows_as_scan(pg_db: str) -> None:
    make_docs_table(pg_db, "tdocs", 700, 8, id_type="text")
    with PgvectorProvider(pg_store(pg_db, "tdocs")) as p:
        shards = p.shards(p.inventory(), 200)
        assert len(shards) == 4
        d = p.server_digest()
        for shard in shards:
            assert d.shard(shard)[0] == sum(len(b) for b in p.scan(shard, None, 64))
        assert sum(d.shard(s)[0] for s in shards) == d.shard(None)[0] == 700


# ---- every difference is caught, and named through the fallback ----------------------------------

TAMPER = {
    # one float of one vector, slightly
    "vector": ("UPDATE {t} SET embedding = (SELECT array_agg(CASE WHEN o = 5 THEN v + 0.001 ELSE v END ORDER BY o) "
               "FROM unnest(embedding::real[]) WITH ORDINALITY AS u(v, o))::vector WHERE id = 1620", 1620, 1),
    "metadata": ("UPDATE {t} SET year = coalesce(year, 2000) + 1 WHERE id = 2234", 2234, 2),
    "text": ("UPDATE {t} SET body = coalesce(body, '') || '.' WHERE id = 17", 17, 0),
    "metadata_to_null": ("UPDATE {t} SET score = NULL WHERE id = 1900 AND score IS NOT NULL", 1900, 1),
    "null_to_metadata": ("UPDATE {t} SET lang = 'xx' WHERE id = 7", 7, 0),
    "null_to_text": ("UPDATE {t} SET body = 'now there is text' WHERE id = 8", 8, 0),
    "null_in_array": ("UPDATE {t} SET tags = '{{x}}' WHERE id = 9", 9, 0),
    "deleted": ("DELETE FROM {t} WHERE id = 2111", 2111, 2),
    "extra": ("INSERT INTO {t} SELECT 99999, embedding, title, lang, year, score, published, tags, body "
              "FROM {t} WHERE id = 5", 99999, 2),
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_each_difference_is_detected_and_named(applied: Applied, tmp_path: Path, kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    stmt, rid, shard_no = TAMPER[kind]
    table = f"t_{kind}"
    _copy_target(applied.dsn, table, stmt)
    with psycopg.connect(applied.dsn) as conn:  # the tampering really changed the copy
        changed = conn.execute(sql.SQL("SELECT count(*) FROM (SELECT * FROM {} EXCEPT SELECT * FROM docs_v2) x")
                               .format(sql.Identifier(table))).fetchone()[0]
        assert changed == (0 if kind == "deleted" else 1)
    result, message, outcomes = _validate(applied, tmp_path, table, monkeypatch)
    assert result is None and message is not None, "the difference went unnoticed"
    assert str(rid) in message
    if kind == "deleted":
        assert f"shard {shard_no}: 1 missing (ids {rid})" in message
    elif kind == "extra":
        assert f"target has 1 records not in the source (ids {rid})" in message
    else:
        assert f"shard {shard_no}: 1 different (ids {rid})" in message
    # The servers' digests found the shard; the record-by-record check named the id; the
    # other shards were decided by the digests alone.
    for i, o in enumerate(outcomes):
        if i == shard_no:
            assert o.method == "records" and o.fallback == "server digests differ"
            assert o.server is not None and o.server[0].to_json() != o.server[1].to_json()
        else:
            assert o.method == "server-digest" and o.fallback is None


def test_a_difference_only_the_server_sees_passes_through_the_fallback(
        applied: Applied, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NULL text and '' are the same record to the record-by-record check (as in every other
    store), not to the server's bytes: the shard takes the slow path, which passes it."""
    _copy_target(applied.dsn, "t_empty_text", "UPDATE {t} SET body = '' WHERE id = 7")
    result, message, _ = _validate(applied, tmp_path, "t_empty_text", monkeypatch)
    assert message is None and result is not None and result["ok"] is True
    assert result["method"] == "mixed"
    first = result["shards"][0]
    assert first["method"] == "records" and first["fallback"] == "server digests differ"
    assert first["source"] == first["target"]  # Python's checksums agree…
    assert first["server_digest"]["source"] != first["server_digest"]["target"]  # …the servers' did not
    assert [s["method"] for s in result["shards"][1:]] == ["server-digest", "server-digest"]
    assert result["source"] == result["target"]


# ---- when the fast path does not apply ----------------------------------------------------------


def test_mapping_that_is_not_identity_uses_the_record_path(applied: Applied, tmp_path: Path) -> None:
    spec = big_bang_spec(tmp_path, target="docs_renamed", batch=200, shard=1000,
                         extra="mapping: {metadata: {rename: {title: heading}}}")
    r = vecmig("apply", str(spec), "--auto-approve", env=applied.env)
    assert r.returncode == 0, r.stdout + r.stderr
    res = _stored_result(tmp_path / ".vecmig" / "e2e.db")
    assert res["ok"] is True and res["method"] == "records"
    assert "mapping" in res["server_digest_skipped"] and "digest_scheme" not in res
    assert all(s["method"] == "records" and "server_digest" not in s for s in res["shards"])
    assert res["source"] == res["target"] and res["source"]["count"] == N


def test_different_column_types_are_not_compared(applied: Applied, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """text[] → jsonb holds the same lists for Python, but other bytes: the schemes differ,
    so the digests are not even computed and the record-by-record check decides."""
    _copy_target(applied.dsn, "t_jsonb_tags", "ALTER TABLE {t} ALTER COLUMN tags TYPE jsonb USING to_jsonb(tags)")
    result, message, outcomes = _validate(applied, tmp_path, "t_jsonb_tags", monkeypatch)
    assert message is None and result is not None and result["ok"] is True
    assert result["method"] == "records" and "digest schemes differ" in result["server_digest_skipped"]
    assert all(o.server is None for o in outcomes)


def test_an_error_in_the_fast_path_falls_back(applied: Applied, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A function the server lacks: a real PostgreSQL error, and every shard takes the slow path."""
    # Every hashing query (shard, buckets, versions with digests, listing) hashes row_bytes.
    monkeypatch.setattr(digest, "row_bytes", lambda *a: sql.SQL("vecmig_no_such_function()"))
    _copy_target(applied.dsn, "t_error", "UPDATE {t} SET title = 'tampered' WHERE id = 1640")
    result, message, outcomes = _validate(applied, tmp_path, "t_error", monkeypatch)
    assert message is not None and "1 different (ids 1640)" in message
    assert [o.method for o in outcomes] == ["records"] * 3
    assert all("digest failed" in o.fallback and "vecmig_no_such_function" in o.fallback for o in outcomes)

    _copy_target(applied.dsn, "t_error")
    (tmp_path / "again").mkdir()
    result, message, _ = _validate(applied, tmp_path / "again", "t_error", monkeypatch)
    assert message is None and result is not None and result["ok"] and result["method"] == "records"
    assert all("digest failed" in s["fallback"] for s in result["shards"])
