"""A state store damaged, edited or not vecmig's, and CLI misuse: one clear line, exit 1, nothing written.

Every command opens the store through ``StateStore.open``, which checks the store's shape (tables,
columns, value types, meta rows, stored JSON, the lock row) and translates every database error
into a StateError: the cases below go through the real CLI and must never print an internal error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli_utils import vecmig

SPEC = """\
version: 1
name: {name}
source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
"""

COMMANDS = (["plan"], ["apply", "--auto-approve"], ["rollback", "--auto-approve"], ["state", "show"],
            ["state", "list"], ["state", "verify"], ["state", "history"], ["state", "export"])


def _setup(tmp: Path, name: str = "tamper") -> Path:
    with (tmp / "src.jsonl").open("w") as f:
        for i in range(12):
            f.write(json.dumps({"id": i, "vector": [i / 8, 0.5, -1.0, 2.0], "metadata": {"a": i}}) + "\n")
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC.format(name=name))
    return spec


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state store after one complete apply, copied into each test."""
    tmp = tmp_path_factory.mktemp("applied")
    spec = _setup(tmp)
    r = vecmig("apply", str(spec), "--auto-approve", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp / ".vecmig" / "tamper.db"


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    try:
        for s in statements:
            conn.execute(s)
        conn.commit()
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TAMPER = {
    "garbage": (lambda db: db.write_bytes(b"\x00garbage, not SQLite" * 300), "file is not a database"),
    "zero-bytes": (lambda db: db.write_bytes(b""), "the file is empty (0 bytes)"),
    "truncated": (lambda db: db.write_bytes(db.read_bytes()[:8192]), "is damaged"),
    "meta-deleted": (lambda db: _sql(db, "DELETE FROM meta"), "its table 'meta' is empty"),
    "table-dropped": (lambda db: _sql(db, "DROP TABLE rounds"), "its table 'rounds' is missing"),
    "audit-dropped": (lambda db: _sql(db, "DROP TABLE audit"), "its table 'audit' is missing"),
    "column-dropped": (lambda db: _sql(db, "ALTER TABLE runs DROP COLUMN approval"),
                       "table 'runs' lacks column(s) approval"),
    "plan-not-json": (lambda db: _sql(db, "UPDATE rounds SET plan_json = '{not json'"),
                      "rounds.plan_json of round 1 is not JSON"),
    "cursor-not-json": (lambda db: _sql(db, "UPDATE cursors SET cursor_json = '[oops'"),
                        "cursors.cursor_json of round 1"),
    "wrong-type": (lambda db: _sql(db, "UPDATE actions SET records = 'lots'"),
                   "actions.records holds 5 value(s) of the wrong type"),
    "version-not-a-number": (lambda db: _sql(db, "UPDATE meta SET value = 'abc' WHERE key = 'schema_version'"),
                             "its schema_version is 'abc', not a number"),
    "future-version": (lambda db: _sql(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"),
                       "has schema version 99; this vecmig reads"),
    "serial-not-a-number": (lambda db: _sql(db, "UPDATE meta SET value = 'x' WHERE key = 'serial'"),
                            "its meta row 'serial' is 'x'"),
    "head-not-json": (lambda db: _sql(db, "UPDATE meta SET value = 'zz' WHERE key = 'audit_head'"),
                      "its meta row 'audit_head' is 'zz'"),
    "lineage-gone": (lambda db: _sql(db, "DELETE FROM meta WHERE key = 'lineage'"),
                     "its meta row 'lineage' is missing"),
    "other-migration": (lambda db: _sql(db, "UPDATE meta SET value = 'other' WHERE key = 'migration'"),
                        "belongs to migration 'other', not 'tamper'"),
    "other-apps-db": (lambda db: (db.unlink(), _sql(db, "CREATE TABLE notes (x TEXT)")),
                      "it holds other tables (notes)"),
}


def _commands_for(case: str) -> list[list[str]]:
    """Three commands per kind of damage, rotating over the cases: every command opens the store
    through the same path (state/db.py), so each meets several kinds of damage (every command at
    least six of the 17) without running all 8 x 17 CLI processes."""
    i = sorted(TAMPER).index(case)
    return [COMMANDS[(i + k) % len(COMMANDS)] for k in (0, 3, 5)]


def test_every_command_meets_damage() -> None:
    seen = [tuple(c) for case in TAMPER for c in _commands_for(case)]
    assert {tuple(c) for c in COMMANDS} <= set(seen)
    assert min(seen.count(tuple(c)) for c in COMMANDS) >= 6


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_store_is_refused_in_one_line_by_every_command(applied: Path, tmp_path: Path, case: str) -> None:
    spec = _setup(tmp_path)
    db = tmp_path / ".vecmig" / "tamper.db"
    db.parent.mkdir()
    shutil.copy(applied, db)
    tamper, what = TAMPER[case]
    tamper(db)
    before = _digest(db)
    for command in _commands_for(case):
        args = [*command, str(spec)] if command[0] == "state" else [command[0], str(spec), *command[1:]]
        r = vecmig(*args, cwd=tmp_path)
        assert r.returncode == 1, (command, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (command, r.stderr)
        assert what in lines[0] and str(db) in lines[0], (command, lines[0])
        assert "internal error" not in r.stderr
    assert _digest(db) == before, "a refused store was written to"
    assert not (tmp_path / "out.jsonl").exists()


def test_tampered_lock_row_is_refused_and_force_unlock_removes_it(applied: Path, tmp_path: Path) -> None:
    spec = _setup(tmp_path)
    db = tmp_path / ".vecmig" / "tamper.db"
    db.parent.mkdir()
    shutil.copy(applied, db)
    _sql(db, "INSERT INTO locks VALUES ('migration', 'L1', 'u', 'h', 'notanint', 'apply', 'x', 'y')")
    r = vecmig("apply", str(spec), "--auto-approve", cwd=tmp_path)
    assert r.returncode == 1 and "internal error" not in r.stderr
    assert "holds a lock row that is not vecmig's (lock L1" in r.stderr and "force-unlock SPEC L1" in r.stderr
    r = vecmig("force-unlock", str(spec), "L1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = vecmig("state", "verify", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_new_store_is_created_whole(tmp_path: Path) -> None:
    """A store is built beside its path and linked into place: no temporary files stay, and the
    first apply's store verifies."""
    spec = _setup(tmp_path)
    r = vecmig("apply", str(spec), "--auto-approve", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / ".vecmig").iterdir() if "creating" in p.name) == []
    assert vecmig("state", "verify", str(spec), cwd=tmp_path).returncode == 0


def test_two_specs_sharing_one_state_path(tmp_path: Path) -> None:
    spec = _setup(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.format(name="other").replace("out.jsonl", "out2.jsonl")
                     + "state: {path: .vecmig/tamper.db}\n")
    assert vecmig("apply", str(spec), "--auto-approve", cwd=tmp_path).returncode == 0
    for command in (["plan"], ["apply", "--auto-approve"], ["rollback", "--auto-approve"]):
        r = vecmig(command[0], str(other), *command[1:], cwd=tmp_path)
        assert r.returncode == 1
        assert "belongs to migration 'tamper', not 'other'" in r.stderr, r.stderr
    assert not (tmp_path / "out2.jsonl").exists()


# -- CLI misuse ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["apply", "{spec}", "--auto-approve", "--lock-timeout", "-5"],
    ["rollback", "{spec}", "--auto-approve", "--lock-timeout", "-1"],
    ["state", "history", "{spec}", "--limit", "-3"],
    ["quickstart", "{spec}", "--records", "-5"],
    ["quickstart", "{spec}", "--records", "0"],
])
def test_out_of_range_options_are_refused(tmp_path: Path, args: list[str]) -> None:
    spec = _setup(tmp_path)
    r = vecmig(*[a.format(spec=spec) for a in args], cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Invalid value for" in r.stderr
    assert not (tmp_path / ".vecmig").exists() and not (tmp_path / "out.jsonl").exists()


def test_state_show_counts_events_once(tmp_path: Path) -> None:
    spec = _setup(tmp_path)
    assert vecmig("apply", str(spec), "--auto-approve", cwd=tmp_path).returncode == 0
    r = vecmig("state", "show", str(spec), cwd=tmp_path)
    line = next(x for x in r.stdout.replace("\n", " ").split("audit log: ")[1:])
    assert line.count("events") == 1, line


@pytest.mark.parametrize("command", [["plan"], ["validate"], ["rollback", "--auto-approve"], ["state", "show"]])
def test_plan_file_where_a_spec_belongs(tmp_path: Path, command: list[str]) -> None:
    spec = _setup(tmp_path)
    plan = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(plan), cwd=tmp_path).returncode == 0
    args = [*command[:2], str(plan)] if command[0] == "state" else [command[0], str(plan), *command[1:]]
    r = vecmig(*args, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error: {plan} is a saved plan, not a migration spec — pass the spec (YAML) here; "
                                "`vecmig apply`, `show` and `graph` take a saved plan"), r.stderr
