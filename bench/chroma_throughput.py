"""Chroma provider: write and read throughput against a real ``chroma run`` server.

Starts ``chroma run`` on a free localhost port (data in a temporary directory), makes one set of
records (ids, float32 vectors, three metadata fields, a document each) and measures, in the same
run against the same server, records/s for:

1. the baseline: chromadb's own ``collection.add`` and ``collection.upsert`` in batches of the
   server's max batch size (``client.get_max_batch_size()``), each into a new collection;
2. vecmig's chroma target (``ChromaProvider.upsert`` with every record checked and encoded) into a
   collection it created (``expect_new_records``: no read before writing), in engine batches of
   the max batch size and of 1000;
3. the same into a collection that already holds the records (the replace path: each batch first
   reads the ids' metadata and documents so stale keys are removed), against chromadb's upsert
   over the records its collection already holds (HNSW updates cost more than inserts);
4. vecmig's ordered scan (ids listed and sorted, records fetched by id) against chromadb's own
   ``get(limit, offset)`` paging.

Each figure is reported with its ratio to the baseline. On a shared machine the rates swing with
the load (HNSW inserts are CPU-bound): compare ratios within one run, not rates across runs.

Measured (20,000 x 384, 2 cores shared with other work; two runs, load average ~12 and ~7):
chromadb add 235 / 263 records/s; vecmig into a created collection, batches of 5461: 1.01x /
1.41x add (0.92x / 0.94x chromadb upsert), batches of 1000: 0.93x / 1.69x add; vecmig replacing
every record: 1.28x chromadb's upsert over the records it holds (second run); vecmig's ordered
scan 1.20x / 0.92x chromadb get(limit, offset) at 5461, 1.16x / 1.05x at 1000. Usage (from the repository root, with the
test extras installed): ``python bench/chroma_throughput.py [--records 20000] [--dim 384]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.chroma import ChromaServer, chroma_server  # noqa: E402
from vecmig.providers.base import CollectionSchema  # noqa: E402
from vecmig.providers.chroma.provider import ChromaProvider  # noqa: E402
from vecmig.records import Batch  # noqa: E402
from vecmig.spec import CreateSpec, StoreSpec  # noqa: E402


def make_records(n: int, dim: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        ids=[f"doc-{i:07d}" for i in range(n)],
        vectors=rng.standard_normal((n, dim)).astype(np.float32),
        metadata=[{"lang": ("en", "de", "fr")[i % 3], "year": 1990 + i % 35, "score": round(float(v), 6)}
                  for i, v in enumerate(rng.random(n))],
        texts=[f"paragraph {i} of the benchmark corpus" for i in range(n)],
    )


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def chunks(batch: Batch, size: int) -> list[Batch]:
    return [batch.take(range(i, min(i + size, len(batch)))) for i in range(0, len(batch), size)]


def native_write(srv: ChromaServer, name: str, data: Batch, size: int, how: str) -> float:
    coll = srv.client().get_or_create_collection(name, metadata={"hnsw:space": "l2"}, embedding_function=None)
    write = coll.add if how == "add" else coll.upsert

    def run() -> None:
        for part in chunks(data, size):
            write(ids=[str(i) for i in part.ids], embeddings=part.vectors, metadatas=part.metadata,  # type: ignore[arg-type]
                  documents=part.texts)  # type: ignore[arg-type]

    return timed(run)


def provider(srv: ChromaServer, name: str) -> ChromaProvider:
    return ChromaProvider(StoreSpec("chroma", {"host": srv.host, "port": srv.port}, collection=name,
                                    create=CreateSpec(metric="euclidean"), pointer="/target"))


def vecmig_write(srv: ChromaServer, name: str, data: Batch, size: int, fresh: bool) -> float:
    p = provider(srv, name)
    if fresh:
        p.create_collection(CollectionSchema(dimension=int(data.vectors.shape[1]), metric="euclidean",
                                             id_type="text", text=True))
        p.expect_new_records()
    parts = chunks(data, size)
    try:
        return timed(lambda: [p.upsert(b) for b in parts])
    finally:
        p.close()


def native_scan(srv: ChromaServer, name: str, size: int) -> float:
    coll = srv.client().get_collection(name, embedding_function=None)

    def run() -> None:
        offset = 0
        while True:
            got = coll.get(include=["embeddings", "metadatas", "documents"], limit=size, offset=offset)
            offset += len(got["ids"])
            if len(got["ids"]) < size:
                return

    return timed(run)


def vecmig_scan(srv: ChromaServer, name: str, size: int) -> float:
    p = provider(srv, name)
    try:
        return timed(lambda: sum(len(b) for b in p.scan(None, None, size)))
    finally:
        p.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    n = args.records
    data = make_records(n, args.dim)
    with tempfile.TemporaryDirectory(prefix="vecmig-bench-chroma-") as tmp, \
            chroma_server(Path(tmp) / "data") as srv:
        top = int(srv.client().get_max_batch_size())
        rows: list[tuple[str, float, str]] = []
        base_add = n / native_write(srv, "native-add", data, top, "add")
        base_upsert = n / native_write(srv, "native-upsert", data, top, "upsert")
        rows.append((f"chromadb add, batches of {top}", base_add, "baseline"))
        rows.append((f"chromadb upsert, batches of {top}", base_upsert, f"{base_upsert / base_add:.2f}x add"))
        base_again = n / native_write(srv, "native-upsert", data, top, "upsert")
        rows.append((f"chromadb upsert over the records it holds, batches of {top}", base_again,
                     f"{base_again / base_add:.2f}x add"))
        for size in (top, 1000):
            rate = n / vecmig_write(srv, f"vecmig-new-{size}", data, size, fresh=True)
            rows.append((f"vecmig upsert into a created collection, batches of {size}", rate,
                         f"{rate / base_add:.2f}x add, {rate / base_upsert:.2f}x upsert"))
        rate = n / vecmig_write(srv, f"vecmig-new-{top}", data, top, fresh=False)
        rows.append((f"vecmig upsert replacing every record, batches of {top}", rate,
                     f"{rate / base_again:.2f}x upsert over held records"))
        base_scan = n / native_scan(srv, "native-add", top)
        rows.append((f"chromadb get(limit, offset), pages of {top}", base_scan, "baseline"))
        for size in (top, 1000):
            rate = n / vecmig_scan(srv, "native-add", size)
            rows.append((f"vecmig ordered scan, batches of {size}", rate, f"{rate / base_scan:.2f}x get"))
    load = os.getloadavg()[0]
    print(f"\nChroma throughput: {n:,} records x {args.dim} dims, chroma run on localhost, max batch {top}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end\n")
    print("| what | records/s | ratio |")
    print("|---|---:|---|")
    for what, rate, ratio in rows:
        print(f"| {what} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
