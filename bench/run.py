"""vecmig benchmarks: throughput, memory, checkpoint cost, resume cost and plan time.

Every figure is reported next to a baseline measured in the same run, on the same data:

* pgvector → pgvector against the raw PostgreSQL pipe
  ``COPY (SELECT …) TO STDOUT (FORMAT BINARY)`` → ``COPY … FROM STDIN (FORMAT BINARY)``
  (the physical limit here) and against the script a user would write instead
  (``fetchmany`` + ``executemany``);
* file → pgvector (JSONL and Parquet holding the same records) against ``COPY … FROM``
  the same records in PostgreSQL's binary format;
* Pinecone through ``bench/pinecone_throughput.py`` (request counts against the minimum
  the limits allow, records/s at several concurrencies with injected latency).

vecmig runs exactly as a user runs it: ``vecmig apply SPEC --auto-approve`` in a child
process (checkpoints and the completeness validation with checksums on), so start-up,
planning and the state store are all inside the measurement; the copy phase is also
reported on its own (from the run's timings in the state store).

Usage (from the repository root, after ``pip install -e '.[test]'``)::

    python bench/run.py                       # 100k and 1M records, 384 and 768 dims
    python bench/run.py --sizes 100000 --dims 384 --skip-pinecone   # a quick look

Writes ``bench/results/<timestamp>.json``, ``latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

TARGETS = {
    "pg_vs_raw": 0.90,  # pgvector → pgvector ≥ 90 % of the raw COPY pipe
    "pg_vs_naive": 5.0,  # ≥ 5× the naive script
    "file_vs_copy": 0.80,  # file → pgvector ≥ 80 % of COPY
    "rss_growth": 0.10,  # peak RSS flat within 10 % from 100k to 1M
    "checkpoint_share": 0.03,  # checkpoints ≤ 3 % of the copy
    "plan_seconds_1m": 2.0,  # plan on a 1M-record source under 2 s
}


# ---- helpers -------------------------------------------------------------------------------


def vecmig_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vecmig.cli", *args]


def run_child(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of the child, stdout; raises on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "NO_COLOR": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    # wait4 on an already-reaped child is not possible; communicate() reaped it, so take the
    # children's high-water mark, which this harness resets by running one child at a time.
    rss = _max_child_rss()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return seconds, rss, out


def _max_child_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


# Runs a command and writes its peak RSS (KiB) to the file named by VECMIG_BENCH_RSS. The
# detour matters: Linux carries a process's RSS high-water mark across exec, and Python's
# subprocess starts children with vfork, in this harness's memory. Measured directly, every
# child reported at least the harness's own peak (after seeding 1M records in-process: ~180
# MiB, against ~155 MiB for vecmig itself). This small launcher forks a copy of itself.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["VECMIG_BENCH_RSS"], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def peak_rss_of(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Like run_child, with the child's own peak RSS (see _LAUNCHER), not the running maximum."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        launch = [sys.executable, "-c", _LAUNCHER, *cmd]
        proc = subprocess.Popen(launch, cwd=cwd, stdout=out, stderr=err, text=True,
                                env={**os.environ, "NO_COLOR": "1", "VECMIG_BENCH_RSS": rss_file.name, **env})
        proc.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        rss = int(rss_file.read() or 0)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()[-500:]}")
    return seconds, rss, stdout


def last_run_timings(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT data_json FROM audit WHERE event = 'run_finished' ORDER BY seq DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row else {}


@dataclass
class Source:
    dsn: str
    table: str
    records: int
    dim: int


def seed_table(dsn: str, table: str, records: int, dim: int) -> None:
    from vecmig import sample
    from vecmig.providers.base import CollectionSchema
    from vecmig.providers.pgvector import PgvectorProvider
    from vecmig.spec import Fields, StoreSpec

    store = StoreSpec(provider="pgvector", connection={"dsn": dsn}, collection=table,
                      fields=Fields(text="body"), pointer="/source")
    with PgvectorProvider(store) as p:
        if p.inventory().exists and p.count() == records:
            return
        if p.inventory().exists:
            p.drop_collection()
        p.create_collection(CollectionSchema(dim, "cosine", "int", dict(sample.METADATA_TYPES), True))
        p.expect_new_records()
        for batch in sample.batches(records, dim, batch_size=5000, seed=records + dim):
            p.upsert(batch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def fresh_like(conn: psycopg.Connection[Any], src: str, dst: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(dst)))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(sql.Identifier(dst), sql.Identifier(src)))
    conn.commit()


# ---- baselines -------------------------------------------------------------------------------


def raw_copy_pipe(dsn: str, src: str, records: int) -> float:
    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:
        fresh_like(b, src, "bench_raw")
        started = time.perf_counter()
        out_sql = sql.SQL("COPY (SELECT * FROM {} ORDER BY id) TO STDOUT (FORMAT BINARY)").format(sql.Identifier(src))
        with a.cursor().copy(out_sql) as cin, b.cursor().copy("COPY bench_raw FROM STDIN (FORMAT BINARY)") as cout:
            for chunk in cin:
                cout.write(chunk)
        b.commit()
        seconds = time.perf_counter() - started
        b.execute("DROP TABLE bench_raw")
        b.commit()
    return records / seconds


def naive_script(dsn: str, src: str, records: int) -> float:
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:
        register_vector(a)
        register_vector(b)
        fresh_like(b, src, "bench_naive")
        started = time.perf_counter()
        cur = a.cursor(name="naive")
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(src)))
        while rows := cur.fetchmany(1000):
            marks = ", ".join(["%s"] * len(rows[0]))
            with b.cursor() as w:
                w.executemany(f"INSERT INTO bench_naive VALUES ({marks})", rows)
            b.commit()
        seconds = time.perf_counter() - started
        b.execute("DROP TABLE bench_naive")
        b.commit()
    return records / seconds


def copy_from_file(dsn: str, src: str, records: int, workdir: Path) -> float:
    """COPY FROM the same records in PostgreSQL's binary format (the file → table limit)."""
    path = workdir / f"{src}.pgcopy"
    with psycopg.connect(dsn) as conn:
        with path.open("wb") as f, conn.cursor().copy(
                sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(sql.Identifier(src))) as cin:
            for chunk in cin:
                f.write(chunk)
        fresh_like(conn, src, "bench_copyin")
        started = time.perf_counter()
        with path.open("rb") as f, conn.cursor().copy("COPY bench_copyin FROM STDIN (FORMAT BINARY)") as cout:
            while chunk := f.read(1 << 20):
                cout.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copyin")
        conn.commit()
    path.unlink()
    return records / seconds


