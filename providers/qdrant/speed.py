"""The Qdrant provider's speed model for plan estimates (calibrated by earlier rounds once
there are some: ``vecmig.calibrate``).

µs per record = fixed + per dimension, measured with ``bench/qdrant_throughput.py`` against
the local Qdrant server on the shared 2-core development machine (3,000 records of 384
dimensions, one worker): about 800 records/s written and 800-1,500 read, bound by JSON at
both ends. A real Qdrant server parses faster than the local Python one, so these are a
floor; ``spread`` says how rough they are.
"""

from __future__ import annotations

from vecmig.providers.base import Throughput, per_record_rate

LOCAL_WRITE_US = (150.0, 2.9)
LOCAL_READ_US = (150.0, 2.0)


def model(dimension: int) -> Throughput:
    return Throughput(read_records_per_s=per_record_rate(*LOCAL_READ_US, dimension),
                      write_records_per_s=per_record_rate(*LOCAL_WRITE_US, dimension),
                      read_mb_per_s=0.0, write_mb_per_s=0.0, max_parallel=4, spread=2.0, startup_s=0.05)
