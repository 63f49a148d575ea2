"""Time estimates from what this migration measured: past rounds in state, and a read probe.

Why: the providers' fixed models are guesses about servers vecmig has never seen (a
300k-record apply planned at 70 s–3 min took 15 s). Once a round has run, the state holds
what each action really took, and that beats any model for the next round against the same
stores.

The model per action kind is ``seconds = overhead + size / rate``, fitted from the rounds on
record (``fit``): with two or more rounds of clearly different sizes, a least-squares line;
with one, the rate through that point after a small start-up allowance. ``size`` is what the
kind's work grows with (records copied, the source's count for a validation, source plus
target for delete_extra, nothing for create/cutover), computed the same way from a past
round's plan as from the plan being made. Larger records than those measured scale the
per-record time up by the bytes ratio (the slower of records/s and bytes/s, as in
``vecmig.estimate``).

Copy shards run in parallel waves, so the copy is fitted on the wave as a whole (first start
to last finish of the round's shards) and each shard gets its share by records: the shards'
estimates add up to the wave's wall time, which is what apply reports as ``copy_seconds``.

Every estimate printed is a range ``[c/√2, c·√2]`` around its centre ``c``: the upper bound is
exactly twice the lower (``estimate.around``).

Determinism: a plan must be byte-identical for identical inputs. History-based estimates are
a pure function of the state, so they are. A probe is a measurement, so it is used only
where no history exists, only to slow the model's read side down when the source reads at
less than half the model's rate (a fast source leaves the model, and the plan, unchanged),
and then quantised down onto the 1-2-5 series: two plans differ only when the measured rate
straddles a step of that coarse series. A source much faster than its model (every local
test store) never changes the plan. Saved plans' staleness checks compare spec, state and
fingerprints, never estimates, so none of this can make a plan stale or fresh.

Stores whose class says ``measured_estimates = False`` (the in-memory test store, whose
"timings" are noise at the microsecond scale) are never calibrated nor probed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from vecmig import estimate
from vecmig.model import Action
from vecmig.providers.base import Provider, Throughput
from vecmig.state.reader import StateReader
from vecmig.state.rows import ActionRow, RoundRow

MODEL_BASIS = "the providers' models (no history)"
PROBE_BASIS = "the providers' models, source reads from a plan-time probe"
# Most recent rounds a fit uses: older ones may predate a server upgrade or a new index.
MAX_ROUNDS = 5
# Start-up every action pays before its first record (connections, a first query), allowed
# for when a single round cannot separate it from the per-record time.
PRIOR_OVERHEAD_S = 0.05
# Sizes this much apart let two rounds separate overhead from rate.
DISTINCT_SIZES = 1.5

# What each kind's time grows with, from (source records, target records, records copied).
SizeOf = Callable[[int, int, int], int]
SIZE: dict[str, SizeOf] = {
    "copy_shard": lambda src, tgt, moved: moved,
    "validate_ids": lambda src, tgt, moved: src,
    "validate_completeness": lambda src, tgt, moved: src,
    "finalize": lambda src, tgt, moved: src,
    "build_index": lambda src, tgt, moved: src,
    "delete_extra": lambda src, tgt, moved: src + tgt,
    "create_collection": lambda src, tgt, moved: 0,
    "cutover": lambda src, tgt, moved: 0,
    "decommission": lambda src, tgt, moved: 0,
}


@dataclass(frozen=True)
class Sample:
    round: int
    size: int
    seconds: float
    bytes_per_record: float


@dataclass(frozen=True)
class Fit:
    """``seconds = overhead + size × per_unit × max(1, bytes-per-record ratio)``."""

    kind: str
    overhead: float
    per_unit: float
    bytes_per_record: float
    rounds: tuple[int, ...]

    def seconds(self, size: int, bytes_per_record: float) -> float:
        heavier = bytes_per_record / self.bytes_per_record if self.bytes_per_record and bytes_per_record else 1.0
        return self.overhead + size * self.per_unit * max(1.0, heavier)

    def phrase(self) -> str:
        """E.g. "round 2's measured 48k records/s" (what the plan says the estimate is from)."""
        rounds = self.rounds
        who = (f"round {rounds[0]}'s" if len(rounds) == 1
               else f"rounds {', '.join(str(r) for r in rounds[:-1])} and {rounds[-1]}'s")
        if self.per_unit <= 0:
            return f"{who} measured {self.overhead:.2g} s"
        unit = "records" if self.kind.split("/")[0] in SIZE else "units"
        return f"{who} measured {si(1 / self.per_unit)} {unit}/s"


def si(x: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.2g}{suffix}" if x / div < 10 else f"{x / div:.0f}{suffix}"
    return f"{x:.2g}"


# -- history ---------------------------------------------------------------------------------
def history(state: StateReader | None, source_provider: str, target_provider: str) -> dict[str, Fit]:
    """A fit per action kind from this migration's earlier rounds against the same kinds of store.

    Only rounds applied in one run count: a resumed action's time covers its last run alone."""
    if state is None:
        return {}
    apply_runs: dict[int, int] = {}
    for run in state.runs():
        if run["operation"] == "apply" and run["round"] is not None:
            apply_runs[run["round"]] = apply_runs.get(run["round"], 0) + 1
    samples: dict[str, list[Sample]] = {}
    for rnd in state.rounds():
        if apply_runs.get(rnd["round"]) != 1:
            continue
        for kind, sample in round_samples(rnd, state.actions(rnd["round"]), source_provider, target_provider):
            samples.setdefault(kind, []).append(sample)
    return {kind: f for kind, got in sorted(samples.items()) if (f := fit(kind, got[-MAX_ROUNDS:])) is not None}


