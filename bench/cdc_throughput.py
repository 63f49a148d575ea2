"""CDC catch-up throughput: changes per second through vecmig's change feed, against applying
the same changes with one ``INSERT … ON CONFLICT`` per batch (measured in the same run).

A pgvector source and a copy of it as the target; vecmig's feed (replication slot +
publication) is opened, then a writer commits updates (vector and metadata), inserts and
deletes in transactions of 1,000 rows. vecmig's ``catch_up`` action then drains the feed
until the lag is 0: it decodes the WAL (pgoutput), re-reads the touched rows and upserts
/ deletes them, checkpointing the position after each batch. The baseline is given the
touched ids for free (it decodes nothing) and copies the same rows with one
``INSERT … SELECT … ON CONFLICT (id) DO UPDATE`` and one ``DELETE`` per 1,000 ids, in one
connection; it starts from the same target state.

Usage (repository root)::

    python bench/cdc_throughput.py --records 100000 --dim 384 --changes 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # the shared helpers of bench/run.py

SPEC = """\
version: 1
name: cdcbench
source: {provider: pgvector, connection: {dsn: "${env:BENCH_DSN}"}, collection: bench_src,
         fields: {id: id, vector: embedding, text: body}}
target: {provider: pgvector, connection: {dsn: "${env:BENCH_DSN}"}, collection: bench_dst,
         fields: {id: id, vector: embedding, text: body}, create: {index: {type: none}}}
strategy: {type: cdc, max_lag: 0, batch_size: 1000, concurrency: 2}
"""


def copy_table(dsn: str, src: str, dst: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(dst)))
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(sql.Identifier(dst),
                                                                                sql.Identifier(src)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(sql.Identifier(dst), sql.Identifier(src)))


def write_changes(dsn: str, records: int, changes: int) -> list[int]:
    """Half updates, a quarter inserts, a quarter deletes, 1,000 rows per transaction."""
    upd, ins, dele = changes // 2, changes // 4, changes - changes // 2 - changes // 4
    touched: list[int] = []
    with psycopg.connect(dsn) as conn:
        for lo in range(1, upd + 1, 1000):
            hi = min(lo + 1000, upd + 1)
            conn.execute("UPDATE bench_src SET embedding = embedding + embedding, body = body || '+' "
                         "WHERE id >= %s AND id < %s", (lo, hi))
            conn.commit()
            touched += range(lo, hi)
        conn.execute("CREATE TEMP TABLE fresh AS SELECT * FROM bench_src WHERE id <= %s", (ins,))
        conn.execute("UPDATE fresh SET id = id + %s", (10 * records,))
        for lo in range(0, ins, 1000):
            conn.execute("INSERT INTO bench_src SELECT * FROM fresh WHERE id > %s AND id <= %s",
                         (10 * records + lo, 10 * records + lo + 1000))
            conn.commit()
        touched += range(10 * records + 1, 10 * records + ins + 1)
        first = records - dele + 1
        for lo in range(first, records + 1, 1000):
            conn.execute("DELETE FROM bench_src WHERE id >= %s AND id < %s", (lo, min(lo + 1000, records + 1)))
            conn.commit()
        touched += range(first, records + 1)
    return touched


def baseline(dsn: str, touched: list[int]) -> float:
    with psycopg.connect(dsn) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'bench_src'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum")]
        names = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        sets = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols if c != "id")
        upsert = sql.SQL("INSERT INTO bench_dst ({n}) SELECT {n} FROM bench_src WHERE id = ANY(%s) "
                         "ON CONFLICT (id) DO UPDATE SET {s}").format(n=names, s=sets)
        gone = sql.SQL("DELETE FROM bench_dst WHERE id = ANY(%s) AND NOT EXISTS "
                       "(SELECT 1 FROM bench_src s WHERE s.id = bench_dst.id)")
        started = time.perf_counter()
        for lo in range(0, len(touched), 1000):
            chunk = touched[lo:lo + 1000]
            conn.execute(upsert, (chunk,))
            conn.execute(gone, (chunk,))
            conn.commit()
        return time.perf_counter() - started


def vecmig_catch_up(spec_path: Path, workdir: Path) -> tuple[dict[str, Any], Any, Any, Any]:
    """Plan the cdc migration (target absent), then run its open_feed action in-process."""
    from vecmig.actions import KINDS, RunContext
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh
    from vecmig.spec_loader import load_spec
    from vecmig.state.store import StateStore

    spec = load_spec(spec_path)
    plan = make_plan(spec, None, refresh(spec))
    state = StateStore.open(spec.name, workdir / "state.db", None, create=True)
    assert state is not None
    state.start_round(plan.round, plan.plan_hash, plan.spec_hash, json.dumps(plan.body(), sort_keys=True),
                      [a.to_json() for a in plan.actions], plan.source.fingerprint, plan.target.fingerprint)
    ctx = RunContext(spec=spec, state=state, round=plan.round)
    opened = next(a for a in plan.actions if a.kind == "open_feed")
    KINDS["open_feed"].run(ctx, opened)
    return {"plan": plan}, ctx, next(a for a in plan.actions if a.kind == "catch_up"), \
        next(a for a in plan.actions if a.kind == "close_feed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-cdc-bench-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    from vecmig.actions import KINDS
    from vecmig.providers.pgvector import embedded

    dsn = embedded.acquire(workdir / "pg")
    os.environ["BENCH_DSN"] = dsn
    out: dict[str, Any] = {"records": args.records, "dim": args.dim, "machine": base.machine()}
    try:
        base.seed_table(dsn, "bench_src", args.records, args.dim)
        base.drop(dsn, "bench_dst")
        spec_path = workdir / "cdc.yaml"
        spec_path.write_text(SPEC)
        _, ctx, catch_up, close = vecmig_catch_up(spec_path, workdir)
        copy_table(dsn, "bench_src", "bench_dst")
        copy_table(dsn, "bench_src", "bench_before")  # the baseline starts from the same target
        touched = write_changes(dsn, args.records, args.changes)
        base.settle(dsn)
        started = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            result = prof.runcall(KINDS["catch_up"].run, ctx, catch_up)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        else:
            result = KINDS["catch_up"].run(ctx, catch_up)
        out["vecmig_s"] = time.perf_counter() - started
        out["vecmig_result"] = result
        KINDS["close_feed"].run(ctx, close)
        copy_table(dsn, "bench_before", "bench_dst")
        base.settle(dsn)
        out["baseline_s"] = baseline(dsn, touched)
        out["changes"] = len(touched)
    finally:
        embedded.release(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    v = out["changes"] / out["vecmig_s"]
    b = out["changes"] / out["baseline_s"]
    out["ratio"] = v / b
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    (base.RESULTS / "cdc-latest.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"""## CDC catch-up, {args.records:,} × {args.dim}, {out['changes']:,} changes

| | seconds | changes/s |
|---|---:|---:|
| vecmig catch_up (decode WAL, re-read, upsert/delete, checkpoint, confirm) | {out['vecmig_s']:.2f} | {v:,.0f} |
| INSERT … ON CONFLICT + DELETE per 1,000 ids (ids given) | {out['baseline_s']:.2f} | {b:,.0f} |
| ratio | | {out['ratio']:.2f}× |
""")


if __name__ == "__main__":
    main()
