"""The audit log of a real state file (made by a real apply through the CLI), tampered with in
every way an auditor worries about; `state verify` must name the first bad event each time."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, big_bang_spec, env_for
from vecmig.state.verify import event_hash


@pytest.fixture(scope="module")
def applied(pg: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """One real apply; each test gets its own copy of the resulting state file."""
    import uuid

    import psycopg

    dsn_base = pg.dsn  # type: ignore[attr-defined]
    name = f"audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn_base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = pg.url(name)  # type: ignore[attr-defined]
    make_docs_table(dsn, "docs", 400, 8)
    tmp = tmp_path_factory.mktemp("audit")
    spec = big_bang_spec(tmp, batch=100, shard=1000)
    env = {**env_for(dsn), "GITHUB_ACTOR": "octocat"}
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    db = tmp / ".vecmig" / "e2e.db"
    with connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pristine = tmp / "pristine.db"
    shutil.copy(db, pristine)
    return spec, pristine, env


@pytest.fixture
def state(applied: tuple[Path, Path, dict[str, str]]) -> tuple[Path, Path, dict[str, str]]:
    spec, pristine, env = applied
    db = spec.parent / ".vecmig" / "e2e.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    for backup in db.parent.glob("e2e.schema-v*"):
        backup.unlink()
    shutil.copy(pristine, db)
    return spec, db, env


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """Commit and *close*: sqlite3's own context manager leaves the connection open, and an open
    connection to a file the next test replaces turns into disk I/O errors."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def rows(db: Path) -> list[sqlite3.Row]:
    with connect(db) as conn:
        return list(conn.execute("SELECT * FROM audit ORDER BY seq"))


def seq_of(db: Path, event: str, nth: int = 0) -> int:
    return [r["seq"] for r in rows(db) if r["event"] == event][nth]


