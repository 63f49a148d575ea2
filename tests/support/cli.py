"""Run the real `vecmig` CLI in a subprocess and compare stores record by record.

Every output the CLI gives through :func:`vecmig` or :func:`spawn` (once read with
``communicate``) is kept in :data:`OUTPUTS`; ``tests/conftest.py`` fails any test whose CLI
runs printed an internal error, a traceback or a stray Python warning (see
:func:`internal_failures`), except runs that asked for a traceback with ``--debug``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]

# What no input may ever make the CLI print (without --debug): the CLI's last-resort line for an
# exception that is not a VecmigError, and a Python traceback.
FORBIDDEN = ("internal error", "Traceback (most recent call last)")
# A Python warning printed to the user ("path.py:12: RuntimeWarning: overflow ..."): a stray line.
PY_WARNING = re.compile(r"^\S+:\d+: \w*Warning: .*$", re.MULTILINE)


@dataclass(frozen=True)
class CliOutput:
    args: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str


OUTPUTS: list[CliOutput] = []


def record(args: tuple[str, ...], returncode: int | None, stdout: str | None, stderr: str | None) -> None:
    OUTPUTS.append(CliOutput(tuple(args), returncode, stdout or "", stderr or ""))


def internal_failures(outputs: list[CliOutput]) -> list[str]:
    """One line per CLI run (not run with --debug) whose output holds a FORBIDDEN string or a
    Python warning."""
    found = []
    for o in outputs:
        if "--debug" in o.args:
            continue
        for text in (o.stderr, o.stdout):
            for bad in FORBIDDEN:
                at = text.find(bad)
                if at >= 0:
                    line = text[at:].splitlines()[0] if bad == "internal error" else text[at:][-400:]
                    found.append(f"`vecmig {' '.join(o.args)}` (exit {o.returncode}) printed {bad!r}: {line}")
        m = PY_WARNING.search(o.stderr)
        if m:
            found.append(f"`vecmig {' '.join(o.args)}` (exit {o.returncode}) printed a Python warning: {m.group(0)}")
    return found


class _RecordedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """A Popen whose ``communicate`` output is recorded like :func:`vecmig`'s."""

    def __init__(self, cli_args: tuple[str, ...], *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._cli_args = cli_args

    def communicate(self, *args: Any, **kw: Any) -> tuple[Any, Any]:
        out, err = super().communicate(*args, **kw)
        record(self._cli_args, self.returncode, out, err)
        return out, err


def vecmig(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    r = subprocess.run([sys.executable, "-m", "vecmig.cli", *args], env=full_env, cwd=cwd or ROOT,
                       capture_output=True, text=True, input=input if input is not None else "", timeout=timeout)
    record(args, r.returncode, r.stdout, r.stderr)
    return r


def spawn(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return _RecordedPopen(args, [sys.executable, "-m", "vecmig.cli", *args], env=full_env, cwd=cwd or ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def table_rows(dsn: str, table: str, id_col: str = "id") -> dict[Any, dict[str, Any]]:
    """Every record of a table keyed by id; the vector as its exact text form from PostgreSQL.

    pgvector prints float4 values with shortest round-trip precision, so equal text means
    equal bits.
    """
    with psycopg.connect(dsn) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (table,))]
        q = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) if c != id_col else sql.Identifier(c) for c in cols),
            sql.Identifier(table), sql.Identifier(id_col))
        rows = conn.execute(q).fetchall()
    idx = cols.index(id_col)
    out: dict[Any, dict[str, Any]] = {}
    for r in rows:
        assert r[idx] not in out, f"duplicate id {r[idx]} in {table}"
        out[r[idx]] = {c: v for i, (c, v) in enumerate(zip(cols, r, strict=True)) if i != idx}
    return out


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])