def round_samples(rnd: RoundRow, rows: list[ActionRow], source_provider: str,
                  target_provider: str) -> Iterable[tuple[str, Sample]]:
    try:
        plan = json.loads(rnd["plan_json"])
    except ValueError:
        return
    spec = plan.get("spec") or {}
    if ((spec.get("source") or {}).get("provider"), (spec.get("target") or {}).get("provider")) != (
            source_provider, target_provider):
        return
    src = int((plan.get("source") or {}).get("count") or 0)
    tgt = int((plan.get("target") or {}).get("count") or 0) if (plan.get("target") or {}).get("exists") else 0
    planned = {a.get("id"): a for a in plan.get("actions") or []}
    copies = [r for r in rows if r["kind"] == "copy_shard"]
    if copies and all(r["status"] == "done" and r["started"] and r["finished"] for r in copies):
        wall = (max(_t(r["finished"]) for r in copies) - min(_t(r["started"]) for r in copies)).total_seconds()
        moved = sum(int(r["records"] or 0) for r in copies)
        est = [(planned.get(r["action_id"]) or {}).get("estimate") or {} for r in copies]
        n, b = sum(int(e.get("records") or 0) for e in est), sum(int(e.get("bytes") or 0) for e in est)
        fresh = all(bool((json.loads(r["params_json"] or "{}").get("params") or {}).get("fresh_target"))
                    for r in copies)
        if moved > 0 and wall > 0:
            yield copy_key(fresh), Sample(rnd["round"], moved, wall, b / n if n else 0.0)
    for r in rows:
        if r["kind"] == "copy_shard" or r["kind"] not in SIZE or r["status"] != "done" or r["actual_seconds"] is None:
            continue
        size = SIZE[r["kind"]](src, tgt, 0)
        yield r["kind"], Sample(rnd["round"], size, float(r["actual_seconds"]), 0.0)


def copy_key(fresh: bool) -> str:
    """Copies into a new collection and into one holding records are fitted apart: bulk
    inserts and upserts run at different rates."""
    return "copy_shard" if fresh else "copy_shard/upsert"


