"""Rollback of a target that already held data gives back exactly what was there, through the real CLI.

Exactly: the same ids, float32 vector bits, metadata with the type of every value, and text
(``tests/roundtrip.py``). File targets stage their writes, so these also prove that what
rollback writes is merged into the final file, not left in staging parts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.roundtrip import exact, read_store, records, write_jsonl
from tests.support.cli import table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for
from tests.support.specs import write_spec as write_pg_spec
from tests.test_audit_pg_state import state_db, with_secret  # noqa: F401 - state_db is a fixture

FIXTURES = Path(__file__).parent / "fixtures"


def write_spec(tmp: Path, provider: str, target: str, *, batch: int = 4, name: str = "rb") -> Path:
    spec = tmp / f"{name}.yaml"
    spec.write_text(textwrap.dedent(f"""\
        version: 1
        name: {name}
        source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
        target: {{provider: {provider}, connection: {{path: {target}}}}}
        strategy: {{type: big-bang, batch_size: {batch}}}
        """))
    return spec


def seed_target(tmp: Path, provider: str, recs: list[dict[str, Any]]) -> Path:
    """A target file that already holds ``recs``, written by vecmig itself (its own migration)."""
    target = tmp / f"target.{provider}"
    if provider == "jsonl":
        write_jsonl(target, recs)
        return target
    write_jsonl(tmp / "seed.jsonl", recs)
    (tmp / "seed.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        name: seed
        source: {{provider: jsonl, connection: {{path: seed.jsonl}}}}
        target: {{provider: {provider}, connection: {{path: {target.name}}}}}
        """))
    r = vecmig("apply", str(tmp / "seed.yaml"), "--auto-approve", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(tmp / ".vecmig")
    return target


def staging_left(target: Path) -> list[Path]:
    return sorted(target.parent.glob(target.name + ".vecmig-parts*"))


@pytest.fixture(params=["jsonl", "parquet"])
def file_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, dict[Any, Any]]:
    """Target ids 0..19 (one set of values), source ids 10..29 (other values)."""
    provider = request.param
    target = seed_target(tmp_path, provider, records(range(0, 20), seed=1))
    write_jsonl(tmp_path / "src.jsonl", records(range(10, 30), seed=2))
    before = read_store(provider, target)
    assert before == exact(records(range(0, 20), seed=1)), "the seeded target holds exactly what was written"
    return write_spec(tmp_path, provider, target.name), target, before


def provider_of(target: Path) -> str:
    return target.suffix.lstrip(".")


def test_rollback_restores_a_file_target_that_held_data(file_target: tuple[Path, Path, dict[Any, Any]]) -> None:
    spec, target, before = file_target
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store(provider_of(target), target) == exact(records(range(10, 30), seed=2))
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Rollback complete!" in r.stdout
    assert read_store(provider_of(target), target) == before, "ids 0..19 with their own values, nothing else"
    assert staging_left(target) == []
    assert vecmig("state", "verify", str(spec)).returncode == 0
    assert "Nothing to roll back" in vecmig("rollback", str(spec), "--auto-approve").stdout


def test_rollback_of_two_rounds_restores_the_state_before_the_first(
        file_target: tuple[Path, Path, dict[Any, Any]]) -> None:
    spec, target, before = file_target
    assert vecmig("apply", str(spec), "--auto-approve", "--allow-destructive").returncode == 0
    # The source changes: round 2 overwrites some records again and adds new ones.
    write_jsonl(spec.parent / "src.jsonl", records(range(15, 35), seed=3))
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store(provider_of(target), target) == exact(records(range(15, 35), seed=3))
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store(provider_of(target), target) == before
    assert staging_left(target) == []


