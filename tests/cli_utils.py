"""Run the real `vecmig` CLI in a subprocess and compare stores record by record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]


def vecmig(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vecmig.cli", *args], env=full_env, cwd=cwd or ROOT,
                          capture_output=True, text=True, input=input if input is not None else "", timeout=timeout)


def spawn(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vecmig.cli", *args], env=full_env, cwd=cwd or ROOT,
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
