"""pgvector → pgvector: the native pipe against the raw COPY pipe and the normal copy loop.

Each variant moves the same table into a fresh target on the same server, one worker, with
a real SQLite state checkpoint after every acknowledged batch (as ``copy_shard`` does):

* ``raw``: ``COPY (SELECT * … ORDER BY id) TO STDOUT`` → ``COPY … FROM STDIN`` in one
  transaction, no batches, no checkpoints (bench/run.py's baseline, the physical limit);
* ``native``: ``PgvectorProvider.native_copy`` into a target created by the plan
  (``expect_new_records``: direct COPY into the table; three writer sessions);
* ``native-1w``: the same with one target session instead of two (COMMITs not overlapped);
* ``native-staged``: the same into a target that existed (staging table + ON CONFLICT);
* ``normal``: ``scan`` → ``upsert`` with read-ahead (the engine's loop before this path).

The machine is shared and noisy, so every repetition runs all variants back to back and a
ratio is taken within a repetition; the table shows medians over repetitions.

    python bench/native_copy.py                          # 100k × 384 and 64, batches 1000/5000/20000
    python bench/native_copy.py --records 20000 --dims 64 --batches 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite

from vecmig import sample
from vecmig.prefetch import prefetch
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pgvector import PgvectorProvider
from vecmig.spec import Fields, StoreSpec
from vecmig.state.store import StateStore

VARIANTS = ("raw", "native", "native-1w", "native-staged", "normal")


def store(dsn: str, table: str, pointer: str) -> StoreSpec:
    return StoreSpec(provider="pgvector", connection={"dsn": dsn}, collection=table,
                     fields=Fields(text="body"), pointer=pointer)


def fresh_target(dsn: str, table: str, dim: int) -> None:
    suite.drop(dsn, table)
    with PgvectorProvider(store(dsn, table, "/target")) as p:
        p.create_collection(CollectionSchema(dim, "cosine", "int", dict(sample.METADATA_TYPES), True))


def settle(dsn: str) -> None:
    """Start every run from the same server state: dirty buffers written, WAL recycled."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass  # not a superuser on a --dsn server: runs are merely noisier


def checkpointer(workdir: Path) -> Callable[[Any, int, int], None]:
    path = workdir / "state.db"
    path.unlink(missing_ok=True)
    state = StateStore.open("bench-native", path, None, create=True)
    assert state is not None

    def checkpoint(cursor: Any, records: int, nbytes: int) -> None:
        state.checkpoint(1, "copy.shard[0]", cursor, records, nbytes)

    return checkpoint


