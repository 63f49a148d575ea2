"""Fault injection and per-endpoint request counters.

Faults are decided after the request body is read and the API key checked, and
before any handler runs, so a faulted request never has a side effect.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

FAULT_KINDS = ("429", "503", "drop")
SCRIPT_STEPS = (*FAULT_KINDS, "ok")

CONTROL_ENDPOINTS = (
    "create_index",
    "list_indexes",
    "describe_index",
    "configure_index",
    "delete_index",
)
DATA_ENDPOINTS = (
    "upsert",
    "query",
    "fetch",
    "list",
    "delete",
    "update",
    "describe_index_stats",
)


@dataclass(frozen=True)
class FaultConfig:
    """What to break, and how often.

    Attributes:
        rate_429: Fraction of eligible requests answered 429 with ``Retry-After``.
        rate_503: Fraction answered 503.
        rate_drop: Fraction whose connection is closed after the request is read,
            with no response at all.
        latency_ms: Delay added to every eligible request, faulted or not.
        seed: Seed for the fault RNG. One draw per eligible request, in arrival
            order, so a serial client sees the same faults on every run.
        retry_after: ``Retry-After`` seconds sent with a 429. The SDK honours it
            (plus up to 50% jitter) before retrying, so tests use 0.
        retry_after_503: ``Retry-After`` seconds sent with a 503, or ``None`` to
            omit the header (the SDK then backs off 0.25 s and up).
        endpoints: Endpoint names eligible for faults (see ``DATA_ENDPOINTS`` and
            ``CONTROL_ENDPOINTS``); ``None`` means every data-plane endpoint.
        include_control: With ``endpoints=None``, also fault control-plane calls.
        script: Faults applied, one per eligible request, before the random
            rates: e.g. ``("429", "ok", "drop")``. Deterministic under
            concurrency too, in arrival order.
    """

    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None
    retry_after: float = 1.0
    retry_after_503: float | None = None
    endpoints: tuple[str, ...] | None = None
    include_control: bool = False
    script: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_503", "rate_drop"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if self.rate_429 + self.rate_503 + self.rate_drop > 1.0 + 1e-9:
            raise ValueError("rate_429 + rate_503 + rate_drop must not exceed 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.retry_after < 0 or (self.retry_after_503 is not None and self.retry_after_503 < 0):
            raise ValueError("retry_after values must be >= 0")
        known = set(CONTROL_ENDPOINTS) | set(DATA_ENDPOINTS)
        if self.endpoints is not None:
            unknown = set(self.endpoints) - known
            if unknown:
                raise ValueError(f"unknown endpoints {sorted(unknown)}; known: {sorted(known)}")
        bad_steps = [step for step in self.script if step not in SCRIPT_STEPS]
        if bad_steps:
            raise ValueError(f"script steps must be one of {SCRIPT_STEPS}, got {bad_steps}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FaultConfig:
        allowed = {f.name for f in fields(cls)}
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; allowed: {sorted(allowed)}")
        kwargs = dict(raw)
        if kwargs.get("endpoints") is not None:
            kwargs["endpoints"] = tuple(kwargs["endpoints"])
        if "script" in kwargs:
            kwargs["script"] = tuple(kwargs["script"] or ())
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["endpoints"] = list(self.endpoints) if self.endpoints is not None else None
        out["script"] = list(self.script)
        return out

    def applies_to(self, endpoint: str, plane: str) -> bool:
        if self.endpoints is not None:
            return endpoint in self.endpoints
        return plane == "data" or (self.include_control and plane == "control")


def format_retry_after(seconds: float) -> str:
    # HTTP says integer seconds; a fractional value is kept because the SDK
    # parses it as float, which lets a test ask for sub-second waits.
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rng = random.Random()
        self._script: deque[str] = deque()
        self.set(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)
            self._script = deque(config.script)

    def decide(self, endpoint: str, plane: str) -> tuple[str | None, float]:
        """Return ``(fault kind or None, latency seconds)`` for one request."""
        with self._lock:
            cfg = self._config
            if not cfg.applies_to(endpoint, plane):
                return None, 0.0
            latency = cfg.latency_ms / 1000.0
            if self._script:
                step = self._script.popleft()
                return (None if step == "ok" else step), latency
            if cfg.rate_429 == cfg.rate_503 == cfg.rate_drop == 0.0:
                return None, latency
            draw = self._rng.random()
            if draw < cfg.rate_429:
                return "429", latency
            if draw < cfg.rate_429 + cfg.rate_503:
                return "503", latency
            if draw < cfg.rate_429 + cfg.rate_503 + cfg.rate_drop:
                return "drop", latency
            return None, latency


@dataclass
class RequestStats:
    """Counters per endpoint; every arrival counts, faulted or not."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    requests: Counter[str] = field(default_factory=Counter)
    responses: dict[str, Counter[str]] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    api_versions: Counter[str] = field(default_factory=Counter)
    vectors_upserted: int = 0

    def arrived(self, endpoint: str, api_version: str | None) -> None:
        with self._lock:
            self.requests[endpoint] += 1
            self.api_versions[api_version or "<none>"] += 1

    def answered(self, endpoint: str, outcome: str, *, injected: bool = False) -> None:
        """Record how a request ended: an HTTP status as a string, or ``"drop"``."""
        with self._lock:
            self.responses.setdefault(endpoint, Counter())[outcome] += 1
            if injected:
                self.faults[outcome] += 1

    def upserted(self, count: int) -> None:
        with self._lock:
            self.vectors_upserted += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "responses": {k: dict(v) for k, v in self.responses.items()},
                "faults": dict(self.faults),
                "api_versions": dict(self.api_versions),
                "vectors_upserted": self.vectors_upserted,
            }

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.responses.clear()
            self.faults.clear()
            self.api_versions.clear()
            self.vectors_upserted = 0