def sql(db: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    with connect(db) as conn:
        for s in statements:
            conn.execute(s, params if "?" in s else ())


def verify(spec: Path, env: dict[str, str]) -> str:
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    return r.stderr


def test_intact_chain_reports_head(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stderr
    last = rows(db)[-1]
    assert f"{last['seq']} events, chain intact (head: event {last['seq']}, hash {last['hash'][:16]})" in r.stdout
    assert "stored plans, runs and results match the log" in r.stdout


def test_edit(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    n = seq_of(db, "run_started")
    sql(db, "UPDATE audit SET data_json = replace(data_json, '\"auto-approve\"', '\"interactive\"') "
            f"WHERE seq = {n}")
    assert f"audit chain broken: event {n} (run_started) was edited" in verify(spec, env)


def test_delete(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    n = seq_of(db, "action_done", 1)
    sql(db, f"DELETE FROM audit WHERE seq = {n}")
    assert f"event {n} is missing (next is {n + 1}): it was deleted" in verify(spec, env)


def test_reorder(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    n = seq_of(db, "action_running", 1)
    second = rows(db)[n]["event"]  # the event at n + 1, which will be moved to n
    sql(db, f"UPDATE audit SET seq = -1 WHERE seq = {n}", f"UPDATE audit SET seq = {n} WHERE seq = {n + 1}",
        f"UPDATE audit SET seq = {n + 1} WHERE seq = -1")
    err = verify(spec, env)
    assert f"event {n} ({second}) is out of order" in err and "events were reordered" in err


def test_truncate(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    total = len(rows(db))
    n = seq_of(db, "run_started")
    sql(db, f"DELETE FROM audit WHERE seq > {n}")
    assert f"events after {n} were removed: the chain head records {total} events (truncated)" in verify(spec, env)
    sql(db, "DELETE FROM audit")
    assert "all events were removed" in verify(spec, env)
    shutil.copy(db.parent.parent / "pristine.db", db)
    sql(db, "DELETE FROM meta WHERE key = 'audit_head'", f"DELETE FROM audit WHERE seq > {n}")
    assert f"the chain head is missing from meta (the log has {n} events)" in verify(spec, env)


def _rehash(db: Path, start: int, change: Callable[[str], str]) -> None:
    """A careful forger: change one event and recompute every hash after it (but not the head)."""
    prev = rows(db)[start - 2]["hash"] if start > 1 else "0" * 64
    with connect(db) as conn:
        for r in rows(db)[start - 1:]:
            data = change(r["data_json"]) if r["seq"] == start else r["data_json"]
            digest = event_hash(prev, r["seq"], r["ts"], r["event"], r["actor_json"], data)
            conn.execute("UPDATE audit SET data_json = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                         (data, prev, digest, r["seq"]))
            prev = digest


def test_rewritten_event_with_recomputed_hash(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    n = seq_of(db, "run_started")
    r = rows(db)[n - 1]
    forged = r["data_json"].replace("auto-approve", "interactive")
    digest = event_hash(r["prev_hash"], n, r["ts"], r["event"], r["actor_json"], forged)
    sql(db, "UPDATE audit SET data_json = ?, hash = ? WHERE seq = ?", params=(forged, digest, n))
    err = verify(spec, env)
    assert f"event {n + 1} (" in err and f"does not follow event {n} (run_started)" in err


def test_whole_tail_rewritten_is_caught_by_the_head(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    n = seq_of(db, "run_started")
    _rehash(db, n, lambda d: d.replace("auto-approve", "interactive"))
    last = rows(db)[-1]
    assert f"event {last['seq']} ({last['event']}) does not match the chain head: it was replaced" in verify(spec, env)


def test_stored_results_are_checked_against_their_audit_copies(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    sql(db, "UPDATE actions SET result_json = replace(result_json, '\"extra\": 0', '\"extra\": 3') "
            "WHERE kind = 'validate_completeness'")
    n = seq_of(db, "action_done", -1) if rows(db)[-1]["event"] == "action_done" else None
    err = verify(spec, env)
    assert "stored state disagrees with the audit log: action validate.completeness (round 1): stored result " \
           "differs from its audit record (event" in err
    if n is not None:
        assert f"(event {n})" in err


def test_stored_plan_records_and_runs_are_checked(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    sql(db, "UPDATE rounds SET plan_json = replace(plan_json, '\"batch_size\": 100', '\"batch_size\": 5')")
    assert "round 1: its stored plan does not hash to its plan hash" in verify(spec, env)
    shutil.copy(db.parent.parent / "pristine.db", db)
    sql(db, "UPDATE actions SET records = records + 1 WHERE kind = 'copy_shard'")
    assert "stored records" in verify(spec, env)
    shutil.copy(db.parent.parent / "pristine.db", db)
    sql(db, "UPDATE runs SET approval = 'interactive'")
    assert "run 1: approval 'interactive' differs from its audit record 'auto-approve'" in verify(spec, env)


def test_events_say_who_what_and_with_which_plan(state: tuple[Path, Path, dict[str, str]]) -> None:
    _, db, _ = state
    events = [(r["event"], json.loads(r["actor_json"]), json.loads(r["data_json"])) for r in rows(db)]
    assert all(d["tool_version"] for _, _, d in events)
    assert all(a["ci_actor"] == "octocat" and a["user"] and a["host"] and a["pid"] for _, a, _ in events)
    with connect(db) as conn:
        spec_hash, plan_hash = conn.execute("SELECT spec_hash, plan_hash FROM rounds").fetchone()
    started = next(d for e, _, d in events if e == "run_started")
    assert started["spec_hash"] == spec_hash and started["plan_hash"] == plan_hash
    assert started["approval"] == "auto-approve" and started["operation"] == "apply"
    authorised = next(d for e, _, d in events if e == "apply_authorised")
    assert authorised["plan_hash"] == plan_hash and authorised["allow_destructive"] is False
    finished = next(d for e, _, d in events if e == "run_finished")
    assert finished["status"] == "succeeded" and finished["records_copied"] == 400
    assert finished["validations"]["validate.completeness"]["ok"] is True
    checksum = finished["validations"]["validate.completeness"]["source"]
    assert checksum["count"] == 400 and checksum == finished["validations"]["validate.completeness"]["target"]
    copied = [d for e, _, d in events if e == "action_done" and d["action"].startswith("copy.")]
    assert sum(d["records"] for d in copied) == 400 and all(d["checkpointed"]["records"] for d in copied)


def test_history(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    r = vecmig("state", "history", str(spec), env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "audit history" in out and "run_started" in out and "approval auto-approve" in out
    assert "(CI: octocat)" in out and "validation ok" in out and "chain intact" in out
    r = vecmig("state", "history", str(spec), "--limit", "3", env=env)
    assert r.returncode == 0 and f"(3 of {len(rows(db))} events)" in r.stdout


def test_export_validates_and_recomputes(state: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    import jsonschema

    from vecmig.schemas import load as load_schema

    spec, db, env = state
    schema = load_schema("state-export.v1")
    out = tmp_path / "export.json"
    r = vecmig("state", "export", str(spec), "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema)
    assert doc["verification"]["chain_ok"] and doc["verification"]["records_ok"]
    assert len(doc["audit"]) == len(rows(db)) and doc["rounds"][0]["plan"]["totals"]["records"] == 400
    # An auditor can recompute the chain from the export alone, with the formula the schema states.
    prev = "0" * 64
    for ev in doc["audit"]:
        h = hashlib.sha256()
        for part in (prev, str(ev["seq"]), ev["ts"], ev["event"], ev["actor_json"], ev["data_json"]):
            h.update(part.encode() + b"\x1f")
        assert h.hexdigest() == ev["hash"] and ev["prev_hash"] == prev
        prev = ev["hash"]
    assert json.loads(doc["meta"]["audit_head"])["hash"] == prev

    r = vecmig("state", "export", str(spec), "--format", "jsonl", env=env)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    line_schema = {"$ref": "#/$defs/jsonl_line", "$defs": schema["$defs"]}
    for line in lines:
        jsonschema.validate(line, line_schema)
    assert lines[0]["type"] == "header" and [x["type"] for x in lines].count("audit") == len(rows(db))
    # The schema really constrains: a wrong document is rejected.
    doc["audit"][0]["hash"] = "nope"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_upgrade_from_schema_v1_backs_up_then_adds_the_chain_head(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    # A version-1 store is this one without the chain head row (the tables are the same).
    sql(db, "DELETE FROM meta WHERE key = 'audit_head'", "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    events_before = len(rows(db))
    for args in (("state", "verify", str(spec)), ("apply", str(spec), "--auto-approve")):
        r = vecmig(*args, env=env)
        assert r.returncode == 1 and "has schema version 1; this vecmig reads 3" in r.stderr
        assert "run `vecmig state upgrade SPEC` (it backs the store up first)" in r.stderr
    r = vecmig("state", "upgrade", str(spec), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    backups = list(db.parent.glob("e2e.schema-v1.*.db"))
    assert len(backups) == 1 and f"Backed up the state to {backups[0]}" in r.stdout
    assert "upgraded 1 → 2: recorded the audit chain head" in r.stdout
    assert "2 → 3: sealed" in r.stdout
    assert SECRET.encode() not in backups[0].read_bytes()
    with connect(backups[0]) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
        assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == events_before
    assert rows(db)[-1]["event"] == "state_upgraded"
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stderr
    r = vecmig("state", "upgrade", str(spec), env=env)
    assert r.returncode == 0 and "already at version 3" in r.stdout
    # The head now makes truncation visible in the upgraded store too.
    sql(db, f"DELETE FROM audit WHERE seq > {events_before}")
    assert f"events after {events_before} were removed" in verify(spec, env)


def test_upgrade_refuses_a_broken_chain(state: tuple[Path, Path, dict[str, str]]) -> None:
    spec, db, env = state
    sql(db, "DELETE FROM meta WHERE key = 'audit_head'", "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        "DELETE FROM audit WHERE seq = 4")
    r = vecmig("state", "upgrade", str(spec), env=env)
    assert r.returncode == 1 and "not upgrading: the audit chain is already broken (event 4 is missing" in r.stderr
    assert not list(db.parent.glob("e2e.schema-v1.*.db"))


def test_tampered_store_still_exports_and_renders(state: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    spec, db, env = state
    sql(db, "UPDATE audit SET data_json = '{not json' WHERE seq = 2")
    out = tmp_path / "export.json"
    r = vecmig("state", "export", str(spec), "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["verification"]["chain_ok"] is False and "event 2" in doc["verification"]["chain"]
    assert doc["audit"][1]["data"] == {"unreadable": "{not json"}
    r = vecmig("state", "history", str(spec), env=env)
    assert r.returncode == 0 and "event 2" in r.stdout and "was edited" in r.stdout
