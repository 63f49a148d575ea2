"""Qdrant provider: write and read throughput against the local Qdrant server, with baselines.

The local server (tests/qdrant_local) runs in a child process, so it does not share this
process's GIL; the same records go through, in the same run:

* vecmig's qdrant target (``QdrantProvider.upsert``, engine batches of ``--batch``), with
  integer ids (point ids as they are) and string ids (mapped to uuid5, original in the payload);
* qdrant-client's own recipes from its documentation: ``upload_points`` (``batch_size=64``,
  its default) and ``upsert`` of ``PointStruct`` lists in batches of 256 with ``wait=True``;
* reads: vecmig's ``scan`` against a plain ``scroll`` loop of the client.

Each figure is the median of ``--repeat`` runs, printed as a Markdown table of records/s and
the ratio to the first baseline. Against a local Python server both sides are bound by JSON
and HTTP at both ends: the ratios, not the absolute numbers, are the result.

Usage: ``python bench/qdrant_throughput.py [--records 5000] [--dim 384] [--batch 1000]``
(from the repository root; needs the test extras: ``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qdrant_client import QdrantClient, models  # noqa: E402

from tests.qdrant_local import QdrantLocal, SpawnedQdrantLocal  # noqa: E402
from vecmig.providers.qdrant.provider import QdrantProvider  # noqa: E402
from vecmig.records import Batch, RecordId  # noqa: E402
from vecmig.spec import StoreSpec  # noqa: E402

COLLECTION = "bench"


def make_batch(n: int, dim: int, string_ids: bool) -> Batch:
    rng = np.random.default_rng(0)
    ids: list[RecordId] = [f"doc-{i:07d}" for i in range(n)] if string_ids else list(range(n))
    return Batch(ids=ids, vectors=rng.standard_normal((n, dim)).astype(np.float32),
                 metadata=[{"n": i, "lang": "en", "score": float(i) / 7, "tags": ["a", "b"]} for i in range(n)],
                 texts=[f"text of record {i}" for i in range(n)])


def client(srv: SpawnedQdrantLocal) -> QdrantClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return QdrantClient(url=srv.url, prefer_grpc=False, check_compatibility=False, timeout=120)


def fresh(srv: SpawnedQdrantLocal, dim: int) -> None:
    srv.reset()
    qc = client(srv)
    qc.create_collection(COLLECTION, vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT))
    qc.close()


def provider(srv: SpawnedQdrantLocal) -> QdrantProvider:
    return QdrantProvider(StoreSpec(provider="qdrant", connection={"url": srv.url}, collection=COLLECTION,
                                    pointer="/target"))


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def vecmig_upsert(srv: SpawnedQdrantLocal, batch: Batch, size: int) -> float:
    p = provider(srv)
    try:
        return timed(lambda: [p.upsert(batch.take(range(s, min(len(batch), s + size))))
                              for s in range(0, len(batch), size)])
    finally:
        p.close()


def points_of(batch: Batch) -> list[models.PointStruct]:
    """What an application hands the client: int ids only (it cannot take strings)."""
    return [models.PointStruct(id=int(rid), vector=vec.tolist(), payload={**meta, "text": text})
            for rid, vec, meta, text in batch.rows()]


def client_upload_points(srv: SpawnedQdrantLocal, batch: Batch) -> float:
    qc = client(srv)
    try:
        return timed(lambda: qc.upload_points(COLLECTION, points=points_of(batch), batch_size=64, wait=True))
    finally:
        qc.close()


def client_upsert_batches(srv: SpawnedQdrantLocal, batch: Batch) -> float:
    qc = client(srv)

    def run() -> None:
        points = points_of(batch)
        for s in range(0, len(points), 256):
            qc.upsert(COLLECTION, points=points[s:s + 256], wait=True)

    try:
        return timed(run)
    finally:
        qc.close()


def vecmig_scan(srv: SpawnedQdrantLocal, size: int) -> float:
    p = provider(srv)
    try:
        return timed(lambda: sum(len(b) for b in p.scan(None, None, size)))
    finally:
        p.close()


def client_scroll(srv: SpawnedQdrantLocal, size: int) -> float:
    qc = client(srv)

    def run() -> None:
        offset: Any = None
        while True:
            points, offset = qc.scroll(COLLECTION, offset=offset, limit=size, with_payload=True, with_vectors=True)
            np.asarray([p.vector for p in points], dtype=np.float32)
            if offset is None:
                return

    try:
        return timed(run)
    finally:
        qc.close()


def median(runs: int, setup: Callable[[], None], fn: Callable[[], float]) -> float:
    times = []
    for _ in range(runs):
        setup()
        times.append(fn())
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, dim = args.records, args.dim
    ints, strs = make_batch(n, dim, False), make_batch(n, dim, True)
    with QdrantLocal.spawn() as srv:
        reset: Callable[[], None] = lambda: fresh(srv, dim)  # noqa: E731
        writes = [
            ("qdrant-client upload_points (batch_size=64)", median(args.repeat, reset,
                                                                  lambda: client_upload_points(srv, ints))),
            ("qdrant-client upsert, batches of 256", median(args.repeat, reset,
                                                            lambda: client_upsert_batches(srv, ints))),
            (f"vecmig upsert, int ids, batches of {args.batch}", median(args.repeat, reset,
                                                                       lambda: vecmig_upsert(srv, ints, args.batch))),
            (f"vecmig upsert, string ids, batches of {args.batch}",
             median(args.repeat, reset, lambda: vecmig_upsert(srv, strs, args.batch))),
        ]
        fresh(srv, dim)
        vecmig_upsert(srv, strs, args.batch)
        reads = [
            (f"qdrant-client scroll loop, limit {args.batch}",
             median(args.repeat, lambda: None, lambda: client_scroll(srv, args.batch))),
            (f"vecmig scan, batches of {args.batch}",
             median(args.repeat, lambda: None, lambda: vecmig_scan(srv, args.batch))),
        ]
    print(f"\n{n} records of {dim} dims, 4 metadata fields and a text; median of {args.repeat} runs\n")
    for title, rows in (("writes", writes), ("reads", reads)):
        base = rows[0][1]
        print(f"| {title} | records/s | ratio to baseline |\n|---|---:|---:|")
        for name, secs in rows:
            print(f"| {name} | {n / secs:,.0f} | {base / secs:.2f} |")
        print()


if __name__ == "__main__":
    main()
