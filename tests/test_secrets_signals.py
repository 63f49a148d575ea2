"""Issue 9, secrets and signals.

* A DSN password with characters a URL parser cuts at (``/ @ : # ? %`` and spaces) never
  reaches any output or file, whole or in pieces, on any error path.
* ``${env:...}`` in a non-secret value (a path) stays a placeholder in plans and state; the
  resolved value does the work, and a saved plan notices when it changes.
* SIGTERM during apply is Ctrl-C: the batch in flight is checkpointed, the lock released,
  the run closed as interrupted, exit 143; apply again resumes.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.cli import spawn, table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.test_kill_resume import progress

ODD_PASSWORDS = [
    "Zq9/Xw8@Vu7:Ts6",
    "slash/Pass#Word?Frag%ment",
    "with spaces Inside/And@More",
    "Percent%2Fnot%Escaped:Colon",
]


def _fragments(password: str) -> set[str]:
    return {p for p in re.split(r"[/@:#?%&=\s]+", password) if len(p) >= 4} | {password}


def _assert_nowhere(password: str, texts: list[str], root: Path) -> None:
    frags = _fragments(password)
    for text in texts:
        for f in frags:
            assert f not in text, f"{f!r} (from the password) was printed:\n{text}"
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for f in frags:
            assert f.encode() not in data, f"{f!r} (from the password) was written to {path}"


# ----------------------------------------------------------------------------- unit


@pytest.mark.parametrize("password", ODD_PASSWORDS)
def test_redactor_masks_every_piece_of_a_url_password(password: str) -> None:
    from vecmig.state.redact import Redactor

    dsn = f"postgresql://vecmig:{password}@db.internal:5432/prod"
    redact = Redactor([dsn])
    # What libpq makes of it: the password cut into "host", "port" and "dbname".
    pieces = re.split(r"[/@:#?%\s]+", password)
    message = f"cannot reach {'/'.join(pieces)}:5432/{password.split('/')[-1]}: failed for {dsn}"
    out = redact(message)
    for f in _fragments(password):
        assert f not in out, out
    assert "vecmig" in redact("run `vecmig apply` again")  # the user name alone is not masked


def test_secret_shapes_are_masked_even_when_unknown() -> None:
    from vecmig.state.redact import Redactor

    redact = Redactor()
    assert redact("x postgresql://app:hunter2hunter2@h/db y") == "x postgresql://***@h/db y"
    assert "Secr3tValue" not in redact("host=h password='Secr3tValue x' dbname=d")
    assert "Secr3tValue" not in redact("host=h password=Secr3tValue dbname=d")
    assert "Secr3tValue" not in redact("postgresql://h/db?sslmode=require&password=Secr3tValue")
    assert "pcsk_abcdef" not in redact('{"api_key": "pcsk_abcdef"}')


def test_key_value_and_query_passwords_are_secret_parts() -> None:
    from vecmig.state.redact import secret_parts

    assert {"ab cd/efgh", "efgh"} <= secret_parts("host=x password='ab cd/efgh' dbname=x")
    assert {"SeKrit/Part", "SeKrit", "Part"} <= secret_parts("postgresql://u@h/db?password=SeKrit/Part")


# ----------------------------------------------------------------------------- DSN error paths

JSONL_TO_PG = """
    version: 1
    name: odd
    source: {provider: jsonl, connection: {path: src.jsonl}}
    target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs}
    """


def _write_source(tmp: Path, n: int = 20) -> None:
    with (tmp / "src.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "vector": [0.1 * i, 0.2, 0.3]}) + "\n")


def _bad_dsns(pg_db: str, password: str) -> dict[str, str]:
    parts = urlsplit(pg_db)
    query = f"?{parts.query}" if parts.query else ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return {
        # The password written as is, unescaped, as users do.
        "unreachable host": f"postgresql://vecmig:{password}@127.0.0.1:1/db",
        "bad db name": f"postgresql://vecmig:{password}@{host}/no_such_db_x{query}",
        "key=value": f"host=127.0.0.1 port=1 user=vecmig password='{password}' dbname=db",
        "query password": f"postgresql://vecmig@127.0.0.1:1/db?password={password.replace('&', '')}",
    }


@pytest.mark.parametrize("password", ODD_PASSWORDS[:2])
def test_odd_dsn_password_never_printed_nor_written(pg_db: str, tmp_path: Path, password: str) -> None:
    _write_source(tmp_path)
    spec = write_spec(tmp_path, JSONL_TO_PG)
    texts: list[str] = []
    for case, dsn in _bad_dsns(pg_db, password).items():
        env = {"TARGET_DSN": dsn}
        for args in (("plan", str(spec)), ("plan", str(spec), "--format", "markdown"),
                     ("apply", str(spec), "--auto-approve"), ("--debug", "apply", str(spec), "--auto-approve")):
            r = vecmig(*args, env=env, timeout=60)
            assert r.returncode != 0, (case, r.stdout, r.stderr)
            texts.append(r.stdout + r.stderr)
    _assert_nowhere(password, texts, tmp_path)


def test_odd_state_url_password_never_printed(tmp_path: Path) -> None:
    password = "St4te/Url@Pass:Word"
    _write_source(tmp_path)
    spec = write_spec(tmp_path, """
        version: 1
        name: odd-state
        state: {url: "${env:STATE_URL}"}
        source: {provider: jsonl, connection: {path: src.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        """)
    env = {"STATE_URL": f"postgresql://vecmig:{password}@127.0.0.1:1/state"}
    texts = []
    for args in (("plan", str(spec)), ("apply", str(spec), "--auto-approve"), ("state", "show", str(spec))):
        r = vecmig(*args, env=env, timeout=60)
        assert r.returncode != 0
        texts.append(r.stdout + r.stderr)
    _assert_nowhere(password, texts, tmp_path)


# ----------------------------------------------------------------------------- ${env:...} in paths

ENV_PATHS = """
    version: 1
    name: envpath
    source: {provider: jsonl, connection: {path: "${env:DATA_DIR}/src.jsonl"}}
    target: {provider: jsonl, connection: {path: "${env:DATA_DIR}/out-${env:SUFFIX}.jsonl"}}
    """


def test_env_in_a_path_stays_a_placeholder_everywhere(tmp_path: Path) -> None:
    data = tmp_path / "Resolved-Data-Dir-7Q"
    data.mkdir()
    _write_source(data)
    spec = write_spec(tmp_path, ENV_PATHS)
    env = {"DATA_DIR": str(data), "SUFFIX": "blueXY"}
    plan_file = tmp_path / "plan.json"
    texts = []

    def run(*args: str, code: int = 0, env_: dict[str, str] | None = None) -> str:
        r = vecmig(*args, env=env_ or env)
        assert r.returncode == code, r.stdout + r.stderr
        texts.append(r.stdout + r.stderr)
        return r.stdout

    (tmp_path / "plan.md").write_text(run("plan", str(spec), "--format", "markdown", "-out", str(plan_file)))
    body = plan_file.read_text()
    assert "${env:DATA_DIR}/out-${env:SUFFIX}.jsonl" in body
    # A different directory at apply: the saved plan is stale, though the spec is not edited.
    r = vecmig("apply", str(plan_file), env={**env, "SUFFIX": "greenZZ"})
    assert r.returncode == 1 and "stale" in r.stderr and "environment" in r.stderr, r.stderr
    run("apply", str(plan_file))
    # The resolved value did the work.
    out = [json.loads(line) for line in (data / "out-blueXY.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in out) == list(range(20))
    run("state", "export", str(spec), "-o", str(tmp_path / "export.json"))
    (tmp_path / "list.txt").write_text(run("state", "list", str(spec)))
    (tmp_path / "history.txt").write_text(run("state", "history", str(spec)))
    run("rollback", str(spec), "--auto-approve")
    assert not (data / "out-blueXY.jsonl").exists()
    for text in texts:
        assert str(data) not in text and "blueXY" not in text, text
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and data not in p.parents]:
        raw = path.read_bytes()
        assert str(data).encode() not in raw and b"Resolved-Data-Dir-7Q" not in raw, f"resolved path in {path}"


# ----------------------------------------------------------------------------- signals


def _big_spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path, textwrap.dedent("""
        version: 1
        name: sigterm
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 fields: {id: id, vector: embedding, text: body}, create: {index: {type: none}}}
        strategy: {type: big-bang, batch_size: 100, concurrency: 2, shard_size: 5000}
        """))


def test_sigterm_during_apply_checkpoints_releases_and_resumes(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 15_000, 32, seed=5)
    spec = _big_spec(tmp_path)
    env = env_for(pg_db)
    db = tmp_path / ".vecmig" / "sigterm.db"
    proc = spawn("apply", str(spec), "--auto-approve", env=env)
    deadline = time.monotonic() + 120
    while progress(db)[0] < 1500 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err

    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM locks").fetchone()[0] == 0, "lock must be released"
        checkpointed = c.execute("SELECT sum(records_done) FROM cursors").fetchone()[0]
        run = c.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert run == "interrupted"
    from tests.cli_utils import count

    assert count(pg_db, "docs_v2") == checkpointed
    assert 0 < checkpointed < 15_000
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")
    assert vecmig("state", "verify", str(spec), env=env).returncode == 0


def test_a_hex_piece_of_a_password_never_corrupts_a_digest() -> None:
    """Audit payloads carry hex digests (before-images, checksums): a password piece that is
    all hex may occur inside one by chance; masking it there would break `state verify`."""
    from vecmig.state.redact import Redactor

    r = Redactor(["postgresql://u:ab/cdef12@h/db"])
    digest = "00cdef1200aa11bb22cc33dd44ee55ff"
    assert r(f"digest {digest}") == f"digest {digest}"
    assert r.walk({"digest": digest}) == {"digest": digest}
    assert "cdef12" not in r("password cdef12 end")
    assert "cdef12" not in r("xx-cdef12-yy") and "cdef12" not in r("zzcdef12zz")