def _t(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def fit(kind: str, samples: list[Sample]) -> Fit | None:
    """Overhead and per-unit time through the samples (least squares where sizes differ)."""
    if not samples:
        return None
    rounds = tuple(sorted({s.round for s in samples}))
    sized = [s for s in samples if s.size > 0]
    bpr = [s.bytes_per_record for s in sized if s.bytes_per_record]
    mean_bpr = sum(bpr) / len(bpr) if bpr else 0.0
    if not sized:
        return Fit(kind, median([s.seconds for s in samples]), 0.0, 0.0, rounds)
    sizes = [s.size for s in sized]
    if len(sized) >= 2 and max(sizes) >= DISTINCT_SIZES * min(sizes):
        n = len(sized)
        mx, my = sum(sizes) / n, sum(s.seconds for s in sized) / n
        sxx = sum((s.size - mx) ** 2 for s in sized)
        slope = sum((s.size - mx) * (s.seconds - my) for s in sized) / sxx
        overhead = my - slope * mx
        if slope > 0 and 0 <= overhead <= min(s.seconds for s in sized):
            return Fit(kind, overhead, slope, mean_bpr, rounds)
    overhead = min(PRIOR_OVERHEAD_S, 0.5 * min(s.seconds for s in sized))
    per_unit = median([(s.seconds - overhead) / s.size for s in sized])
    return Fit(kind, overhead, per_unit, mean_bpr, rounds)


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


# -- the read probe ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadProbe:
    """Records read from the source at plan time in steady state (after the first batch)."""

    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


PROBE_BATCH = 1000
PROBE_BATCHES = 4
PROBE_BUDGET_S = 0.2


def read_probe(src: Provider, shard: dict[str, Any] | None) -> ReadProbe | None:
    """Time a few batches of the source's first shard, read-only, within ``PROBE_BUDGET_S``.

    The first batch is not counted: it carries the query's start-up, which the overhead of
    each action already stands for."""
    if not type(src).measured_estimates:
        return None
    scan = src.scan(shard, None, PROBE_BATCH)
    records, seconds = 0, 0.0
    start = last = time.perf_counter()
    try:
        for i, batch in enumerate(scan):
            now = time.perf_counter()
            if i:
                records += len(batch)
                seconds += now - last
            last = now
            if i >= PROBE_BATCHES or now - start > PROBE_BUDGET_S:
                break
    finally:
        close = getattr(scan, "close", None)
        if close is not None:
            close()
    return ReadProbe(records, seconds) if records >= PROBE_BATCH and seconds > 0 else None


def one_two_five(x: float) -> float:
    """The largest value of the 1-2-5 series not above ``x`` (coarse, so plans repeat)."""
    if x <= 0:
        return 0.0
    decade = 10.0 ** math.floor(math.log10(x))
    return max(step * decade for step in (1, 2, 5) if step * decade <= x * (1 + 1e-9))


def probed(model: Throughput, probe: ReadProbe | None) -> Throughput:
    """The read side of ``model`` from the probe, where the probe shows the model is optimistic
    beyond its own spread (see the module docstring on determinism)."""
    if probe is None or probe.rate <= 0 or probe.rate * 2 >= model.read_records_per_s:
        return model
    rate = one_two_five(probe.rate)
    return replace(model, read_records_per_s=rate,
                   read_mb_per_s=model.read_mb_per_s * rate / model.read_records_per_s)


# -- applying it to a plan's actions ----------------------------------------------------------
def copy_fit(fits: dict[str, Fit], fresh: bool, upsert_slowdown: float) -> tuple[Fit | None, float, str]:
    """The fit for a copy into a new collection or an existing one, with the factor to apply
    when only the other kind was measured (the target's declared ``upsert_slowdown``)."""
    same = fits.get(copy_key(fresh))
    if same is not None:
        return same, 1.0, same.phrase()
    other = fits.get(copy_key(not fresh))
    if other is None:
        return None, 1.0, ""
    factor = upsert_slowdown if not fresh else 1.0 / upsert_slowdown
    return other, factor, other.phrase() + (", as upserts" if not fresh else ", as inserts")


def upsert_factor(read: Throughput, write: Throughput) -> float:
    """How much slower a copy runs as upserts than as inserts: the target's ``upsert_slowdown``
    where writing bounds the copy, less where reading does (a JSONL source parses more slowly
    than PostgreSQL upserts, so slower writes hide behind the reads), by the models' ratio."""
    write_over_read = read.read_records_per_s / write.write_records_per_s
    return max(1.0, write.upsert_slowdown * min(1.0, write_over_read))


def calibrated(actions: list[Action], fits: dict[str, Fit], *, source_records: int, target_records: int,
               probe_used: bool = False, upsert_slowdown: float = 1.0) -> list[Action]:
    """The actions with estimates from history where a fit exists for their kind, from the
    providers' models (bounded to 2×) elsewhere; each says which in ``estimate.basis``."""
    copies = [a for a in actions if a.kind == "copy_shard"]
    moved = sum(a.estimate.records for a in copies)
    fresh = all(bool(a.params.get("fresh_target")) for a in copies)
    cf, factor, phrase = copy_fit(fits, fresh, upsert_slowdown)
    out = []
    for a in actions:
        f = fits.get(a.kind)
        if cf is not None and a.kind == "copy_shard":
            nbytes = sum(c.estimate.bytes for c in copies)
            wave = cf.overhead + (cf.seconds(moved, nbytes / moved if moved else 0.0) - cf.overhead) * factor
            share = a.estimate.records / moved if moved else 1.0 / len(copies)
            est = estimate.around(wave * share, basis=phrase)
        elif f is not None and a.kind in SIZE and a.kind != "copy_shard":
            est = estimate.around(f.seconds(SIZE[a.kind](source_records, target_records, moved), 0.0),
                                  basis=f.phrase())
        else:
            reads_source = a.kind in ("copy_shard", "validate_ids", "validate_completeness")
            est = estimate.within_two(a.estimate, basis=PROBE_BASIS if probe_used and reads_source else MODEL_BASIS)
        out.append(replace(a, estimate=replace(est, records=a.estimate.records, bytes=a.estimate.bytes,
                                               cost=a.estimate.cost)))
    return out


def basis_phrase(actions: Iterable[Action]) -> str:
    """One short phrase for a plan's total: where most of its time comes from."""
    weight: dict[str, float] = {}
    for a in actions:
        if a.estimate.basis:
            weight[a.estimate.basis] = weight.get(a.estimate.basis, 0.0) + a.estimate.seconds_high
    if not weight:
        return ""
    main = max(sorted(weight), key=lambda b: weight[b])
    others = [b for b in sorted(weight) if b != main]
    if not others:
        return f"from {main}"
    return f"from {main}; other steps from " + (others[0] if len(others) == 1 else "other bases")
