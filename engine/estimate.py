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


def modelled(seconds: float, spread: float) -> Estimate:
    """The range for a model's time ``seconds`` at its fast end and ``spread`` its slow/fast
    ratio: centred on their geometric mean. A model measured on the machine it runs on says
    ``spread=1``: its rates are typical figures, and the range is the ±√2 band around them."""
    if seconds <= 0:
        return Estimate()
    return around(seconds * math.sqrt(max(spread, 1.0)))


def side_seconds(records: int, mb: float, rps: float, mb_per_s: float) -> float:
    return max(records / rps if rps > 0 else 0.0, mb / mb_per_s if mb_per_s > 0 else 0.0)


def copy_estimate(records: int, nbytes: int, read: Throughput, write: Throughput, concurrency: int) -> Estimate:
    """One shard's share of the copy wave: shards run ``concurrency`` at a time, so the shards'
    estimates add up to the wave's wall time (what apply reports as the copy).

    Each side gains from the workers up to its own ``max_parallel``: a JSONL source parses under
    one GIL while the PostgreSQL server it feeds writes on other cores, so the copy runs at the
    pace of whichever side is slower after its own parallelism."""
    if records <= 0:
        return Estimate()
    p_read = max(1, min(concurrency, read.max_parallel))
    p_write = max(1, min(concurrency, write.max_parallel))
    mb = nbytes / 1e6
    read_s = side_seconds(records, mb, read.read_records_per_s, read.read_mb_per_s) / p_read
    write_s = side_seconds(records, mb, write.write_records_per_s, write.write_mb_per_s) / p_write
    low = max(read.startup_s, write.startup_s) / min(p_read, p_write) + max(read_s, write_s)
    spread = max(read.spread, write.spread)
    return replace(modelled(low, spread), records=records, bytes=nbytes)


def scan_estimate(records: int, nbytes: int, side: Throughput, passes: int = 1) -> Estimate:
    """Validation reads both sides; ``passes`` counts the reads."""
    if records <= 0:
        return Estimate()
    s = side.startup_s + passes * side_seconds(records, nbytes / 1e6, side.read_records_per_s, side.read_mb_per_s)
    return modelled(s, side.spread)


def ids_estimate(records: int, nbytes: int, side: Throughput) -> Estimate:
    """validate_ids: the source's ids read alone."""
    if records <= 0:
        return Estimate()
    if not side.ids_records_per_s:
        return scan_estimate(records, nbytes, side)
    return modelled(side.startup_s + records / side.ids_records_per_s, side.spread)


def validate_estimate(records: int, nbytes: int, read: Throughput, write: Throughput, *,
                      server_digest: bool) -> Estimate:
    """validate_completeness. With both servers hashing their own shards (the identity mapping
    between two stores with a server-side digest) the two run at once and nothing crosses the
    wire: the slower server's hashing rate. Otherwise the source is read again and every id
    fetched from the target, one after the other per batch."""
    if records <= 0:
        return Estimate()
    startup = read.startup_s + write.startup_s
    if server_digest and read.digest_records_per_s > 0 and write.digest_records_per_s > 0:
        s = startup + records / min(read.digest_records_per_s, write.digest_records_per_s)
        return modelled(s, max(read.spread, write.spread))
    mb = nbytes / 1e6
    src = side_seconds(records, mb, read.read_records_per_s, read.read_mb_per_s)
    fetch = write.fetch_records_per_s or write.read_records_per_s
    tgt = side_seconds(records, mb, fetch, write.read_mb_per_s * fetch / write.read_records_per_s)
    return modelled(startup + src + tgt, max(read.spread, write.spread))


def finalize_estimate(records: int, nbytes: int, target: Throughput) -> Estimate:
    """A staging target merging its parts: bytes copied in order, nothing parsed."""
    if records <= 0:
        return Estimate()
    rate = target.finalize_records_per_s or target.read_records_per_s
    mb_rate = target.read_mb_per_s * rate / target.read_records_per_s
    return modelled(target.startup_s + side_seconds(records, nbytes / 1e6, rate, mb_rate), target.spread)


def fixed(seconds_low: float, seconds_high: float) -> Estimate:
    """A step whose time does not grow with the data: somewhere between the two figures."""
    return within_two(Estimate(seconds_low=seconds_low, seconds_high=seconds_high))


def create_estimate(target: Throughput) -> Estimate:
    """Creating a collection: a connection and one statement where the store says what that
    costs (twice its start-up), else anywhere between 0.05 s and 1 s."""
    if target.startup_s <= 0:
        return fixed(0.05, 1.0)
    return modelled(2 * target.startup_s, target.spread)


# µs per record = fixed + per dimension for pgvector's index builds after the load, measured
# with bench/estimate_models.py (20k records, 64 and 384 dims, the loaded 2-core machine):
# HNSW 5.7-6.4 s, nearly flat in the dimension (graph search dominates), growing with log n;
# IVFFlat (k-means, one pass) 0.2-0.6 s.
HNSW_US = (250.0, 0.15)
IVFFLAT_US = (4.0, 0.065)
INDEX_MEASURED_AT = 20_000


def index_estimate(records: int, dimension: int, kind: str) -> Estimate:
    """HNSW builds cost roughly n·log n distance computations; IVFFlat is a k-means plus one pass."""
    if records <= 0:
        return fixed(0.05, 0.5)
    us, per_dim = HNSW_US if kind == "hnsw" else IVFFLAT_US
    per_record = (us + per_dim * dimension) / 1e6
    if kind == "hnsw":
        per_record *= math.log2(max(records, 2)) / math.log2(INDEX_MEASURED_AT)
    return around(records * per_record)


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
