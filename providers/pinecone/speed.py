"""The speed model of managed Pinecone (requests, rate limits, latency) and of the local test server."""

from __future__ import annotations

from vecmig.providers.base import Throughput, per_record_rate
from vecmig.providers.pinecone import packing
from vecmig.providers.pinecone.common import (
    DEFAULT_CONCURRENCY,
    LIST_LIMIT,
)

# Per-request latency of managed Pinecone seen from a client in the same region.
LATENCY_S = (0.05, 0.15)
# Documented serverless rate limits that cap one namespace / one index, whatever the client does.
UPSERT_MB_PER_S_PER_NAMESPACE = 50.0
UPSERT_REQUESTS_PER_S_PER_NAMESPACE = 100.0
FETCH_REQUESTS_PER_S_PER_INDEX = 100.0
LIST_REQUESTS_PER_S_PER_INDEX = 200.0


def wire_bytes_per_record(dimension: int, metadata_bytes: int, id_bytes: int = 16) -> int:
    """JSON bytes of one record in an upsert body: ~10.9 bytes per compact float32."""
    return int(id_bytes + 30 + metadata_bytes + 10.9 * dimension)


def model_throughput(dimension: int = 1536, metadata_bytes: int = 1024, *, concurrency: int = DEFAULT_CONCURRENCY,
                     latency_s: tuple[float, float] = LATENCY_S, id_bytes: int = 16) -> Throughput:
    """Records/s one worker moves, from request size, requests in flight and latency.

    Writes: ``records per request = min(1000, 2 MB / wire bytes)``; a worker keeps
    ``concurrency`` requests in flight, so ``concurrency / latency`` requests per second,
    capped by the namespace limits (100 upserts/s, 50 MB/s). Reads: list pages (100 ids) are
    a sequential chain (``100 / latency`` ids/s per namespace), each page fetched in parallel
    with the next listing. The rate uses the low latency; ``spread`` covers the high one.
    """
    low, high = latency_s
    wire = wire_bytes_per_record(dimension, metadata_bytes, id_bytes)
    stored = id_bytes + metadata_bytes + 4 * dimension
    per_request = max(1, min(packing.MAX_UPSERT_RECORDS, (packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN) // wire))
    requests_per_s = min(concurrency / low, UPSERT_REQUESTS_PER_S_PER_NAMESPACE)
    write = min(requests_per_s * per_request, UPSERT_MB_PER_S_PER_NAMESPACE * 1e6 / wire)
    read = min(LIST_LIMIT / low, LIST_REQUESTS_PER_S_PER_INDEX * LIST_LIMIT,
               FETCH_REQUESTS_PER_S_PER_INDEX * LIST_LIMIT)
    return Throughput(
        read_records_per_s=round(read, 1),
        write_records_per_s=round(write, 1),
        read_mb_per_s=round(read * stored / 1e6, 3),
        write_mb_per_s=round(write * stored / 1e6, 3),
        # Workers share one namespace's limits: past ~4 writers the namespace caps bind.
        max_parallel=4,
        spread=round(high / low, 2),
    )


# A Pinecone-protocol server on this machine (Pinecone Local, tests/pinecone_local) is bound
# by this machine's CPU, JSON at both ends, not by a region's latency: µs per record = fixed +
# per dimension, measured with bench/estimate_models.py (20k records, 64 and 384 dims, the
# loaded 2-core machine, concurrency 2, the whole copy wave: one namespace is one shard).
LOCAL_WRITE_US = (90.0, 0.57)  # upserts, the copy wave at concurrency 2
LOCAL_READ_US = (165.0, 1.0)  # list pages and fetches, one chain per namespace
LOCAL_FETCH_US = (92.0, 1.6)  # fetched by id and hashed (validation's target side)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


def is_local(host: object) -> bool:
    """Whether ``host`` (the spec's connection host, a URL) is served by this machine."""
    if not isinstance(host, str) or "://" not in host:
        return False
    netloc = host.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    name = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    return name in LOOPBACK


def local_throughput(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*LOCAL_READ_US, dimension),
        write_records_per_s=per_record_rate(*LOCAL_WRITE_US, dimension),
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=1,  # the figures are already the wave's at the measured concurrency
        spread=1.0,
        startup_s=0.05,
        fetch_records_per_s=per_record_rate(*LOCAL_FETCH_US, dimension),
    )
