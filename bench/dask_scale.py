"""Scale-out: the same copy with the local executor, and on a Dask LocalCluster of 1 and 2
worker processes (``executor: {type: dask, workers: N}``), as ratios to the local executor
measured in the same run.

A JSONL → JSONL copy (re-embedding is not on this branch yet): N records of ``--dim`` float32
with a little metadata and a text, ``--shards`` shards, checkpoints and the completeness
validation on, the state in SQLite beside the spec (a local cluster shares the machine).
Each variant is ``vecmig apply SPEC --auto-approve`` in a child process; reported are records/s
over the copy phase (the run's ``copy_seconds``: from the first shard started to the last
ended, the cluster's start-up not in it) and over the whole apply (start-up, planning, the
local cluster's start and stop, the merge of the target's parts, the validation).

Usage (repository root)::

    python bench/dask_scale.py --records 50000 --dim 128
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
version: 1
name: {name}
source: {{provider: jsonl, connection: {{path: {source}}}}}
target: {{provider: jsonl, connection: {{path: {target}}}}}
strategy: {{type: big-bang, batch_size: {batch}, shard_size: {shard}, concurrency: {concurrency}}}
executor: {executor}
"""


def write_source(path: Path, records: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for lo in range(0, records, 10_000):
            block = rng.standard_normal((min(10_000, records - lo), dim), dtype=np.float32)
            for i, v in enumerate(block, start=lo):
                f.write(json.dumps({"id": f"doc-{i}", "vector": [round(float(x), 6) for x in v],
                                    "metadata": {"n": i, "lang": "en" if i % 3 else "de"},
                                    "text": f"document {i} about topic {i % 97}"}) + "\n")


def run_finished(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT data_json FROM audit WHERE event = 'run_finished' ORDER BY seq DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row else {}


def apply(workdir: Path, name: str, source: Path, executor: str, records: int,
          args: argparse.Namespace) -> dict[str, Any]:
    run = workdir / name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    spec = run / "spec.yaml"
    spec.write_text(SPEC.format(name=name, source=source, target=run / "out.jsonl", batch=args.batch,
                                shard=max(1000, records // args.shards), concurrency=args.concurrency,
                                executor=executor))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vecmig.cli", "apply", str(spec), "--auto-approve"], cwd=run,
                          env={**os.environ, "NO_COLOR": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    with (run / "out.jsonl").open() as f:
        copied = sum(1 for _ in f)
    assert copied == records, (name, copied)
    data = run_finished(run / ".vecmig" / f"{name}.db")
    copy_s = float(data.get("copy_seconds") or seconds)
    return {"executor": executor, "apply_seconds": round(seconds, 2), "copy_seconds": round(copy_s, 2),
            "copy_rps": round(records / copy_s), "apply_rps": round(records / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2, help="threads of the local executor")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (the best is kept)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-dask-bench-", dir="/tmp"))
    try:
        source = workdir / "source.jsonl"
        write_source(source, args.records, args.dim)
        variants = {"local": "{type: local}", "dask_1_worker": "{type: dask, workers: 1}",
                    "dask_2_workers": "{type: dask, workers: 2}"}
        rows: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):
            for name, executor in variants.items():
                r = apply(workdir, name, source, executor, args.records, args)
                if name not in rows or r["copy_rps"] > rows[name]["copy_rps"]:
                    rows[name] = r
        base = rows["local"]
        for r in rows.values():
            r["copy_ratio"] = round(r["copy_rps"] / base["copy_rps"], 2)
            r["apply_ratio"] = round(r["apply_rps"] / base["apply_rps"], 2)
        result = {"records": args.records, "dim": args.dim, "batch": args.batch, "shards": args.shards,
                  "cpus": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows}
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