class PeakRss:
    """Highest resident set size of this process while the block runs, above where it began."""

    def __init__(self) -> None:
        self.growth_mib = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_kib() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self) -> PeakRss:
        start = self._rss_kib()

        def sample() -> None:
            peak = start
            while not self._stop.wait(0.005):
                peak = max(peak, self._rss_kib())
            self.growth_mib = (max(peak, self._rss_kib()) - start) / 1024

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(variant: str, dsn: str, src_table: str, dim: int, records: int, batch: int, workdir: Path,
                rss: dict[str, list[float]]) -> float:
    """Records per second of one variant (target creation and teardown are not timed)."""
    if variant == "raw":
        settle(dsn)
        with PeakRss() as peak:
            rate = suite.raw_copy_pipe(dsn, src_table, records)
        rss[variant].append(peak.growth_mib)
        return rate
    dst = f"bench_native_dst_{dim}"
    fresh_target(dsn, dst, dim)
    checkpoint = checkpointer(workdir)
    settle(dsn)
    moved = 0
    with PgvectorProvider(store(dsn, src_table, "/source")) as src, \
            PgvectorProvider(store(dsn, dst, "/target")) as tgt:
        if variant != "native-staged":
            tgt.expect_new_records()
        if variant == "native-1w":
            tgt._native_writers = 1  # one target session: each COMMIT's flush is waited for in turn
        started = time.perf_counter()
        with PeakRss() as peak:
            if variant == "normal":
                for b in prefetch(src.scan(None, None, batch)):
                    tgt.upsert(b)
                    checkpoint(b.cursor, len(b), b.nbytes)
                    moved += len(b)
            else:
                pipe = tgt.native_copy(src, None, None, batch)
                if pipe is None:
                    raise RuntimeError(f"native_copy not applicable: {tgt._native_reason}")
                for cursor, n, nbytes in pipe:
                    checkpoint(cursor, n, nbytes)
                    moved += n
        seconds = time.perf_counter() - started
        rss[variant].append(peak.growth_mib)
    if moved != records:
        raise RuntimeError(f"{variant} moved {moved:,} of {records:,} records")
    suite.drop(dsn, dst)
    return records / seconds


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| records × dim | batch | raw pipe rec/s | native rec/s | native ÷ raw | native 1 writer ÷ raw | "
             "native staged rec/s | staged ÷ raw | normal loop rec/s | normal ÷ raw | native ÷ normal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["median"]
        q = r["ratio"]
        lines.append(
            f"| {r['records']:,} × {r['dim']} | {r['batch']:,} | {m['raw']:,.0f} | {m['native']:,.0f} | "
            f"{q['native']:.2f}× | {q['native-1w']:.2f}× | {m['native-staged']:,.0f} | {q['native-staged']:.2f}× | "
            f"{m['normal']:,.0f} | {q['normal']:.2f}× | {q['native_vs_normal']:.2f}× |")
    lines += ["", "Rates are medians over repetitions; ratios are medians of the per-repetition ratios "
                  "(every repetition runs all variants back to back).", "",
              "Peak RSS growth of the process during the copy, MiB (highest over repetitions):", "",
              "| records × dim | batch | " + " | ".join(VARIANTS) + " |",
              "|---|---:|" + "---:|" * len(VARIANTS)]
    for r in rows:
        lines.append(f"| {r['records']:,} × {r['dim']} | {r['batch']:,} | "
                     + " | ".join(f"{r['rss'][v]:,.0f}" for v in VARIANTS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dims", default="384,64")
    parser.add_argument("--batches", default="1000,5000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", help="an existing PostgreSQL with pgvector (default: an embedded one)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecmig-native-", dir="/tmp"))
    workdir.chmod(0o755)
    from vecmig.providers.pgvector import embedded

    dsn = args.dsn or embedded.acquire(workdir / "pg")
    rows: list[dict[str, Any]] = []
    try:
        for dim in (int(d) for d in args.dims.split(",")):
            src_table = f"bench_src_{dim}_{args.records}"
            print(f"[{args.records:,} × {dim}] seeding {src_table} …", flush=True)
            suite.seed_table(dsn, src_table, args.records, dim)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(src_table)))
            for batch in (int(b) for b in args.batches.split(",")):
                rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
                rss: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for rep in range(args.repeat):
                    for v in VARIANTS:
                        rates[v].append(run_variant(v, dsn, src_table, dim, args.records, batch, workdir, rss))
                    print(f"  batch {batch:,} rep {rep + 1}: "
                          + ", ".join(f"{v} {rates[v][-1]:,.0f}" for v in VARIANTS), flush=True)
                ratio = {v: statistics.median(x / r for x, r in zip(rates[v], rates["raw"], strict=True))
                         for v in VARIANTS}
                ratio["native_vs_normal"] = statistics.median(
                    x / r for x, r in zip(rates["native"], rates["normal"], strict=True))
                rows.append({"records": args.records, "dim": dim, "batch": batch, "rates": rates,
                             "median": {v: statistics.median(rates[v]) for v in VARIANTS}, "ratio": ratio,
                             "rss": {v: max(rss[v]) for v in VARIANTS}})
    finally:
        if not args.dsn:
            embedded.release(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(markdown(rows, "python bench/native_copy.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
