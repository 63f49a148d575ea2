"""No secret value reaches any file vecmig writes, nor its output: state (+ WAL), plans,
Markdown, exports, history — nor the error line of a run that failed on a DSN."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, big_bang_spec, env_for

OTHER_SECRET = "An0ther-S3cret-in-a-bad-DSN"


def test_no_secret_in_anything_vecmig_writes(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 600, 8)
    spec = big_bang_spec(tmp_path, batch=100)
    env = env_for(pg_db)
    outputs: list[str] = []

    def run(*args: str, code: int = 0, env_: dict[str, str] | None = None) -> str:
        r = vecmig(*args, env=env_ or env)
        assert r.returncode == code, r.stdout + r.stderr
        outputs.append(r.stdout + r.stderr)
        return r.stdout

    run("init", str(spec))
    db = tmp_path / ".vecmig" / "e2e.db"
    # An open connection keeps the WAL file in place after each vecmig process exits, so it can
    # be scanned too (the last connection to close would checkpoint and delete it).
    keep = sqlite3.connect(db)
    keep.execute("SELECT count(*) FROM meta").fetchall()  # attach to the WAL index
    try:
        # A run refused on a bad target DSN: its error line must not echo the DSN.
        bad = {**env, "TARGET_DSN": f"postgresql://vecmig:{OTHER_SECRET}@127.0.0.1:1/nope"}
        run("apply", str(spec), "--auto-approve", code=1, env_=bad)
        plan_file = tmp_path / "plan.json"
        (tmp_path / "plan.md").write_text(run("plan", str(spec), "--format", "markdown", "-out", str(plan_file)))
        (tmp_path / "show.md").write_text(run("show", str(plan_file), "--format", "markdown"))
        run("apply", str(plan_file))
        run("state", "export", str(spec), "-o", str(tmp_path / "export.json"))
        run("state", "export", str(spec), "--format", "jsonl", "-o", str(tmp_path / "export.jsonl"))
        (tmp_path / "history.txt").write_text(run("state", "history", str(spec)))
        run("state", "verify", str(spec))
        run("state", "show", str(spec), "--json")
        wal = Path(str(db) + "-wal")
        assert wal.exists() and wal.stat().st_size > 0, "the WAL should be there to scan"
        written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
        names = {p.name for p in written}
        assert {"e2e.db", "e2e.db-wal", "plan.json", "plan.md", "export.json", "export.jsonl"} <= names
        for path in written:
            data = path.read_bytes()
            for secret in (SECRET, OTHER_SECRET):
                assert secret.encode() not in data, f"{secret} leaked into {path}"
    finally:
        keep.close()
    for text in outputs:
        assert SECRET not in text and OTHER_SECRET not in text
