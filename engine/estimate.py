"""Time and cost estimates from the providers' own models.

A copy runs at the pace of its slower side; concurrency helps up to what either side
declares it can absorb. The range is honest about how rough this is: the low end assumes
the model, the high end its declared spread. Costs are line items in USD from the
providers' cost hooks (metered stores only), summed per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from vecmig.model import Estimate
from vecmig.providers.base import Throughput


def copy_estimate(records: int, nbytes: int, read: Throughput, write: Throughput, concurrency: int) -> Estimate:
    if records <= 0:
        return Estimate()
    parallel = max(1, min(concurrency, read.max_parallel, write.max_parallel))
    mb = nbytes / 1e6
    read_s = max(records / read.read_records_per_s, mb / read.read_mb_per_s)
    write_s = max(records / write.write_records_per_s, mb / write.write_mb_per_s)
    low = max(read_s, write_s) / parallel
    spread = max(read.spread, write.spread)
    return Estimate(records=records, bytes=nbytes, seconds_low=round(low, 3), seconds_high=round(low * spread, 3))


def scan_estimate(records: int, nbytes: int, side: Throughput, passes: int = 1) -> Estimate:
    """Validation reads both sides; ``passes`` counts the reads."""
    if records <= 0:
        return Estimate()
    mb = nbytes / 1e6
    s = passes * max(records / side.read_records_per_s, mb / side.read_mb_per_s)
    return Estimate(records=0, bytes=0, seconds_low=round(s, 3), seconds_high=round(s * side.spread, 3))


def fixed(seconds_low: float, seconds_high: float) -> Estimate:
    return Estimate(seconds_low=seconds_low, seconds_high=seconds_high)


def index_estimate(records: int, dimension: int, kind: str) -> Estimate:
    """HNSW builds cost roughly n·log n distance computations; IVFFlat is a k-means plus one pass."""
    if records <= 0:
        return fixed(0.05, 0.5)
    per_record = (dimension / 384) * (60e-6 if kind == "hnsw" else 8e-6)
    low = records * per_record
    return fixed(round(low, 3), round(low * 3, 3))


def merge_cost(*items: Mapping[str, float]) -> dict[str, float]:
    """Line items summed by name, rounded so that plans stay byte-identical."""
    out: dict[str, float] = {}
    for part in items:
        for name, usd in part.items():
            out[name] = round(out.get(name, 0.0) + float(usd), 4)
    return {k: out[k] for k in sorted(out) if out[k]}


def with_cost(est: Estimate, *items: Mapping[str, float]) -> Estimate:
    return replace(est, cost=merge_cost(est.cost, *items))


def scaled(est: Estimate, fraction: float) -> Estimate:
    """What is left of an estimate when ``fraction`` of its work remains (a resumed copy)."""
    return Estimate(round(est.records * fraction), int(est.bytes * fraction), round(est.seconds_low * fraction, 3),
                    round(est.seconds_high * fraction, 3), {k: round(v * fraction, 4) for k, v in est.cost.items()})
