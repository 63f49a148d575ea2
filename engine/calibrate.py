"""Time estimates from what this migration measured: past rounds in state.

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

Without history, the providers' models give the times: rates per record and per dimension
measured on the development machine (bench/estimate_models.py), each store's start-up per
action, and the pair's own copy path (``Provider.copy_models``).

Determinism: a plan must be byte-identical for identical inputs. History-based estimates are
a pure function of the state, and the models are constants. (A plan-time read probe that
scaled first plans to the machine's speed was tried and removed: on a loaded machine two
plans of the same inputs came out different.) The command's start-up (``start_up``) is the
models' too. Saved plans' staleness checks compare spec, state and fingerprints, never
estimates, so none of this can make a plan stale or fresh.

Stores whose class says ``measured_estimates = False`` (the in-memory test store, whose
"timings" are noise at the microsecond scale) are never calibrated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from vecmig import estimate
from vecmig.model import Action, Estimate
from vecmig.providers.base import Throughput
from vecmig.state.reader import StateReader
from vecmig.state.rows import ActionRow, RoundRow

MODEL_BASIS = "the providers' models (no history)"
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
    "validate_queries": lambda src, tgt, moved: src,
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
        params = [(json.loads(r["params_json"] or "{}").get("params") or {}) for r in copies]
        fresh = all(bool(p.get("fresh_target")) for p in params)
        listed = any("ids" in p for p in params)
        if moved > 0 and wall > 0:
            yield copy_key(fresh, listed), Sample(rnd["round"], moved, wall, b / n if n else 0.0)
    for r in rows:
        if r["kind"] == "copy_shard" or r["kind"] not in SIZE or r["status"] != "done" or r["actual_seconds"] is None:
            continue
        size = SIZE[r["kind"]](src, tgt, 0)
        yield r["kind"], Sample(rnd["round"], size, float(r["actual_seconds"]), 0.0)


def copy_key(fresh: bool, listed: bool = False) -> str:
    """Copies into a new collection and into one holding records are fitted apart: bulk
    inserts and upserts run at different rates; and copies of the ids a diff listed apart
    again: each shard fetches its records by id, a start-up that a bulk rate does not show."""
    if listed:
        return "copy_shard/ids"
    return "copy_shard" if fresh else "copy_shard/upsert"


# Per shard, what a copy of listed ids spends before its first record beyond a bulk copy's:
# both sides' sessions, the fetch by id, the upsert's staging table (bench/estimate_models.py,
# replan round 2: 0.18 s for 2 shards and 0.57 s for 10 at concurrency 2, few records each).
LISTED_SHARD_S = 0.1


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


# -- what `vecmig apply` spends besides its actions ------------------------------------------
# The interpreter, vecmig's imports, the state store's creation, the lock and the plan's own
# work (inventories, shards, id sample) beyond the stores' start-ups and the probe: `vecmig
# --help` alone took 0.4-0.7 s, and `vecmig apply` spent 1.7-3 s outside its run at 20k
# records on the loaded 2-core machine (bench/estimate_models.py: cli_apply - run).
CLI_START_S = 2.0
# Times the stores are opened and read around the actions: refresh at plan, again under the
# lock when state changed in between, and the run's closing refresh of both inventories.
REFRESHES = 3


def start_up(read: Throughput, write: Throughput, *, source_records: int, diff_method: str,
             diff_source: int, diff_target: int, measured: bool, factor: float = 1.0) -> Estimate | None:
    """What `vecmig apply SPEC` spends outside its actions: start-up, the plan's reads (the id
    sample) and its record-level diff, whose reads are those of a validation (both servers
    hashing at once, or both sides read and matched in Python).

    A function of the inventories and the diff's counts alone, so plans stay byte-identical."""
    if not measured:
        return None
    # ``factor``: the machine factor the models were scaled by; the interpreter slows down with them.
    seconds = CLI_START_S / factor + REFRESHES * (read.startup_s + write.startup_s)
    if diff_method == "server-hash" and read.digest_records_per_s > 0 and write.digest_records_per_s > 0:
        seconds += max(diff_source, diff_target) / min(read.digest_records_per_s, write.digest_records_per_s)
    elif diff_method not in ("none", "server-hash"):
        fetch = write.fetch_records_per_s or write.read_records_per_s
        seconds += diff_source / read.read_records_per_s + diff_target / max(fetch, write.read_records_per_s)
    return estimate.modelled(seconds, max(read.spread, write.spread))


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


def upsert_factor(read: Throughput, write: Throughput, concurrency: int = 1) -> float:
    """How much slower a copy runs as upserts than as inserts: the target's ``upsert_slowdown``
    where writing bounds the copy, less where reading does (a JSONL source parses more slowly
    than PostgreSQL upserts, so slower writes hide behind the reads), by the models' ratio,
    each side with the workers it can use (``vecmig.estimate.copy_estimate``)."""
    p_read = max(1, min(concurrency, read.max_parallel))
    p_write = max(1, min(concurrency, write.max_parallel))
    write_over_read = (read.read_records_per_s * p_read) / (write.write_records_per_s * p_write)
    return max(1.0, write.upsert_slowdown * min(1.0, write_over_read))


def calibrated(actions: list[Action], fits: dict[str, Fit], *, source_records: int, target_records: int,
               upsert_slowdown: float = 1.0, concurrency: int = 1,
               measured: bool = True) -> list[Action]:
    """The actions with estimates from history where a fit exists for their kind, from the
    providers' models (bounded to 2×) elsewhere; each says which in ``estimate.basis``."""
    copies = [a for a in actions if a.kind == "copy_shard"]
    moved = sum(a.estimate.records for a in copies)
    fresh = all(bool(a.params.get("fresh_target")) for a in copies)
    listed = any("ids" in a.params for a in copies)
    ids_fit = fits.get(copy_key(fresh, listed=True)) if listed else None
    cf, factor, phrase = (ids_fit, 1.0, ids_fit.phrase()) if ids_fit else copy_fit(fits, fresh, upsert_slowdown)
    # A bulk rate (or the models) for listed ids: each shard's start-up on top, the shards
    # running min(concurrency, shards) at a time.
    per_shard = (LISTED_SHARD_S / max(1, min(concurrency, len(copies)))
                 if measured and listed and ids_fit is None else 0.0)
    out = []
    for a in actions:
        f = fits.get(a.kind)
        if cf is not None and a.kind == "copy_shard":
            nbytes = sum(c.estimate.bytes for c in copies)
            wave = cf.overhead + (cf.seconds(moved, nbytes / moved if moved else 0.0) - cf.overhead) * factor
            share = a.estimate.records / moved if moved else 1.0 / len(copies)
            est = estimate.around(wave * share + (per_shard if "ids" in a.params else 0.0), basis=phrase)
        elif a.kind == "copy_shard" and per_shard and "ids" in a.params:
            centre = math.sqrt(a.estimate.seconds_low * a.estimate.seconds_high) + per_shard
            est = estimate.around(centre, basis=MODEL_BASIS)
        elif f is not None and a.kind in SIZE and a.kind != "copy_shard":
            est = estimate.around(f.seconds(SIZE[a.kind](source_records, target_records, moved), 0.0),
                                  basis=f.phrase())
        else:
            est = estimate.within_two(a.estimate, basis=MODEL_BASIS)
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
