"""What re-embedding costs per model: a small table with the date it was read.

Prices move; a plan says which price it used and when that price was read (``AS_OF``), and
``cost.embedding`` in the spec overrides it (``usd_per_million_tokens``, ``as_of``). A local
model costs nothing per token; ``cost.embedding.usd_per_hour`` prices the machine's time instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AS_OF = "2026-12-01"
SOURCE = "vecmig's price table"

# USD per million input tokens, from each vendor's public price page on AS_OF (standard tier,
# not batch). Keyed by the model name the endpoint serves.
USD_PER_MILLION_TOKENS: dict[str, float] = {
    "text-embedding-3-small": 0.02,   # OpenAI
    "text-embedding-3-large": 0.13,   # OpenAI
    "text-embedding-ada-002": 0.10,   # OpenAI
}


@dataclass(frozen=True)
class Price:
    """``per_million_tokens`` None: unknown (an API model not in the table, nothing in ``cost:``)."""

    per_million_tokens: float | None
    per_hour: float | None
    as_of: str | None
    source: str

    def usd(self, tokens: float, seconds: float) -> float | None:
        """What ``tokens`` tokens and ``seconds`` of the machine's time cost; None when unknown."""
        if self.per_million_tokens is None and self.per_hour is None:
            return None
        total = (tokens / 1e6 * (self.per_million_tokens or 0.0)) + (seconds / 3600 * (self.per_hour or 0.0))
        return round(total, 4)

    def to_json(self) -> dict[str, Any]:
        return {"usd_per_million_tokens": self.per_million_tokens, "usd_per_hour": self.per_hour,
                "as_of": self.as_of, "source": self.source}


def price_for(model: str, *, api: bool, override: dict[str, Any]) -> Price:
    """The spec's ``cost.embedding`` where it says something, else the table (API models) or
    nothing per token (local models: the weights are on this machine)."""
    per_hour = override.get("usd_per_hour")
    per_hour = None if per_hour is None else float(per_hour)
    if override.get("usd_per_million_tokens") is not None:
        return Price(float(override["usd_per_million_tokens"]), per_hour, override.get("as_of"), "cost.embedding")
    if not api:
        source = "cost.embedding" if per_hour is not None else "a local model: no per-token price"
        return Price(0.0, per_hour, override.get("as_of") if per_hour is not None else None, source)
    listed = USD_PER_MILLION_TOKENS.get(model.rsplit("/", 1)[-1])
    if listed is None:
        return Price(None, per_hour, override.get("as_of"), "not in vecmig's price table")
    return Price(listed, per_hour, AS_OF, SOURCE)
