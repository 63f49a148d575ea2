"""Milvus provider: throughput against a real Milvus server (milvus-lite's gRPC server in a
child process), against baselines measured in the same run on the same data.

1. writes into a new collection: vecmig's milvus target (``create_collection`` + ``upsert``
   of engine batches, every record linted, partitions checked) vs pymilvus' own ``insert``
   of row batches (Milvus' documented way to load data: ``MilvusClient.insert`` with a list
   of dicts per call) and pymilvus' ``upsert`` of the same batches (what an idempotent,
   resumable copy has to use);
2. a full read of a flushed collection: vecmig's pk-ordered ``scan`` vs pymilvus'
   ``query_iterator`` (both page by primary key, the same number of records per call).

Every run ends with the count checked and the records compared bit for bit with what was
written, so a fast wrong path cannot win. Timings are wall-clock on the machine as it is
(other work running): read the ratios, not the absolute figures.

Usage: ``python bench/milvus_throughput.py [--records 20000] [--dim 128] [--batch 1000] [--repeat 2]``
(from the repository root; needs the test extras: ``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pymilvus import DataType, MilvusClient  # noqa: E402

from tests.support.milvus import MilvusLite  # noqa: E402
from vecmig.providers.base import CollectionSchema  # noqa: E402
from vecmig.providers.milvus.provider import MilvusProvider  # noqa: E402
from vecmig.records import Batch  # noqa: E402
from vecmig.spec import StoreSpec  # noqa: E402


def make_batch(n: int, dim: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(ids=list(range(1, n + 1)), vectors=rng.standard_normal((n, dim)).astype(np.float32),
                 metadata=[{"title": f"doc {i}", "year": 1990 + i % 35, "score": float(i) / 7, "tags": ["a", "b"]}
                           for i in range(n)],
                 texts=[f"body of record {i} · café" for i in range(n)])


def provider(srv: MilvusLite, name: str, role: str = "target") -> MilvusProvider:
    return MilvusProvider(StoreSpec(provider="milvus", connection={"uri": srv.uri}, collection=name,
                                    pointer=f"/{role}"))


def sdk_collection(client: MilvusClient, name: str, dim: int) -> None:
    """The collection vecmig makes, made by hand: same fields, FLAT index, Strong."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("text", DataType.VARCHAR, max_length=65_535, nullable=True)
    schema.add_field("metadata", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def rows_of(batch: Batch) -> list[dict[str, Any]]:
    vectors = batch.vectors.tolist()
    return [{"id": rid, "vector": vectors[i], "text": batch.texts[i] if batch.texts else None, "metadata": meta}
            for i, (rid, meta) in enumerate(zip(batch.ids, batch.metadata, strict=True))]


def check(srv: MilvusLite, name: str, want: Batch) -> None:
    p = provider(srv, name, "source")
    got = [b for b in p.scan(None, None, 5000)]
    ids = [r for b in got for r in b.ids]
    assert ids == want.ids, f"{name}: {len(ids)} records, expected {len(want.ids)}"
    assert np.concatenate([b.vectors for b in got]).tobytes() == want.vectors.tobytes(), f"{name}: vector bits"
    assert [m for b in got for m in b.metadata] == want.metadata, f"{name}: metadata"
    p.close()


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    data = make_batch(args.records, args.dim)
    chunks = [data.take(range(i, min(args.records, i + args.batch))) for i in range(0, args.records, args.batch)]
    srv = MilvusLite()
    times: dict[str, list[float]] = {"vecmig upsert": [], "pymilvus insert": [], "pymilvus upsert": [],
                                     "vecmig scan": [], "pymilvus query_iterator": []}
    try:
        client = srv.client()
        for k in range(args.repeat):
            def vecmig_write(name: str = f"vm_{k}") -> None:
                p = provider(srv, name)
                p.create_collection(CollectionSchema(dimension=args.dim, metric="cosine", id_type="int", text=True))
                for c in chunks:
                    p.upsert(c)
                p.close()

            def sdk(method: str, name: str) -> Callable[[], None]:
                def run() -> None:
                    sdk_collection(client, name, args.dim)
                    for c in chunks:  # rows built from the same arrays vecmig gets, inside the timing
                        getattr(client, method)(name, rows_of(c))
                return run

            times["vecmig upsert"].append(timed(vecmig_write))
            times["pymilvus insert"].append(timed(sdk("insert", f"ins_{k}")))
            times["pymilvus upsert"].append(timed(sdk("upsert", f"ups_{k}")))
            for name in (f"vm_{k}", f"ins_{k}", f"ups_{k}"):
                check(srv, name, data)
            client.flush(f"ins_{k}")  # a source at rest is sealed: Milvus Lite reads growing segments slowly

            def vecmig_scan(name: str = f"ins_{k}") -> None:
                p = provider(srv, name, "source")
                n = sum(len(b) for b in p.scan(None, None, args.batch))
                assert n == args.records
                p.close()

            def sdk_scan(name: str = f"ins_{k}") -> None:
                it = client.query_iterator(name, batch_size=args.batch, filter="", output_fields=["*"],
                                           consistency_level="Strong")
                n = 0
                while rows := it.next():
                    n += len(rows)
                it.close()
                assert n == args.records

            times["vecmig scan"].append(timed(vecmig_scan))
            times["pymilvus query_iterator"].append(timed(sdk_scan))
        client.close()
    finally:
        srv.stop()
    print(f"\n{args.records:,} records, {args.dim} dims, batches of {args.batch}, best of {args.repeat} "
          "(milvus-lite server in a child process)\n")
    print("| path | best s | median s | records/s | vs baseline |")
    print("|---|---|---|---|---|")
    base = {"vecmig upsert": "pymilvus insert", "pymilvus upsert": "pymilvus insert",
            "vecmig scan": "pymilvus query_iterator"}
    for path, ts in times.items():
        best = min(ts)
        ratio = f"{min(times[base[path]]) / best:.2f}x of {base[path]}" if path in base else "baseline"
        print(f"| {path} | {best:.2f} | {statistics.median(ts):.2f} | {args.records / best:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