def test_a_record_refused_at_read_stops_the_plan_before_anything_is_staged(
        file_target: tuple[Path, Path, dict[Any, Any]]) -> None:
    """The record-level diff reads every source record at plan time (the target holds records):
    a record the source cannot give (wrong dimension) stops the plan, so nothing is staged."""
    spec, target, before = file_target
    recs = records(range(10, 3010), seed=2)
    recs[2900]["vector"] = [0.5]
    write_jsonl(spec.parent / "src.jsonl", recs)
    spec = write_spec(spec.parent, provider_of(target), target.name, batch=100)
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive")
    assert r.returncode == 1 and "src.jsonl" in r.stderr, r.stdout + r.stderr
    assert staging_left(target) == []
    assert read_store(provider_of(target), target) == before


def test_rollback_after_a_killed_partial_apply(file_target: tuple[Path, Path, dict[Any, Any]]) -> None:
    """SIGKILLed after many batches (of three shards) were staged, overwriting ids 10..19."""
    from tests.support.cli import spawn
    from tests.test_kill_resume import progress

    spec, target, before = file_target
    write_jsonl(spec.parent / "src.jsonl", records(range(10, 3010), seed=2))
    spec = write_spec(spec.parent, provider_of(target), target.name, batch=50)
    db = spec.parent / ".vecmig" / "rb.db"
    proc = spawn("apply", str(spec), "--auto-approve", "--allow-destructive")
    while proc.poll() is None and progress(db)[0] < 1000:
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the apply finished before the kill: make the source larger"
    assert staging_left(target), "the killed apply left staged parts"
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store(provider_of(target), target) == before
    assert staging_left(target) == []


