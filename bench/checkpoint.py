"""Cost of one checkpoint (``StateStore.checkpoint``) on the default SQLite state store.

A copy shard checkpoints after every acknowledged batch; bench/run.py's target is that
checkpoints stay under 3 % of the copy. This reports microseconds per checkpoint for the
current implementation, with 1 thread and with 2 threads checkpointing at once (copy shards
run on a thread pool, each with its own cursor row), on a fresh store in a temporary
directory (or ``--dir``). The baseline measured in the same run is the generic SQLAlchemy
transaction path (``StateStore._checkpoint_tx``, which the PostgreSQL backend uses).

Two figures per case: ``wall`` is elapsed time ÷ all checkpoints made (the throughput
cost), ``call`` is the mean time one caller spends inside ``checkpoint()`` (what a shard
waits; with 2 threads it includes queueing behind the other shard). Medians of --repeat runs.

Usage::

    python bench/checkpoint.py                 # 5,000 checkpoints per thread, 5 repeats
    python bench/checkpoint.py -n 10000 --repeat 3 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vecmig.state.identity import now
from vecmig.state.store import StateStore

BATCH_MS = 27.0  # 2,000 records at ~75k rec/s: the batch a checkpoint follows


def _actions(n: int) -> list[dict[str, Any]]:
    return [{"id": f"copy.shard[{i}]", "kind": "copy_shard", "estimate": {"seconds_low": 1.0, "seconds_high": 2.0}}
            for i in range(n)]


def _run(store: StateStore, fn: Callable[..., None], threads: int, n: int, round_no: int) -> tuple[float, float]:
    """(wall µs per checkpoint, mean µs per call) for ``threads`` shards making ``n`` checkpoints each."""
    per_call: list[float] = [0.0] * threads
    start = threading.Barrier(threads + 1)

    def shard(i: int) -> None:
        aid = f"copy.shard[{i}]"
        cursor = {"after": 0, "shard": i}
        start.wait()
        spent = 0.0
        for k in range(n):
            cursor["after"] = k * 2000
            t0 = time.perf_counter()
            fn(round_no, aid, cursor, 2000, 2000 * 1600)
            spent += time.perf_counter() - t0
        per_call[i] = spent

    pool = [threading.Thread(target=shard, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    total = threads * n
    # Each checkpoint accumulates: a wrong sum means the benchmark measured something broken.
    for i in range(threads):
        row = store.cursor(round_no, f"copy.shard[{i}]")
        assert row is not None and row["records_done"] == 2000 * n, row
    return wall / total * 1e6, sum(per_call) / total * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5000, help="checkpoints per thread per run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where to create the state file (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = StateStore.open("bench-checkpoint", Path(tmp) / "bench.db", None, create=True)
        assert store is not None
        try:
            def baseline(round_no: int, action_id: str, cursor: Any, records: int, nbytes: int) -> None:
                # What checkpoint() does before its SQLite fast path, then the SQLAlchemy upsert in tx().
                store._checkpoint_tx(round_no, action_id, json.dumps(cursor), records, nbytes, None, now())

            cases = [("checkpoint()", store.checkpoint), ("baseline: SQLAlchemy tx", baseline)]
            results: dict[tuple[str, int], list[tuple[float, float]]] = {}
            round_no = 0
            for _ in range(args.repeat):
                for name, fn in cases:
                    for threads in (1, 2):
                        round_no += 1
                        store.start_round(round_no, "p" * 64, "s" * 64, "{}", _actions(threads), "", "")
                        results.setdefault((name, threads), []).append(_run(store, fn, threads, args.n, round_no))
        finally:
            store.close()

    print(f"{args.n:,} checkpoints per thread, median of {args.repeat} runs; SQLite state in "
          f"{args.dir or tempfile.gettempdir()}")
    print(f"{'path':<26} {'threads':>7} {'wall µs/ckpt':>13} {'call µs/ckpt':>13} {'% of 27 ms batch':>17}")
    for (name, threads), runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        call = statistics.median(r[1] for r in runs)
        print(f"{name:<26} {threads:>7} {wall:>13.1f} {call:>13.1f} {call / (BATCH_MS * 10):>16.2f}%")


if __name__ == "__main__":
    main()