# ---- vecmig runs -----------------------------------------------------------------------------


SPEC = """\
version: 1
name: {name}
source: {source}
target: {{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, collection: {target},
         fields: {{id: id, vector: embedding, text: body}}, create: {{index: {{type: none}}}}}}
strategy: {{type: big-bang, batch_size: {batch}, concurrency: 2, shard_size: {shard}}}
validate: {{completeness: {{checksums: true}}}}
"""


def write_spec(workdir: Path, name: str, source: str, target: str, records: int, batch: int = 2000) -> Path:
    shard = max(records // 8, 10_000)
    path = workdir / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, source=source, target=target, batch=batch, shard=shard))
    return path


def drop(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
    settle(dsn)


def settle(dsn: str) -> None:
    """Each measurement starts from a checkpointed server: otherwise the checkpointer is still
    flushing the previous step's WAL (a 1M-row baseline writes ~2 GB) during the next one,
    slowing its writes (and making vecmig's pages queue up in memory)."""
    with psycopg.connect(dsn, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")  # needs superuser or pg_checkpoint; skipped otherwise


def vecmig_apply(spec: Path, dsn: str, records: int) -> dict[str, Any]:
    workdir = spec.parent
    shutil.rmtree(workdir / ".vecmig", ignore_errors=True)
    env = {"BENCH_DSN": dsn}
    seconds, rss, _ = peak_rss_of(vecmig_cmd("apply", str(spec), "--auto-approve"), env, workdir)
    data = last_run_timings(workdir / ".vecmig" / f"{spec.stem}.db")
    copy_s = float(data.get("copy_seconds") or seconds)
    timings = data.get("timings", {})
    return {
        "records": records, "apply_seconds": round(seconds, 3), "copy_seconds": round(copy_s, 3),
        "apply_rps": records / seconds, "copy_rps": records / copy_s, "peak_rss_mib": rss / 1024,
        "timings": timings,
        "checkpoint_share": (timings.get("checkpoint", 0.0) / max(sum(timings.values()), 1e-9)) if timings else None,
        "state_bytes": (workdir / ".vecmig" / f"{spec.stem}.db").stat().st_size,
    }


def plan_time(spec: Path, dsn: str) -> dict[str, float]:
    env = {"BENCH_DSN": dsn}
    shutil.rmtree(spec.parent / ".vecmig", ignore_errors=True)
    runs = [run_child(vecmig_cmd("plan", str(spec), "--json"), env, spec.parent)[0] for _ in range(3)]
    # The same plan in-process: without the interpreter's start-up and imports.
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh
    from vecmig.spec_loader import load_spec

    os.environ["BENCH_DSN"] = dsn
    loaded = load_spec(spec)
    started = time.perf_counter()
    make_plan(loaded, None, refresh(loaded))
    inproc = time.perf_counter() - started
    return {"cli_seconds": min(runs), "in_process_seconds": inproc}


def redone_after_kill(spec: Path, dsn: str, target: str, records: int) -> dict[str, Any]:
    workdir = spec.parent
    shutil.rmtree(workdir / ".vecmig", ignore_errors=True)
    drop(dsn, target)
    env = {**os.environ, "NO_COLOR": "1", "BENCH_DSN": dsn}
    db = workdir / ".vecmig" / f"{spec.stem}.db"
    proc = subprocess.Popen(vecmig_cmd("apply", str(spec), "--auto-approve"), cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        done = 0
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                    done = c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()[0]
            except sqlite3.Error:
                pass
        if done >= records // 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    started = time.perf_counter()
    subprocess.run(vecmig_cmd("apply", str(spec), "--auto-approve"), cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_seconds = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(100):
            conn.execute("SELECT pg_stat_clear_snapshot()")
            ins, upd = conn.execute("SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = %s",
                                    (target,)).fetchone()
            if ins >= records:
                break
            time.sleep(0.1)
    return {"redone_records": int(upd), "resume_seconds": round(resume_seconds, 3)}


# The same records as files: JSONL; Parquet as vecmig writes it by default (metadata as one
# JSON document per row); Parquet with one typed column per metadata field (as data teams
# usually write it). Each label maps to (provider, extra target keys for the export).
FILE_KINDS = {
    "jsonl": ("jsonl", ""),
    "parquet": ("parquet", ""),
    "parquet_typed": ("parquet", ", fields: {metadata: [title, lang, year, score, published, tags]}"),
}


def write_files(dsn: str, src: str, workdir: Path) -> dict[str, Path]:
    """The same records in each of FILE_KINDS, written by vecmig itself (pgvector → file)."""
    out = {}
    for label, (fmt, extra) in FILE_KINDS.items():
        path = workdir / f"{src}-{label}.{fmt}"
        spec = workdir / f"export-{label}.yaml"
        spec.write_text(
            f"version: 1\nname: export-{label}\n"
            f"source: {{provider: pgvector, connection: {{dsn: \"${{env:BENCH_DSN}}\"}}, collection: {src}, "
            f"fields: {{id: id, vector: embedding, text: body}}}}\n"
            f"target: {{provider: {fmt}, connection: {{path: {path.name}}}{extra}}}\n"
            f"strategy: {{type: big-bang, batch_size: 5000, concurrency: 2}}\n"
            f"validate: {{completeness: false}}\n")
        shutil.rmtree(workdir / ".vecmig", ignore_errors=True)
        run_child(vecmig_cmd("apply", str(spec), "--auto-approve"), {"BENCH_DSN": dsn}, workdir)
        out[label] = path
    return out


# ---- the run -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import numpy as np
    import pgvector

    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "numpy": np.__version__, "psycopg": psycopg.__version__,
            "pgvector_python": getattr(pgvector, "__version__", "?"), "postgres": "16 (pgserver)"}


def bench_size(dsn: str, workdir: Path, records: int, dim: int, naive: bool, files: bool) -> dict[str, Any]:
    src = f"bench_src_{dim}_{records}"
    print(f"[{records:,} × {dim}] seeding {src} …", flush=True)
    seed_table(dsn, src, records, dim)
    row: dict[str, Any] = {"records": records, "dim": dim}
    print("  raw COPY pipe …", flush=True)
    settle(dsn)
    row["raw_pipe_rps"] = raw_copy_pipe(dsn, src, records)
    if naive:
        print("  naive script …", flush=True)
        settle(dsn)
        row["naive_rps"] = naive_script(dsn, src, records)
    print("  vecmig pgvector → pgvector …", flush=True)
    source = (f'{{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, '
              f"collection: {src}, fields: {{id: id, vector: embedding, text: body}}}}")
    spec = write_spec(workdir, f"pg2pg-{dim}-{records}", source, f"bench_dst_{dim}", records)
    drop(dsn, f"bench_dst_{dim}")
    row["pg2pg"] = vecmig_apply(spec, dsn, records)
    print("  plan time …", flush=True)
    drop(dsn, f"bench_dst_{dim}")
    row["plan"] = plan_time(spec, dsn)
    print("  SIGKILL at 50 % and resume …", flush=True)
    row["kill_resume"] = redone_after_kill(spec, dsn, f"bench_dst_{dim}", records)
    drop(dsn, f"bench_dst_{dim}")
    if not files:
        return row
    print("  COPY FROM file baseline …", flush=True)
    settle(dsn)
    row["copy_in_rps"] = copy_from_file(dsn, src, records, workdir)
    for label, path in write_files(dsn, src, workdir).items():
        fmt = FILE_KINDS[label][0]
        print(f"  vecmig {label} → pgvector …", flush=True)
        source = f"{{provider: {fmt}, connection: {{path: {path.name}}}}}"
        spec = write_spec(workdir, f"{label}2pg-{dim}-{records}", source, f"bench_dst_{label}", records)
        drop(dsn, f"bench_dst_{label}")
        row[f"{label}2pg"] = vecmig_apply(spec, dsn, records)
        drop(dsn, f"bench_dst_{label}")
        path.unlink()
    return row


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# vecmig benchmark — {result['started']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
             f"PostgreSQL {m['postgres']}, psycopg {m['psycopg']}. Command: `{result['command']}`", "",
             "## pgvector → pgvector (checkpoints and checksum validation on)", "",
             "| records × dim | raw COPY pipe rec/s | naive script rec/s | vecmig copy rec/s | copy ÷ raw | "
             "copy ÷ naive | whole apply rec/s (incl. validation) | peak RSS MiB | checkpoint share | "
             "state file |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    naive_by_dim: dict[int, float] = {}
    for row in result["rows"]:
        if row.get("naive_rps"):
            naive_by_dim[row["dim"]] = row["naive_rps"]
    for row in result["rows"]:
        v = row["pg2pg"]
        naive = row.get("naive_rps") or naive_by_dim.get(row["dim"])
        share = v.get("checkpoint_share")
        lines.append(
            f"| {row['records']:,} × {row['dim']} | {row['raw_pipe_rps']:,.0f} | "
            f"{(f'{naive:,.0f}' + ('' if row.get('naive_rps') else '*')) if naive else '–'} | {v['copy_rps']:,.0f} | "
            f"{ratio(v['copy_rps'], row['raw_pipe_rps'])} | {ratio(v['copy_rps'], naive)} | {v['apply_rps']:,.0f} | "
            f"{v['peak_rss_mib']:,.0f} | {f'{share:.1%}' if share is not None else '–'} | "
            f"{v['state_bytes'] / 1024:,.0f} KiB |")
    lines += ["", "\\* naive script measured at the smaller size, same dimension.", "",
              "## file → pgvector", "",
              "| records × dim | COPY FROM binary file rec/s | JSONL copy rec/s | ÷ COPY | Parquet (JSON metadata) "
              "rec/s | ÷ COPY | Parquet (typed columns) rec/s | ÷ COPY |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        if "jsonl2pg" not in row:
            continue
        cells = [f"{row['records']:,} × {row['dim']}", f"{row['copy_in_rps']:,.0f}"]
        for label in FILE_KINDS:
            v = row.get(f"{label}2pg")
            cells += [f"{v['copy_rps']:,.0f}", ratio(v["copy_rps"], row["copy_in_rps"])] if v else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Plan time, resume cost", "",
              "| records × dim | `vecmig plan` (CLI, incl. start-up) | plan in-process | SIGKILL at 50 %: records "
              "rewritten | resume apply |", "|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['records']:,} × {row['dim']} | {row['plan']['cli_seconds']:.2f} s | "
                     f"{row['plan']['in_process_seconds']:.2f} s | {row['kill_resume']['redone_records']:,} | "
                     f"{row['kill_resume']['resume_seconds']:.1f} s |")
    rss = {(r["dim"], r["records"]): r["pg2pg"]["peak_rss_mib"] for r in result["rows"]}
    growth = []
    for (dim, n), v in sorted(rss.items()):
        small = min((k for k in rss if k[0] == dim), key=lambda k: k[1])
        if n != small[1]:
            growth.append(f"{dim} dims: {rss[small]:,.0f} → {v:,.0f} MiB ({v / rss[small] - 1:+.0%})")
    if growth:
        lines += ["", "Peak RSS growth from the smallest to the largest size: " + "; ".join(growth) + "."]
    if result.get("pinecone"):
        lines += ["", "## Pinecone (local server, see bench/pinecone_throughput.py)", "", result["pinecone"].strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dims", default="384,768")
    parser.add_argument("--skip-pinecone", action="store_true")
    parser.add_argument("--files-up-to", type=int, default=100_000,
                        help="run the file → pgvector comparison only at sizes up to this (JSONL export is slow)")
    parser.add_argument("--dsn", help="an existing PostgreSQL with pgvector (default: an embedded one)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-bench-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    from vecmig.providers.pgvector import embedded

    dsn = args.dsn or embedded.acquire(workdir / "pg")
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "command": "python bench/run.py " + " ".join(sys.argv[1:]),
                              "machine": machine(), "targets": TARGETS, "rows": []}
    try:
        for dim in dims:
            for i, records in enumerate(sorted(sizes)):
                result["rows"].append(bench_size(dsn, workdir, records, dim, naive=(i == 0),
                                                 files=records <= args.files_up_to))
        if not args.skip_pinecone:
            print("Pinecone …", flush=True)
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "pinecone_throughput.py")], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            result["pinecone"] = out.stdout
    finally:
        if not args.dsn:
            embedded.release(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9]", "", result["started"])[:14]
    (RESULTS / f"{stamp}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = markdown(result)
    (RESULTS / "latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
