"""The in-memory test double as the spec loader sees it: faults act on writes, so they are target keys."""

from __future__ import annotations

from vecmig.providers.kit import ProviderKit, SpecRules

FAULTS = {
    "fail_after_batches": {
        "type": "integer", "minimum": 0,
        "description": "memory: once the store acknowledged this many upserts, every later one fails terminally",
    },
    "transient_every": {
        "type": "integer", "minimum": 1,
        "description": "memory: every N-th upsert call fails with a transient (retried) error",
    },
    "terminal_on_id": {
        "type": ["integer", "string"], "description": "memory: an upsert holding this id fails terminally",
    },
    "vector_ulps": {
        "type": "integer", "minimum": 0,
        "description": "memory: the store declares it keeps vectors within this many ulp (Capabilities.vector_ulps)",
    },
    "moves_ulp": {
        "type": "integer", "minimum": 0,
        "description": "memory: every other vector value written is moved up by this many ulp (default vector_ulps)",
    },
    "search_noise": {
        "type": "number", "minimum": 0, "maximum": 1,
        "description": "memory: this share of every top-k answer is swapped for the next-best records (a poor index)",
    },
    "search_delay": {
        "type": "number", "minimum": 0, "description": "memory: seconds every query waits before answering",
    },
    "retry_after": {
        "type": "number", "minimum": 0, "description": "memory: the Retry-After seconds a transient fault asks for",
    },
}

KIT = ProviderKit(
    name="memory",
    summary="in-process collections with fault settings: the engine's test double",
    provider="vecmig.providers.memory.provider:MemoryProvider",
    suggested=False,
    rules=SpecRules(
        ("name",),
        "connection: {name: src} (optionally fail_after_batches, transient_every, terminal_on_id, retry_after)",
        connection_schema={
            "name": {"$ref": "#/$defs/nonempty_string",
                     "description": "memory: the in-process store (a test double) holding the collection"},
            **FAULTS,
        },
        needs_collection=True,
        optional_keys=tuple(FAULTS),
        target_only_keys=tuple(FAULTS),
    ),
)
