"""LanceDB provider: vecmig's writes and ordered scan against lancedb's own API, same data, same run.

For each table size it prints a Markdown table of records/s:

1. write: vecmig's target (``LanceDBProvider.upsert``: one ``merge_insert`` on the id per batch,
   what makes a replayed batch harmless) against the baseline lancedb's docs recommend for
   loading, ``table.add`` of Arrow record batches of the same size into a table of the same
   schema; and vecmig's upsert replayed over the full table (every id matched);
2. read: vecmig's ordered, resumable scan (per window of rows: the next ids in order, then those
   rows by an id range, sorted in memory) against lancedb's unordered full read
   (``search().to_batches``) of the same table decoded into the same vecmig batches, and the
   unordered read alone (Arrow, nothing decoded);
3. fetch: 1,000 random ids by ``id IN (...)``.

Reads are the best of three runs after a warm-up read; writes run once (each into a new table).

Usage: ``python bench/lancedb_throughput.py [--sizes 5000,20000] [--dim 384] [--batch 1000]``
(from the repository root, with the lancedb extra installed: ``pip install -e .[lancedb]``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lancedb  # noqa: E402

from vecmig.providers.base import CollectionSchema  # noqa: E402
from vecmig.providers.lancedb.provider import LanceDBProvider  # noqa: E402
from vecmig.records import Batch  # noqa: E402
from vecmig.spec import StoreSpec  # noqa: E402

TYPES = {"n": "int", "score": "float", "lang": "text"}


def make_batch(n: int, dim: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in rng.permutation(n)]  # sources are rarely in id order
    return Batch(ids=ids, vectors=rng.standard_normal((n, dim)).astype(np.float32),
                 metadata=[{"n": i, "score": float(i) / 7, "lang": "en"} for i in ids],
                 texts=[f"body of record {i}" for i in ids])


def provider(path: Path, table: str) -> LanceDBProvider:
    return LanceDBProvider(StoreSpec(provider="lancedb", connection={"path": str(path)}, collection=table,
                                     pointer="/target"))


def best(read: Callable[[], int], expect: int, repeats: int = 3) -> float:
    """The fastest of ``repeats`` runs (seconds): the machine is shared, the slower runs measure others."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        assert read() == expect
        times.append(time.perf_counter() - t)
    return min(times)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def run(n: int, dim: int, batch: int, root: Path) -> list[tuple[str, str, str, str]]:
    data = make_batch(n, dim)
    schema = CollectionSchema(dimension=dim, metric="cosine", id_type="int", metadata=dict(TYPES), text=True)
    chunks = [data.take(range(s, min(n, s + batch))) for s in range(0, n, batch)]

    # Baseline: the same Arrow columns vecmig writes, appended with table.add.
    base = provider(root, f"add_{n}")
    base.create_collection(schema)
    layout = base._layout_of(base._need())
    arrow = [layout.to_table(c) for c in chunks]  # encoded before the clock starts: only the writes are timed
    table = lancedb.connect(str(root)).open_table(f"add_{n}")
    t = time.perf_counter()
    for a in arrow:
        table.add(a)
    add_s = time.perf_counter() - t

    vm = provider(root, f"vecmig_{n}")
    vm.create_collection(schema)
    t = time.perf_counter()
    for c in chunks:
        vm.upsert(c)
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    for c in chunks:
        vm.upsert(c)
    replay_s = time.perf_counter() - t
    assert vm.count() == n, "a replay doubled records"

    def scan() -> int:
        return sum(len(b) for b in vm.scan(None, None, batch))

    def raw() -> int:
        return sum(rb.num_rows for rb in table.search().limit(None).to_batches(batch))

    def decoded() -> int:
        # The fair baseline: the same unordered read, decoded into vecmig batches as the scan decodes them.
        return sum(len(vm._to_batch(layout, pa.Table.from_batches([rb])))
                   for rb in table.search().select(layout.columns).limit(None).to_batches(batch))

    want = [int(i) for i in np.random.default_rng(1).choice(n, size=min(1000, n), replace=False)]

    def fetch() -> int:
        got = vm.fetch(want)
        assert sorted(got.ids) == sorted(want)
        return len(got)

    raw()  # warm the page cache for every read below
    scan_s, raw_s, full_s, fetch_s = (best(f, n if f is not fetch else len(want)) for f in (scan, raw, decoded, fetch))
    batches = -(-n // batch)
    return [
        ("write", f"vecmig upsert (checks + Arrow encoding + merge_insert, {batches} commits)", rate(n, upsert_s),
         f"{add_s / upsert_s:.2f}× of table.add of ready Arrow batches ({rate(n, add_s)} rec/s)"),
        ("write", "vecmig upsert replayed over the full table", rate(n, replay_s), ""),
        ("read", "vecmig ordered, resumable scan", rate(n, scan_s),
         f"{full_s / scan_s:.2f}× of an unordered read decoded alike ({rate(n, full_s)} rec/s; "
         f"Arrow alone {rate(n, raw_s)} rec/s)"),
        ("read", f"fetch {len(want)} random ids", rate(len(want), fetch_s), ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="5000,20000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vecmig-lancedb-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows = run(n, args.dim, args.batch, Path(tmp))
            print(f"\n### {n:,} records × {args.dim} dims, batches of {args.batch:,}\n")
            print("| what | path | records/s | against the baseline |")
            print("|---|---|---:|---|")
            for row in rows:
                print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
