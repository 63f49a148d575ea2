"""The spec's search-watching parts as immutable objects: a parallel-run's replay and gate, and
``rollback_on`` (the triggers ``vecmig watch`` evaluates after a cutover).

Kept apart from :mod:`vecmig.spec` so the shapes the rest of the engine reads stay small;
``Spec`` and ``StrategySpec`` hold these. Durations are written ``"10m"``, ``"30s"``,
``"0.5s"``, ``"1h"`` (or a number of seconds) and held in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(value: str | int | float) -> float:
    """``"10m"`` → 600.0; a number is seconds already (the schema checked the shape)."""
    if isinstance(value, int | float):
        return float(value)
    m = DURATION.match(value.strip())
    if m is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def shown(s: float) -> str:
    """600.0 → "10m", 0.5 → "0.5s": how a plan says a duration."""
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g}h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g}m"
    return f"{s:g}s"


# Threshold keys of the parity gate (vecmig.quality.Gate) a parallel-run may set.
GATE_KEYS = ("min_overlap", "min_recall", "max_recall_drop", "max_latency_ratio", "max_score_diff",
             "max_error_rate")
# Gate keys measured against exact search: they need `replay.exact: true`.
EXACT_KEYS = ("min_recall", "max_recall_drop")
# Rollback triggers: what `vecmig watch` measures each round.
TRIGGER_KEYS = ("min_overlap", "max_p95_ratio", "max_error_rate")


@dataclass(frozen=True)
class ReplaySpec:
    """``strategy.replay``: a query log replayed against both stores over a window."""

    file: str  # as written (relative to the spec file)
    duration: float | None = None  # seconds; the window ends at whichever of these comes first
    queries: int | None = None
    concurrency: int = 4
    rate: float | None = None  # queries/s sent to each side at most (None: as fast as answered)
    k: int = 10  # for log lines without their own k
    exact: bool = False  # recall against exact search over a source scan


@dataclass(frozen=True)
class QuerySourceSpec:
    """Where the watched queries come from: a sample of the old side's records and/or a file."""

    sample: int | None = None
    seed: int = 0
    file: str | None = None
    k: int = 10


@dataclass(frozen=True)
class RollbackOnSpec:
    """``rollback_on``: when readers are switched back after a cutover."""

    min_overlap: float | None = None
    max_p95_ratio: float | None = None
    max_error_rate: float | None = None
    queries: QuerySourceSpec = QuerySourceSpec(sample=50)
    interval: float = 30.0  # seconds between rounds
    concurrency: int = 4
    watch: float | None = None  # seconds: a `watch` action after cutover in apply

    def triggers(self) -> dict[str, float]:
        return {k: v for k in TRIGGER_KEYS if (v := getattr(self, k)) is not None}
