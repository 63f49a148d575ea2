"""Time and cost estimates from the providers' own models.

A copy runs at the pace of its slower side; concurrency helps up to what either side
declares it can absorb. The model's time and its declared spread give a range whose
geometric centre is then narrowed to ``[c/√2, c·√2]`` (``around``): every range vecmig prints
has an upper bound at most twice its lower, so a reader can act on it; where the models are
that rough, ``vecmig.calibrate`` replaces them with what earlier rounds measured. Costs are
line items in USD from the providers' cost hooks (metered stores only), summed per item.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from vecmig.model import Estimate
from vecmig.providers.base import Throughput

# An estimate's upper bound over its lower: the widest range still worth planning by.
MAX_SPREAD = 2.0


def around(centre: float, *, basis: str = "") -> Estimate:
    """The range ``[centre/√2, centre·√2]``, rounded so that high ≤ 2 × low still holds."""
    if centre <= 0:
        return Estimate(basis=basis)
    low, high = rounded(centre / math.sqrt(MAX_SPREAD), centre * math.sqrt(MAX_SPREAD))
    return Estimate(seconds_low=low, seconds_high=high, basis=basis)


def rounded(low: float, high: float) -> tuple[float, float]:
    """Milliseconds, as plans print them, without letting rounding break high ≤ 2 × low."""
    if high <= 0:
        return 0.0, 0.0
    lo = max(round(low, 3), 0.001)
    return lo, min(max(round(high, 3), lo), round(lo * MAX_SPREAD, 3))


def within_two(est: Estimate, *, basis: str | None = None) -> Estimate:
    """``est`` narrowed around its geometric centre where its range is wider than ``MAX_SPREAD``."""
    b = est.basis if basis is None else basis
    if est.seconds_high <= 0:
        return replace(est, basis=b)
    if est.seconds_low > 0 and est.seconds_high <= est.seconds_low * MAX_SPREAD:
        low, high = rounded(est.seconds_low, est.seconds_high)
        return replace(est, seconds_low=low, seconds_high=high, basis=b)
    centre = math.sqrt(est.seconds_low * est.seconds_high) if est.seconds_low > 0 else est.seconds_high / 2
    narrowed = around(centre, basis=b)
    return replace(est, seconds_low=narrowed.seconds_low, seconds_high=narrowed.seconds_high, basis=b)


def copy_estimate(records: int, nbytes: int, read: Throughput, write: Throughput, concurrency: int) -> Estimate:
    if records <= 0:
        return Estimate()
    parallel = max(1, min(concurrency, read.max_parallel, write.max_parallel))
    mb = nbytes / 1e6
    read_s = max(records / read.read_records_per_s, mb / read.read_mb_per_s)
    write_s = max(records / write.write_records_per_s, mb / write.write_mb_per_s)
    low = max(read_s, write_s) / parallel
    spread = max(read.spread, write.spread)
    return replace(within_two(Estimate(seconds_low=low, seconds_high=low * spread)), records=records, bytes=nbytes)


def scan_estimate(records: int, nbytes: int, side: Throughput, passes: int = 1) -> Estimate:
    """Validation reads both sides; ``passes`` counts the reads."""
    if records <= 0:
        return Estimate()
    mb = nbytes / 1e6
    s = passes * max(records / side.read_records_per_s, mb / side.read_mb_per_s)
    return within_two(Estimate(seconds_low=s, seconds_high=s * side.spread))


def fixed(seconds_low: float, seconds_high: float) -> Estimate:
    """A step whose time does not grow with the data: somewhere between the two figures."""
    return within_two(Estimate(seconds_low=seconds_low, seconds_high=seconds_high))


def index_estimate(records: int, dimension: int, kind: str) -> Estimate:
    """HNSW builds cost roughly n·log n distance computations; IVFFlat is a k-means plus one pass."""
    if records <= 0:
        return fixed(0.05, 0.5)
    per_record = (dimension / 384) * (60e-6 if kind == "hnsw" else 8e-6)
    low = records * per_record
    return fixed(low, low * 3)


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
    low, high = rounded(est.seconds_low * fraction, est.seconds_high * fraction)
    return Estimate(round(est.records * fraction), int(est.bytes * fraction), low, high,
                    {k: round(v * fraction, 4) for k, v in est.cost.items()}, est.basis)
