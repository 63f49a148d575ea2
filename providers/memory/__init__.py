"""In-memory provider with fault settings: the engine's unit-test double (see ``provider``)."""

from vecmig.providers.memory import store
from vecmig.providers.memory.provider import FAULT_KEYS, MemoryProvider

__all__ = ["FAULT_KEYS", "MemoryProvider", "store"]