@pytest.mark.parametrize("where", ["after_an_undo", "before_the_merge"])
def test_rollback_killed_midway_then_rerun(file_target: tuple[Path, Path, dict[Any, Any]], where: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback that dies after writing some before-images (or before merging them) is run again."""
    from vecmig import rollback as rb
    from vecmig.actions import images
    from vecmig.spec_loader import load_spec
    from vecmig.state.store import StateStore

    spec_path, target, before = file_target
    assert vecmig("apply", str(spec_path), "--auto-approve", "--allow-destructive").returncode == 0
    spec = load_spec(spec_path, env={})
    state = StateStore.open(spec.name, spec.state_path, None, create=False)
    assert state is not None
    if where == "after_an_undo":
        real = images.restore

        def restore_then_die(*args: Any, **kw: Any) -> int:
            real(*args, **kw)
            raise KeyboardInterrupt  # as if killed right after the images went out

        monkeypatch.setattr(images, "restore", restore_then_die)
    else:
        def die(_spec: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(rb, "seal_target", die)
    with pytest.raises(KeyboardInterrupt):
        rb.rollback(spec, state, approval="auto-approve")
    state.close()
    monkeypatch.undo()
    r = vecmig("rollback", str(spec_path), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store(provider_of(target), target) == before
    assert staging_left(target) == []
    assert vecmig("state", "verify", str(spec_path)).returncode == 0


def test_rollback_drops_a_file_target_vecmig_created(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "src.jsonl", records(range(0, 10), seed=2))
    spec = write_spec(tmp_path, "parquet", "new.parquet")
    assert vecmig("apply", str(spec), "--auto-approve").returncode == 0
    assert (tmp_path / "new.parquet").exists()
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "new.parquet").exists() and staging_left(tmp_path / "new.parquet") == []


def test_the_earliest_image_of_an_id_in_a_round_wins(tmp_path: Path) -> None:
    """Two actions of one round captured the same id: the later capture saw vecmig's own write.

    Whatever order the actions are undone in, the image restored is the round's first one.
    """
    target = seed_target(tmp_path, "jsonl", records(range(0, 20), seed=1))
    write_jsonl(tmp_path / "src.jsonl", records(range(10, 30), seed=2))
    spec_path = write_spec(tmp_path, "jsonl", target.name)
    before = read_store("jsonl", target)
    assert vecmig("apply", str(spec_path), "--auto-approve", "--allow-destructive").returncode == 0

    from vecmig.spec_loader import load_spec
    from vecmig.state.store import StateStore

    spec = load_spec(spec_path, env={})
    state = StateStore.open(spec.name, spec.state_path, None, create=False)
    assert state is not None
    # An id captured by delete_extra (undone first), captured again later (recorded through
    # vecmig, so the chain covers it) by the copy shard, which rollback undoes last, holding
    # another value: the later capture must not win.
    shard = next(a["action_id"] for a in state.actions(1) if a["kind"] == "copy_shard")
    first_images = [r for r in state.before_images(1, "delete_extra.target") if r["existed"]]
    rid = json.loads(first_images[0]["record_id"])
    assert rid not in {json.loads(r["record_id"]) for r in state.before_images(1, shard)}
    migrated = records(range(rid, rid + 1), seed=2)[0]
    payload = json.dumps({"id": rid, "metadata": migrated["metadata"], "text": migrated["text"],
                          "vector": base64.b64encode(np.asarray(migrated["vector"], "<f4").tobytes()).decode()})
    state.save_before_images(1, shard, [(json.dumps(rid), True, payload.encode())])
    assert json.dumps(rid) not in {r["record_id"] for r in state.before_images(1, shard)}
    state.close()
    r = vecmig("rollback", str(spec_path), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_store("jsonl", target) == before


# ---- the audit chain covers what rollback uses ---------------------------------------------------


def _sql(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as c:
        for s in statements:
            assert c.execute(s).rowcount >= 1, s


TAMPER = {
    "edited": ("UPDATE before_images SET payload = CAST(replace(CAST(payload AS TEXT), 'seed 1', 'seed 9') AS BLOB) "
               "WHERE record_id = '13'", "were edited"),
    "deleted": ("DELETE FROM before_images WHERE id = (SELECT max(id) FROM before_images WHERE existed)",
                "rows were deleted"),
    "inserted": ("INSERT INTO before_images (round, action_id, record_id, existed, payload) "
                 "SELECT round, action_id, '77', 0, NULL FROM before_images LIMIT 1", "added outside vecmig"),
    "status": ("UPDATE actions SET status = 'rolled_back' WHERE action_id = 'delete_extra.target'",
               "differs from its audit record"),
    "params": ("UPDATE actions SET params_json = replace(params_json, '\"before_images\": true', "
               "'\"before_images\": false') WHERE kind = 'copy_shard'", "parameters differ from its round's plan"),
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_tampered_rollback_inputs_fail_verify_and_rollback_refuses(tmp_path: Path, how: str) -> None:
    target = seed_target(tmp_path, "jsonl", records(range(0, 20), seed=1))
    write_jsonl(tmp_path / "src.jsonl", records(range(10, 30), seed=2))
    spec = write_spec(tmp_path, "jsonl", target.name)
    assert vecmig("apply", str(spec), "--auto-approve", "--allow-destructive").returncode == 0
    assert vecmig("state", "verify", str(spec)).returncode == 0
    db = tmp_path / ".vecmig" / "rb.db"
    statement, words = TAMPER[how]
    _sql(db, statement)
    r = vecmig("state", "verify", str(spec))
    assert r.returncode == 1 and words in r.stderr, r.stdout + r.stderr
    after_apply = target.read_bytes()
    with sqlite3.connect(db) as c:
        runs = c.execute("SELECT count(*) FROM runs").fetchone()[0]
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: refusing to roll back:") and words in lines[0]
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert target.read_bytes() == after_apply and staging_left(target) == [], "nothing written to the target"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM runs").fetchone()[0] == runs, "no rollback run was started"
        assert c.execute("SELECT count(*) FROM locks").fetchone()[0] == 0


@pytest.mark.parametrize("statement", [
    "UPDATE resources SET name = 'elsewhere.jsonl'",
    "UPDATE resources SET state = 'intent'",
    "DELETE FROM resources",
])
def test_tampered_resource_journal_is_refused(tmp_path: Path, statement: str) -> None:
    write_jsonl(tmp_path / "src.jsonl", records(range(0, 10), seed=2))
    spec = write_spec(tmp_path, "jsonl", "new.jsonl")
    assert vecmig("apply", str(spec), "--auto-approve").returncode == 0
    _sql(tmp_path / ".vecmig" / "rb.db", statement)
    r = vecmig("state", "verify", str(spec))
    assert r.returncode == 1 and "journal entry" in r.stderr, r.stderr
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 1 and "refusing to roll back" in r.stderr and "journal entry" in r.stderr
    assert (tmp_path / "new.jsonl").exists(), "nothing was dropped"


def test_a_schema_2_state_upgrades_then_verifies_and_rolls_back(tmp_path: Path) -> None:
    """A state written by the previous release (schema 2, images not in the chain) still works after upgrade."""
    work = tmp_path / "v2"
    shutil.copytree(FIXTURES / "state_v2_files", work)
    spec = work / "spec.yaml"
    r = vecmig("state", "verify", str(spec))
    assert r.returncode == 1 and "has schema version 2; this vecmig reads 3" in r.stderr
    r = vecmig("state", "upgrade", str(spec))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 → 3: sealed 30 before-image(s)" in r.stdout
    assert vecmig("state", "verify", str(spec)).returncode == 0
    # From now on the chain covers the images: an edit is caught.
    with sqlite3.connect(work / "state.db") as c:
        row_id, payload = c.execute("SELECT id, payload FROM before_images WHERE record_id = '3'").fetchone()
    _sql(work / "state.db", "UPDATE before_images SET existed = 0, payload = NULL WHERE record_id = '3'")
    assert "were edited" in vecmig("state", "verify", str(spec)).stderr
    assert vecmig("rollback", str(spec), "--auto-approve").returncode == 1
    with sqlite3.connect(work / "state.db") as c:  # put it back as it was
        c.execute("UPDATE before_images SET existed = 1, payload = ? WHERE id = ?", (payload, row_id))
    r = vecmig("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    expected = exact(json.loads(line) for line in (work / "before.jsonl").read_text().splitlines())
    assert read_store("jsonl", work / "target.jsonl") == expected
    assert vecmig("state", "verify", str(spec)).returncode == 0


# ---- pgvector target, state on PostgreSQL ---------------------------------------------------------


def test_pgvector_target_two_rounds_rollback_exact_with_postgres_state(pg_db: str, state_db: str,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 300, 8, seed=1)
    make_docs_table(pg_db, "shared", 200, 8, seed=2, start=201)  # 100 overlap, 100 extra
    before = table_rows(pg_db, "shared")
    spec = write_pg_spec(tmp_path, """
        version: 1
        name: pgrb
        state: {url: "${env:STATE_URL}"}
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: shared,
                 fields: {id: id, vector: embedding, text: body}}
        strategy: {type: big-bang, batch_size: 64, shard_size: 1000}
        """)
    env = {**env_for(pg_db), "STATE_URL": with_secret(state_db)}
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db) as conn:  # the source moves on: round 2 overwrites records round 1 wrote
        conn.execute("UPDATE docs SET title = title || ' v2', score = score + 1 WHERE id % 3 = 0")
        conn.execute("INSERT INTO docs SELECT id + 1000, embedding, title, lang, year, score, published, tags, body "
                     "FROM docs WHERE id <= 50")
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == table_rows(pg_db, "docs")
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
    # An edited before-image in the shared state: refused, nothing written.
    with psycopg.connect(state_db) as conn:
        row_id, payload = conn.execute("SELECT id, payload FROM before_images WHERE existed ORDER BY id LIMIT 1"
                                       ).fetchone()
        conn.execute("UPDATE before_images SET payload = %s WHERE id = %s", (payload.replace(b"e", b"E"), row_id))
    applied = table_rows(pg_db, "shared")
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1 and "refusing to roll back" in r.stderr and "were edited" in r.stderr
    assert table_rows(pg_db, "shared") == applied
    with psycopg.connect(state_db) as conn:
        conn.execute("UPDATE before_images SET payload = %s WHERE id = %s", (payload, row_id))
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "shared") == before
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0
