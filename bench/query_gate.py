"""Query-parity gate benchmark: what ``validate.queries`` costs, and recall of source vs target.

pgvector → pgvector, N × 384 (clustered, cosine), both sides with HNSW (m 16, ef_construction
64, ef_search 40: the source's index built here, the target's by vecmig from the spec's
``create.index``). ``vecmig apply`` runs as a user runs it, with ``validate.queries: {sample:
Q, k: 10, concurrency: 4}`` and thresholds of 0 (measured, not gated). Reported:

* the gate's wall time for Q queries (sample scan + exact answers + both sides' queries), from
  the state's ``actual_seconds``; its queries/s on each side, and latency p50/p95/p99;
* baseline: the same number of ``ORDER BY embedding <=> q LIMIT 10`` queries sent by a bare
  psycopg loop (4 threads, a connection each) to the source, measured in the same run: the
  gate's source queries/s against it;
* recall@10 of source and target against exact search (the gate computes it), and the target's
  minus the source's: the same index parameters should give the same recall.

Usage (repository root, after ``pip install -e '.[test]'``)::

    python bench/query_gate.py                      # 100,000 × 384, 1,000 queries
    python bench/query_gate.py --records 1000000    # the 1M run

Prints Markdown and writes ``bench/results/query_gate-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # the shared helpers of bench/run.py

SPEC = """\
version: 1
name: gatebench
source: {{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, collection: bench_src,
         fields: {{id: id, vector: embedding, text: body}}}}
target: {{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, collection: bench_dst,
         fields: {{id: id, vector: embedding, text: body}},
         create: {{metric: cosine, index: {{type: hnsw, m: 16, ef_construction: 64}}}}}}
strategy: {{type: big-bang, batch_size: 5000, concurrency: 2, shard_size: {shard}}}
validate:
  completeness: true
  queries: {{sample: {queries}, seed: 0, k: 10, concurrency: {concurrency}, min_overlap: 0, min_recall: 0,
            max_error_rate: 0}}
"""


def source_index(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS bench_src_hnsw")
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        conn.execute("CREATE INDEX bench_src_hnsw ON bench_src USING hnsw (embedding vector_cosine_ops) "
                      "WITH (m = 16, ef_construction = 64)")
        return time.perf_counter() - started


def raw_queries(dsn: str, n: int, dim: int, concurrency: int) -> float:
    """Seconds for ``n`` top-10 queries on the source by ``concurrency`` bare psycopg threads."""
    rng = np.random.default_rng(1)
    with psycopg.connect(dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM bench_src ORDER BY random() LIMIT %s", (n,))]
        register_vector(conn)
        vecs = [r[0] for r in conn.execute("SELECT embedding FROM bench_src WHERE id = ANY(%s)", (ids,))]
    vecs = vecs or [rng.standard_normal(dim).astype(np.float32)]
    query = "SELECT id FROM bench_src ORDER BY embedding <=> %s LIMIT 10"
    chunks = [vecs[i::concurrency] for i in range(concurrency)]

    def worker(part: list[Any]) -> None:
        with psycopg.connect(dsn) as c:
            register_vector(c)
            for v in part:
                c.execute(query, (v,)).fetchall()

    threads = [threading.Thread(target=worker, args=(part,)) for part in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def gate_result(db: Path) -> tuple[float, dict[str, Any], dict[str, float]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind, actual_seconds, result_json FROM actions ORDER BY round, seq").fetchall()
    seconds = {kind: float(s or 0) for kind, s, _ in rows}
    gate = next((json.loads(r) for kind, _, r in rows if kind == "validate_queries" and r), None)
    if gate is None:
        raise RuntimeError("no validate_queries result in the state")
    return seconds["validate_queries"], gate, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-gate-bench-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    from vecmig.providers.pgvector import embedded

    dsn = args.dsn or embedded.acquire(workdir / "pg")
    out: dict[str, Any] = {"records": args.records, "dim": args.dim, "queries": args.queries,
                           "concurrency": args.concurrency, "machine": base.machine(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        base.seed_table(dsn, "bench_src", args.records, args.dim)
        out["source_index_s"] = source_index(dsn)
        base.drop(dsn, "bench_dst")
        spec = workdir / "gate.yaml"
        spec.write_text(SPEC.format(shard=max(args.records // 4, 10_000), queries=args.queries,
                                    concurrency=args.concurrency))
        base.settle(dsn)
        out["apply_s"] = base.run_child(base.vecmig_cmd("apply", str(spec), "--auto-approve"),
                                        {"BENCH_DSN": dsn}, workdir)[0]
        out["gate_s"], gate, out["actions_s"] = gate_result(workdir / ".vecmig" / "gatebench.db")
        out["raw_s"] = raw_queries(dsn, args.queries, args.dim, args.concurrency)
    finally:
        if not args.dsn:
            embedded.release(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    a = gate["report"]["aggregate"]
    out["aggregate"] = a
    out["search_settings"] = gate["search_settings"]
    parts = gate.get("seconds") or {}
    out["gate_parts_s"] = parts
    raw_qps = args.queries / out["raw_s"]
    out["raw_qps"] = raw_qps
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    (base.RESULTS / "query_gate-latest.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    ls, lt = a["latency_source"], a["latency_target"]
    print(f"""## Query-parity gate, {args.records:,} × {args.dim} pgvector → pgvector, HNSW (m 16, ef_construction 64)

| measurement | source | target |
|---|---:|---:|
| queries/s in the gate ({args.concurrency} threads) | {a['qps_source']:,.0f} | {a['qps_target']:,.0f} |
| latency p50 / p95 / p99 (ms) | {ls['p50']:.1f} / {ls['p95']:.1f} / {ls['p99']:.1f} | \
{lt['p50']:.1f} / {lt['p95']:.1f} / {lt['p99']:.1f} |
| recall@10 against exact search | {a['recall_source']:.3f} | {a['recall_target']:.3f} |

- the gate for {args.queries:,} sampled queries: {out['gate_s']:.1f} s: sample scan {parts.get('sample', 0):.1f} s, \
exact answers (scan + scoring) {parts.get('exact', 0):.1f} s, source queries {parts.get('source_queries', 0):.1f} s, \
target queries {parts.get('target_queries', 0):.1f} s (the whole apply: {out['apply_s']:.1f} s; the source's \
HNSW build: {out['source_index_s']:.1f} s)
- baseline, {args.queries:,} bare psycopg queries on the source: {out['raw_s']:.2f} s ({raw_qps:,.0f}/s); \
the gate's source side runs at {a['qps_source'] / raw_qps:.0%} of it
- overlap@10 of target with source: {a['overlap']:.3f} (min {a['overlap_min']}); target recall minus \
source recall: {a['recall_target'] - a['recall_source']:+.3f}
""")


if __name__ == "__main__":
    main()
