"""LanceDB's speed model for plan estimates."""

from __future__ import annotations

from vecmig.providers.base import Throughput, per_record_rate

# µs per record = fixed + per dimension, one worker, from bench/lancedb_throughput.py on the
# 2-core development machine under its usual load (20,000 records of 384 dims, batches of 1000,
# local disk, best of three reads): scan 134k records/s, merge_insert 47k. Only 384 dims were
# measured: the split between the fixed and the per-dimension share is a guess.
READ_US = (4.0, 0.01)
WRITE_US = (18.0, 0.008)


def model(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*READ_US, dimension),
        write_records_per_s=per_record_rate(*WRITE_US, dimension),
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=2,  # writers of one table race for its commits: more only conflict
        spread=2.0,
        startup_s=0.02,
    )
