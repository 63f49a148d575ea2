"""Record-level diff benchmark: plan time on two identical tables, and catching up 0.1 %.

Ratios against baselines measured in the same run, on the same data (pgvector → pgvector):

* plan on two identical tables (the diff hashes every record on both servers) against
  ``count(*)`` of both tables, and against reading every record of both (``SELECT *``
  streamed through psycopg in binary, what a client-side diff must at least do);
* after changing 0.1 % of the source (a third inserted, a third updated in place, a third
  deleted): ``plan`` + ``apply`` of the catch-up as a share of the full apply that made the
  target (goal: under 10 %).

Usage (repository root, after ``pip install -e '.[test]'``)::

    python bench/record_diff.py --records 1000000 --dim 384
    python bench/record_diff.py --records 100000 --dim 384     # a quick look

Prints Markdown and writes ``bench/results/record_diff-latest.json``.
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

PG_SOURCE = ('{provider: pgvector, connection: {dsn: "${env:BENCH_DSN}"}, collection: bench_src, '
             "fields: {id: id, vector: embedding, text: body}}")


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def count_both(dsn: str) -> float:
    def go() -> None:
        with psycopg.connect(dsn) as conn:
            for t in ("bench_src", "bench_dst"):
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()
    return min(timed(go) for _ in range(3))


def read_both(dsn: str) -> float:
    def go() -> None:
        with psycopg.connect(dsn) as conn:
            for t in ("bench_src", "bench_dst"):
                query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT BINARY)").format(sql.Identifier(t))
                with conn.cursor(binary=True) as cur, cur.copy(query) as copy:
                    for _ in copy:
                        pass
    return min(timed(go) for _ in range(2))


def vecmig_time(args: list[str], dsn: str, cwd: Path) -> float:
    return base.run_child(base.vecmig_cmd(*args), {"BENCH_DSN": dsn}, cwd)[0]  # raises on a failure


def change_source(dsn: str, records: int) -> int:
    n = max(3, records // 1000)
    third = n // 3
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE fresh AS SELECT * FROM bench_src WHERE id <= %s", (third,))
        conn.execute("UPDATE fresh SET id = id + %s", (10 * records,))
        conn.execute("INSERT INTO bench_src SELECT * FROM fresh")
        conn.execute("UPDATE bench_src SET body = body || ' (edited)' WHERE id %% %s = 7", (records // third,))
        conn.execute("DELETE FROM bench_src WHERE id %% %s = 11", (records // third,))
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-diff-bench-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    from vecmig.providers.pgvector import embedded

    dsn = args.dsn or embedded.acquire(workdir / "pg")
    out: dict[str, Any] = {"records": args.records, "dim": args.dim, "machine": base.machine(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        base.seed_table(dsn, "bench_src", args.records, args.dim)
        base.drop(dsn, "bench_dst")
        spec = base.write_spec(workdir, "diffbench", PG_SOURCE, "bench_dst", args.records)
        base.settle(dsn)
        out["full_apply_s"] = vecmig_time(["apply", str(spec), "--auto-approve"], dsn, workdir)
        base.settle(dsn)
        out["plan_identical_s"] = min(vecmig_time(["plan", str(spec)], dsn, workdir)
                                      for _ in range(2))
        out["count_both_s"] = count_both(dsn)
        out["read_both_s"] = read_both(dsn)
        out["changed"] = change_source(dsn, args.records)
        base.settle(dsn)
        out["catchup_plan_s"] = vecmig_time(["plan", str(spec)], dsn, workdir)
        out["catchup_apply_s"] = vecmig_time(["apply", str(spec), "--auto-approve"], dsn, workdir)
    finally:
        if not args.dsn:
            embedded.release(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    catchup = out["catchup_plan_s"] + out["catchup_apply_s"]
    out["ratios"] = {
        "plan_vs_count": out["plan_identical_s"] / out["count_both_s"],
        "plan_vs_read_all": out["plan_identical_s"] / out["read_both_s"],
        "catchup_vs_full_apply": catchup / out["full_apply_s"],
    }
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    (base.RESULTS / "record_diff-latest.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    r = out["ratios"]
    print(f"""## Record-level diff, {args.records:,} × {args.dim} pgvector → pgvector

| measurement | seconds | ratio |
|---|---:|---:|
| full apply (fresh copy, validation included) | {out['full_apply_s']:.2f} | 1 |
| `plan` on two identical tables (CLI, start-up included) | {out['plan_identical_s']:.2f} | — |
| `count(*)` of both tables | {out['count_both_s']:.3f} | plan is {r['plan_vs_count']:.0f}× |
| reading every record of both (binary COPY out) | {out['read_both_s']:.2f} | plan is {r['plan_vs_read_all']:.2f}× |
| catch-up after changing {out['changed']:,} records (0.1 %): plan + apply | {catchup:.2f} | \
{r['catchup_vs_full_apply']:.1%} of the full apply |
| … of which `plan` | {out['catchup_plan_s']:.2f} | — |
| … of which `apply` (diff again, copy, delete, validation) | {out['catchup_apply_s']:.2f} | — |
""")


if __name__ == "__main__":
    main()
