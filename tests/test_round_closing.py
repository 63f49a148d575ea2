"""A run killed after its last action but before it closed the round: the round is closed by
the next apply instead of staying open (with nothing to do) forever."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.support.cli import vecmig
from tests.support.specs import write_spec


def test_open_round_with_every_action_done_is_closed_by_apply(tmp_path: Path) -> None:
    (tmp_path / "src.jsonl").write_text("".join(
        json.dumps({"id": i, "vector": [float(i), 1.0], "metadata": {"k": i}}) + "\n" for i in range(50)))
    spec = write_spec(tmp_path, """
        version: 1
        name: closing
        source: {provider: jsonl, connection: {path: src.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        """)
    assert vecmig("apply", str(spec), "--auto-approve").returncode == 0
    db = tmp_path / ".vecmig" / "closing.db"
    with sqlite3.connect(db) as conn:  # what a SIGKILL between the last action and the round's close leaves
        conn.execute("UPDATE rounds SET status = 'in_progress' WHERE round = 1")
    r = vecmig("plan", str(spec))
    assert r.returncode == 0 and "closed the round" in r.stdout, r.stdout + r.stderr
    r = vecmig("apply", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM rounds WHERE round = 1").fetchone() == ("complete",)
    r = vecmig("plan", str(spec), "--detailed-exitcode")
    assert r.returncode == 0 and "Records: +0 to add" in r.stdout, r.stdout + r.stderr
