"""CSV read and write rates against JSONL's on the same records, measured in the same run.

Write: every batch upserted (a staged, fsynced part each) then ``finalize`` (the merge). Read:
one ``scan`` of the whole file into batches (parsed, vectors as float32). Records are shaped
like the docs the tests use (an int id, a float32 vector, a text, six metadata fields of every
kind). Reports records/s per format and CSV ÷ JSONL; medians of --repeat runs.

Usage::

    python bench/csv_vs_jsonl.py                       # 20,000 records, dims 32 and 384, 3 repeats
    python bench/csv_vs_jsonl.py -n 50000 --dims 768 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema, Provider
from vecmig.records import Batch
from vecmig.spec import StoreSpec


def batches(n: int, dim: int, size: int) -> list[Batch]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    out = []
    for start in range(0, n, size):
        ids = list(range(start, min(n, start + size)))
        meta = [{"title": f"Document {i}", "lang": "en", "year": 1990 + i % 30, "score": i / 7,
                 "published": bool(i % 2), "tags": ["news", f"t{i % 5}"]} for i in ids]
        texts = [f"body of document {i}, with a comma" for i in ids]
        out.append(Batch(ids=ids, vectors=vectors[start:start + len(ids)], metadata=meta, texts=texts))
    return out


def provider(fmt: str, root: Path) -> Provider:
    return provider_class(fmt)(StoreSpec(provider=fmt, connection={"path": str(root / f"data.{fmt}")}, base_dir=root))


def run(fmt: str, data: list[Batch], dim: int, batch: int) -> tuple[float, float]:
    """(write seconds, read seconds) in a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        p = provider(fmt, Path(tmp))
        types = {"title": "text", "lang": "text", "year": "int", "score": "float", "published": "bool",
                 "tags": "text[]"}
        p.create_collection(CollectionSchema(dimension=dim, metric="cosine", id_type="int", metadata=types, text=True))
        t0 = time.perf_counter()
        for b in data:
            p.upsert(b)
        p.finalize()
        write = time.perf_counter() - t0
        reader = provider(fmt, Path(tmp))
        t0 = time.perf_counter()
        read_n = sum(len(b) for b in reader.scan(None, None, batch))
        read = time.perf_counter() - t0
        assert read_n == sum(len(b) for b in data)
    return write, read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000)
    ap.add_argument("--dims", default="32,384")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{args.n:,} records, batches of {args.batch}, median of {args.repeat}")
    print(f"{'dim':>5} {'format':>6} {'write rec/s':>12} {'read rec/s':>12}")
    for dim in (int(d) for d in args.dims.split(",")):
        data = batches(args.n, dim, args.batch)
        rates: dict[str, tuple[float, float]] = {}
        for fmt in ("jsonl", "csv"):
            runs = [run(fmt, data, dim, args.batch) for _ in range(args.repeat)]
            w = statistics.median(r[0] for r in runs)
            r = statistics.median(r[1] for r in runs)
            rates[fmt] = (args.n / w, args.n / r)
            print(f"{dim:>5} {fmt:>6} {rates[fmt][0]:>12,.0f} {rates[fmt][1]:>12,.0f}")
        print(f"{dim:>5} {'csv/jsonl':>6} {rates['csv'][0] / rates['jsonl'][0]:>12.2f} "
              f"{rates['csv'][1] / rates['jsonl'][1]:>12.2f}")


if __name__ == "__main__":
    main()
