"""Pinecone provider: request efficiency and throughput against the local server.

Runs the local Pinecone server in a child process (so it does not share this process's
GIL), with ``latency_ms`` added to every data-plane request to stand in for the network,
and prints Markdown tables:

1. upsert requests per 10,000 records vs the minimum the limits (1000 records, 2 MB)
   allow, for a few record shapes, with engine batches of 1000 and of 10,000;
2. records/s for upserts at concurrency 1, 4 and 16, against a baseline measured in the
   same run: the SDK's own batched upsert (``batch_size=100``, the common recipe);
3. records/s for a full scan (list + fetch) at concurrency 1 and 4;
4. (``--cli``) a real ``vecmig apply`` of a pgvector table into Pinecone (embedded
   PostgreSQL, default spec options), at ``connection.concurrency`` 1, 4 and 16: upsert
   requests against the minimum, and the copy's records/s as the CLI reports it.

Usage: ``python bench/pinecone_throughput.py [--records 10000] [--latency-ms 50] [--cli]``
(from the repository root; needs the test extras: ``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pinecone import Pinecone  # noqa: E402

from tests.pinecone_local import PineconeLocal, SpawnedPineconeLocal, reset_sdk_host_state  # noqa: E402
from vecmig.providers.base import CollectionSchema  # noqa: E402
from vecmig.providers.pinecone import PineconeProvider, packing  # noqa: E402
from vecmig.records import Batch  # noqa: E402
from vecmig.spec import StoreSpec  # noqa: E402

API_KEY = "bench-key"


def make_batch(n: int, dim: int, meta_bytes: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(max(1, meta_bytes // 2), meta_bytes * 3 // 2 + 1, size=n) if meta_bytes else np.zeros(n, int)
    return Batch(
        ids=[f"doc-{i:07d}" for i in range(n)],
        vectors=rng.standard_normal((n, dim)).astype(np.float32),
        metadata=[{"body": "x" * int(s), "n": i, "lang": "en"} for i, s in enumerate(sizes)],
    )


def provider(srv: SpawnedPineconeLocal, index: str, concurrency: int) -> PineconeProvider:
    store = StoreSpec(provider="pinecone", collection=index, pointer="/target",
                      connection={"api_key": API_KEY, "host": srv.url, "concurrency": concurrency})
    return PineconeProvider(store)


def fresh(srv: SpawnedPineconeLocal, index: str, dim: int, concurrency: int) -> PineconeProvider:
    srv.reset()
    reset_sdk_host_state()
    p = provider(srv, index, concurrency)
    p.create_collection(CollectionSchema(dimension=dim, metric="cosine", id_type="text"))
    return p


def upsert_all(p: PineconeProvider, batch: Batch, batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(batch), batch_size):
        p.upsert(batch.take(range(start, min(len(batch), start + batch_size))))
    return time.perf_counter() - started


def packing_table(srv: SpawnedPineconeLocal, records: int) -> list[str]:
    rows = ["| dims | metadata | engine batch | upsert requests | minimum | over minimum | max request |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for dim, meta in ((384, 200), (1536, 1024), (1536, 16_384), (3072, 24_000)):
        batch = make_batch(records, dim, meta)
        for batch_size in (1000, records):
            p = fresh(srv, "pack", dim, 4)
            _, sizes = p._prepare(batch)
            minimum = packing.min_requests(sizes, overhead=packing.upsert_overhead(""))
            srv.reset_stats()
            upsert_all(p, batch, batch_size)
            sent = int(srv.stats()["requests"]["upsert"])
            assert p.count() == records
            rows.append(f"| {dim} | {meta:,} B | {batch_size:,} | {sent} | {minimum} | "
                        f"{(sent / minimum - 1) * 100:.1f}% | {p.upsert_stats.max_request_bytes / 1e6:.2f} MB |")
            p.close()
    return rows


def throughput_table(srv: SpawnedPineconeLocal, records: int, latency_ms: float) -> list[str]:
    dim, meta = 768, 512
    batch = make_batch(records, dim, meta)
    rows = [f"Upserts, {records:,} records of {dim} dims + ~{meta} B metadata, engine batches of 1000, "
            f"{latency_ms:g} ms added per request:", "",
            "| writer | requests | seconds | records/s | vs baseline |", "|---|---:|---:|---:|---:|"]
    # Baseline: the SDK's batched upsert with the usual recipe (100 records per request).
    srv.reset()
    reset_sdk_host_state()
    with Pinecone(api_key=API_KEY, host=srv.url) as pc:
        pc.indexes.create(name="base", dimension=dim, metric="cosine", timeout=-1)
        srv.set_faults(latency_ms=latency_ms)
        srv.reset_stats()
        vectors: list[Any] = [{"id": i, "values": v, "metadata": m}
                              for i, v, m in zip(batch.ids, batch.vectors.tolist(), batch.metadata, strict=True)]
        with pc.Index(host=pc.indexes.describe("base").host) as idx:
            started = time.perf_counter()
            for s in range(0, records, 1000):
                idx.upsert(vectors=vectors[s : s + 1000], batch_size=100, max_concurrency=1, show_progress=False)
            base_s = time.perf_counter() - started
        base_requests = int(srv.stats()["requests"]["upsert"])
    base_rate = records / base_s
    rows.append(f"| SDK upsert(batch_size=100), sequential | {base_requests} | {base_s:.2f} | "
                f"{base_rate:,.0f} | 1.00x |")
    for concurrency in (1, 4, 16):
        p = fresh(srv, "tput", dim, concurrency)
        srv.set_faults(latency_ms=latency_ms)
        srv.reset_stats()
        seconds = upsert_all(p, batch, 1000)
        sent = int(srv.stats()["requests"]["upsert"])
        srv.clear_faults()
        assert p.count() == records
        rate = records / seconds
        rows.append(f"| vecmig, concurrency {concurrency} | {sent} | {seconds:.2f} | {rate:,.0f} | "
                    f"{rate / base_rate:.2f}x |")
        if concurrency == 16:
            rows += ["", f"Full scan of the same {records:,} records (list pages of 100 + fetch), "
                     f"{latency_ms:g} ms per request:", "",
                     "| reader | list + fetch requests | seconds | records/s |", "|---|---:|---:|---:|"]
            for readers in (1, 4):
                reader = provider(srv, "tput", readers)
                srv.set_faults(latency_ms=latency_ms)
                srv.reset_stats()
                started = time.perf_counter()
                got = sum(len(b) for b in reader.scan({"namespace": ""}, None, 1000))
                seconds = time.perf_counter() - started
                stats = srv.stats()["requests"]
                srv.clear_faults()
                assert got == records
                rows.append(f"| vecmig scan, concurrency {readers} | {stats.get('list', 0)} + "
                            f"{stats.get('fetch', 0)} | {seconds:.2f} | {records / seconds:,.0f} |")
                reader.close()
        p.close()
    return rows


def cli_table(srv: SpawnedPineconeLocal, records: int, latency_ms: float, dim: int = 384) -> list[str]:
    """pgvector → Pinecone through the real CLI, as a user runs it (subprocess, spec file)."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    import psycopg

    from tests.helpers import make_docs_table
    from vecmig.providers.pgvector import embedded

    base = Path(tempfile.mkdtemp(prefix="vecmig-bench-", dir="/tmp"))
    os.chmod(base, 0o755)  # pgserver runs postgres as its own user when started as root
    dsn = embedded.acquire(base / "pg")
    rows = [f"pgvector → Pinecone through `vecmig apply`, {records:,} records of {dim} dims (docs table: "
            f"title, lang, year, score, published, tags, body), {latency_ms:g} ms added per data-plane request, "
            "default batch settings:", "",
            "| connection.concurrency | upsert requests | minimum | over minimum | copy records/s | apply seconds |",
            "|---:|---:|---:|---:|---:|---:|"]
    try:
        make_docs_table(dsn, "docs", records, dim, seed=1)
        with psycopg.connect(dsn) as conn:
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM docs ORDER BY id")]
        for concurrency in (1, 4, 16):
            srv.reset()
            reset_sdk_host_state()
            work = base / f"c{concurrency}"
            work.mkdir()
            (work / "spec.yaml").write_text(f"""
version: 1
name: bench-cli
source: {{provider: pgvector, connection: {{dsn: "${{env:BENCH_DSN}}"}}, collection: docs,
         fields: {{id: id, vector: embedding, text: body}}}}
target: {{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{srv.url}",
         concurrency: {concurrency}}}, collection: docs-bench}}
""")
            srv.set_faults(latency_ms=latency_ms)
            env = {**os.environ, "BENCH_DSN": dsn, "PINECONE_API_KEY": API_KEY, "NO_COLOR": "1", "COLUMNS": "200"}
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "vecmig.cli", "apply", "spec.yaml", "--auto-approve"],
                                  cwd=work, env=env, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            stats = srv.stats()
            srv.clear_faults()
            if done.returncode != 0:
                raise SystemExit(f"apply failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
            rate = re.search(r"at ([\d,]+) records/s", done.stdout)
            sent = int(stats["responses"]["upsert"].get("200", 0))
            # The minimum, from the exact wire size of every record (the packer's own measure).
            p = provider(srv, "docs-bench", 4)
            try:
                got = p.fetch(ids)
                _, sizes = p._prepare(got)
            finally:
                p.close()
            minimum = packing.min_requests(sizes, overhead=packing.upsert_overhead(""))
            rows.append(f"| {concurrency} | {sent} | {minimum} | {(sent / minimum - 1) * 100:.1f}% | "
                        f"{rate.group(1) if rate else '?'} | {seconds:.1f} |")
    finally:
        embedded.release(base / "pg")
        shutil.rmtree(base, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--cli", action="store_true", help="also migrate through the CLI (needs pgserver)")
    parser.add_argument("--cli-only", action="store_true", help="only the CLI section")
    args = parser.parse_args()
    with PineconeLocal.spawn(api_key=API_KEY) as srv:
        out: list[str] = []
        if not args.cli_only:
            out += ["## Pinecone provider: upsert request packing", "",
                    f"{args.records:,} records per shape; requests counted by the server.", "",
                    *packing_table(srv, args.records), "", "## Pinecone provider: throughput", "",
                    *throughput_table(srv, args.records, args.latency_ms)]
        if args.cli or args.cli_only:
            out += ["", "## pgvector → Pinecone through the CLI", "", *cli_table(srv, args.records, args.latency_ms)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
