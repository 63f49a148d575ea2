"""What each action really takes on this machine, next to what the first plan estimated.

The providers' throughput models (records/s, MB/s, fixed start-up per action) are fitted from
these numbers; re-run this after changing a copy path or moving to another machine:

    python bench/estimate_models.py                                  # 20k and 100k × 64/384/768
    python bench/estimate_models.py --sizes 20000 --dims 64 --repeat 1 --cases pg_pg

Each case runs ``vecmig apply SPEC --auto-approve`` in a child process exactly as a user does
(first round, nothing in state: the model-based estimates are what is checked), then reads the
state: every action's ``actual_seconds``, the copy wave (first start to last finish) and the
run's seconds, and prints them beside the plan's ranges with the rate they imply. The machine
is shared, so each case is repeated and the table shows the minimum and median of the actuals;
``os.getloadavg()`` is printed next to each repetition.

Cases (source → target): ``pg_pg`` (the native binary COPY path), ``pg_jsonl``, ``pg_parquet``,
``jsonl_pg``, ``parquet_pg`` (the files pg_jsonl/pg_parquet wrote), ``pg_pinecone`` and
``pinecone_pg`` (the local test server, tests/pinecone_local, in its own process), and
``replan`` (pg_pg again after 2 % of the source changed and 1 % was deleted: the plan's
record-level diff, upsert copy by id and delete_extra), ``pg_hnsw`` and ``pg_ivfflat`` (pg_pg
with the index built after the load). ``--json`` appends every row
(JSON lines) as it is measured; ``--summary FILE`` prints the table of such a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import run as suite

CASES = ("pg_pg", "pg_jsonl", "pg_parquet", "jsonl_pg", "parquet_pg", "replan", "pg_pinecone", "pinecone_pg",
         "pg_hnsw", "pg_ivfflat")
PINECONE_KEY = "pcsk_bench-estimate-models"

PG = '{{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, collection: {table}, ' \
     "fields: {{id: id, vector: embedding, text: body}}{create}}}"
SPEC = """\
version: 1
name: {name}
source: {source}
target: {target}
strategy: {{type: big-bang, batch_size: {batch}, concurrency: {concurrency}{shard}}}
"""


def pg_block(table: str, create: bool = False, index: str = "none") -> str:
    return PG.format(table=table, create=f", create: {{index: {{type: {index}}}}}" if create else "")


def pinecone_block(url: str, index: str) -> str:
    return (f'{{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{url}", '
            f"concurrency: 2}}, collection: {index}}}")


def write_spec(workdir: Path, name: str, source: str, target: str, args: argparse.Namespace) -> Path:
    path = workdir / f"{name}.yaml"
    # A Pinecone source is read one shard per namespace: shard_size does not apply.
    shard = "" if "provider: pinecone" in source else f", shard_size: {args.shard}"
    path.write_text(SPEC.format(name=name, source=source, target=target, batch=args.batch,
                                concurrency=args.concurrency, shard=shard))
    return path


def state_rows(db: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        rounds = [dict(r) for r in c.execute("SELECT * FROM rounds ORDER BY round")]
        actions = [dict(r) for r in c.execute("SELECT * FROM actions ORDER BY round, seq")]
        runs = [dict(r) for r in c.execute("SELECT * FROM runs ORDER BY id")]
    for run in runs:
        run.update(json.loads(run.get("data_json") or "{}") if "data_json" in run else {})
    with sqlite3.connect(db) as c:
        events = [json.loads(r[0]) for r in c.execute(
            "SELECT data_json FROM audit WHERE event = 'run_finished' ORDER BY seq")]
    for run, ev in zip(runs, events, strict=False):
        run["seconds"] = ev.get("seconds")
        run["copy_seconds"] = ev.get("copy_seconds")
    return rounds, actions, runs


def measure_round(case: str, spec: Path, env: dict[str, str], n: int, dim: int,
                  round_no: int = 1) -> list[dict[str, Any]]:
    """One ``vecmig plan`` and one ``vecmig apply`` in child processes; rows per action kind."""
    workdir = spec.parent
    probe = probe_rate(spec, env)
    plan_wall, _, _ = suite.run_child(suite.vecmig_cmd("plan", str(spec), "--json"), env, workdir)
    load = os.getloadavg()[0]
    wall, _, _ = suite.run_child(suite.vecmig_cmd("apply", str(spec), "--auto-approve"), env, workdir)
    rounds, actions, runs = state_rows(workdir / ".vecmig" / f"{spec.stem}.db")
    plan = json.loads(rounds[round_no - 1]["plan_json"])
    planned = {a["id"]: a["estimate"] for a in plan["actions"]}
    done = [a for a in actions if a["round"] == round_no]
    by_kind: dict[str, dict[str, Any]] = {}
    for a in done:
        est = planned[a["action_id"]]
        row = by_kind.setdefault(a["kind"], {"low": 0.0, "high": 0.0, "actual": 0.0, "records": 0,
                                             "starts": [], "ends": [], "bytes": 0})
        row["low"] += est["seconds_low"]
        row["high"] += est["seconds_high"]
        row["actual"] += float(a["actual_seconds"] or 0.0)
        row["records"] += int(a["records"] or 0)
        row["bytes"] += int(est.get("bytes") or 0)
        row["starts"].append(datetime.fromisoformat(a["started"]))
        row["ends"].append(datetime.fromisoformat(a["finished"]))
    out = []
    for kind, row in by_kind.items():
        if kind == "copy_shard":
            row["actual"] = (max(row["ends"]) - min(row["starts"])).total_seconds()
        out.append({"case": case, "n": n, "dim": dim, "round": round_no, "kind": kind, "load": round(load, 2),
                    "low": round(row["low"], 3), "high": round(row["high"], 3), "actual": round(row["actual"], 3),
                    "records": row["records"], "bytes": row["bytes"], "probe": probe})
    run = [r for r in runs if r["round"] == round_no][-1]
    totals = plan["totals"]
    out.append({"case": case, "n": n, "dim": dim, "round": round_no, "kind": "run", "load": round(load, 2),
                "low": totals["seconds_low"], "high": totals["seconds_high"], "actual": run["seconds"],
                "records": 0, "bytes": 0, "probe": probe})
    # The command end to end: the run plus what the plan says start-up and its own reads take.
    start = plan.get("start_up") or {}
    out.append({"case": case, "n": n, "dim": dim, "round": round_no, "kind": "cli_apply", "load": round(load, 2),
                "low": round(totals["seconds_low"] + float(start.get("seconds_low") or 0.0), 3),
                "high": round(totals["seconds_high"] + float(start.get("seconds_high") or 0.0), 3),
                "actual": round(wall, 3),
                "records": 0, "bytes": 0, "probe": probe})
    out.append({"case": case, "n": n, "dim": dim, "round": round_no, "kind": "cli_plan", "load": round(load, 2),
                "low": 0.0, "high": 0.0, "actual": round(plan_wall, 3), "records": 0, "bytes": 0, "probe": probe})
    return out


def probe_rate(spec: Path, env: dict[str, str]) -> float:
    """How fast this machine reads the source right now (records/s over the first shard's
    first few 1000-record batches, median of three): the load each measurement ran under."""
    import time

    from vecmig.providers import provider_class
    from vecmig.spec_loader import load_spec

    loaded = load_spec(spec, env)
    rates = []
    for _ in range(3):
        with provider_class(loaded.source.provider)(loaded.source) as src:
            inv = src.inventory()
            shards = list(src.shards(inv, loaded.strategy.shard_size)) if inv.exists else []
            records, started = 0, time.perf_counter()
            for i, batch in enumerate(src.scan(shards[0] if shards else None, None, 1000)):
                records += len(batch)
                if i >= 4:
                    break
            seconds = time.perf_counter() - started
            rates.append(records / seconds if seconds > 0 else 0.0)
    return round(statistics.median(rates))


def fresh(workdir: Path, dsn: str, *tables: str) -> None:
    shutil.rmtree(workdir / ".vecmig", ignore_errors=True)
    for t in tables:
        suite.drop(dsn, t)


def run_case(case: str, n: int, dim: int, dsn: str, workdir: Path, args: argparse.Namespace,
             pinecone_url: str | None) -> list[dict[str, Any]]:
    src = f"src_{n}_{dim}"
    env = {"BENCH_DSN": dsn, "PINECONE_API_KEY": PINECONE_KEY}
    jsonl, parquet = workdir / f"{src}.jsonl", workdir / f"{src}.parquet"
    if case == "pg_pg":
        fresh(workdir, dsn, "dst")
        spec = write_spec(workdir, "pg_pg", pg_block(src), pg_block("dst", create=True), args)
        return measure_round(case, spec, env, n, dim)
    if case in ("pg_hnsw", "pg_ivfflat"):
        fresh(workdir, dsn, "dst")
        spec = write_spec(workdir, case, pg_block(src), pg_block("dst", create=True, index=case[3:]), args)
        return measure_round(case, spec, env, n, dim)
    if case in ("pg_jsonl", "pg_parquet"):
        path = jsonl if case == "pg_jsonl" else parquet
        path.unlink(missing_ok=True)
        fresh(workdir, dsn)
        fmt = case.split("_")[1]
        spec = write_spec(workdir, case, pg_block(src), f"{{provider: {fmt}, connection: {{path: {path.name}}}}}",
                          args)
        return measure_round(case, spec, env, n, dim)
    if case in ("jsonl_pg", "parquet_pg"):
        path = jsonl if case == "jsonl_pg" else parquet
        if not path.exists():
            run_case("pg_" + case.split("_")[0], n, dim, dsn, workdir, args, pinecone_url)
        fresh(workdir, dsn, "dst")
        fmt = case.split("_")[0]
        spec = write_spec(workdir, case, f"{{provider: {fmt}, connection: {{path: {path.name}}}}}",
                          pg_block("dst", create=True), args)
        return measure_round(case, spec, env, n, dim)
    if case == "replan":
        fresh(workdir, dsn, "dst", "src_replan")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE src_replan AS SELECT * FROM {src}")
            conn.execute("ALTER TABLE src_replan ADD PRIMARY KEY (id)")
        spec = write_spec(workdir, "replan", pg_block("src_replan"), pg_block("dst", create=True), args)
        first = measure_round("replan-r1", spec, env, n, dim)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE src_replan SET body = coalesce(body, '') || 'x' WHERE id % 50 = 0")
            conn.execute("DELETE FROM src_replan WHERE id % 100 = 7")
        return first + measure_round("replan-r2", spec, env, n, dim, round_no=2)
    if case in ("pg_pinecone", "pinecone_pg"):
        assert pinecone_url is not None
        index = f"bench-{n}-{dim}"
        if case == "pg_pinecone":
            fresh(workdir, dsn)
            reset_pinecone(pinecone_url, index)
            spec = write_spec(workdir, case, pg_block(src), pinecone_block(pinecone_url, index), args)
            return measure_round(case, spec, env, n, dim)
        if not pinecone_has(pinecone_url, index):
            run_case("pg_pinecone", n, dim, dsn, workdir, args, pinecone_url)
        fresh(workdir, dsn, "dst")
        spec = write_spec(workdir, case, pinecone_block(pinecone_url, index), pg_block("dst", create=True), args)
        return measure_round(case, spec, env, n, dim)
    raise SystemExit(f"unknown case {case}")


def reset_pinecone(url: str, index: str) -> None:
    from pinecone import Pinecone

    with Pinecone(api_key=PINECONE_KEY, host=url) as pc:
        if index in {m.name for m in pc.indexes.list()}:
            pc.indexes.delete(index)


def pinecone_has(url: str, index: str) -> bool:
    from pinecone import Pinecone

    with Pinecone(api_key=PINECONE_KEY, host=url) as pc:
        return index in {m.name for m in pc.indexes.list()}


def summarise(rows: list[dict[str, Any]]) -> list[str]:
    groups: dict[tuple[str, int, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["n"], r["dim"], r["kind"]), []).append(r)
    lines = [f"{'case':<11} {'n':>7} {'dim':>4} {'kind':<22} {'planned':>15} {'min':>7} {'median':>7} "
             f"{'rate/s (min)':>12} {'in':>3} {'load':>5} {'probe/s':>8}"]
    for (case, n, dim, kind), got in groups.items():
        actual = [g["actual"] for g in got]
        lo, hi = got[0]["low"], got[0]["high"]
        best, med = min(actual), statistics.median(actual)
        recs = got[0]["records"] or (n if kind not in ("run", "cli_apply", "cli_plan") else 0)
        rate = f"{recs / best:,.0f}" if recs and best > 0 else ""
        inside = "yes" if lo <= med <= hi else ("-" if not hi else "NO")
        lines.append(f"{case:<11} {n:>7} {dim:>4} {kind:<22} {lo:>7.2f}-{hi:<7.2f} {best:>7.2f} {med:>7.2f} "
                     f"{rate:>12} {inside:>3} {statistics.median(g['load'] for g in got):>5.1f} "
                     f"{statistics.median(g.get('probe', 0) for g in got):>8,.0f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--dims", default="64,384,768")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--shard", type=int, default=10_000)
    ap.add_argument("--dsn", default=None, help="an existing server (default: an embedded one)")
    ap.add_argument("--json", type=Path, default=None, help="append every row here (JSON lines)")
    ap.add_argument("--summary", type=Path, default=None, help="only print the table of a --json file")
    args = ap.parse_args()
    if args.summary:
        print("\n".join(summarise([json.loads(line) for line in args.summary.read_text().splitlines()])))
        return
    cases = [c for c in args.cases.split(",") if c]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vecmig-est-") as tmp:
        workdir = Path(tmp)
        data = workdir / "pg"
        dsn = args.dsn
        if dsn is None:
            from vecmig.providers.pgvector import embedded

            dsn = embedded.acquire(data)
        spawned = None
        if any("pinecone" in c for c in cases):
            from tests.pinecone_local import PineconeLocal

            spawned = PineconeLocal.spawn(api_key=PINECONE_KEY)
            spawned.__enter__()
        try:
            for dim in (int(d) for d in args.dims.split(",")):
                for n in (int(s) for s in args.sizes.split(",")):
                    suite.seed_table(dsn, f"src_{n}_{dim}", n, dim)
                    for case in cases:
                        if "pinecone" in case and n > 20_000:
                            continue  # the local server holds everything in one Python process
                        for rep in range(args.repeat):
                            started = time.perf_counter()
                            got = run_case(case, n, dim, dsn, workdir, args, spawned.url if spawned else None)
                            for g in got:
                                g["rep"] = rep
                            rows.extend(got)
                            if args.json:  # as it goes: a long run that fails keeps what it measured
                                with args.json.open("a") as f:
                                    f.writelines(json.dumps(g, default=str) + "\n" for g in got)
                            print(f"# {case} n={n} dim={dim} rep={rep}: {time.perf_counter() - started:.1f}s "
                                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        finally:
            if spawned is not None:
                spawned.__exit__(None, None, None)
            if args.dsn is None:
                from vecmig.providers.pgvector import embedded

                embedded.release(data)
    print(f"machine: {os.cpu_count()} cores; load average at the end {os.getloadavg()}")
    print("\n".join(summarise(rows)))


if __name__ == "__main__":
    main()
