"""A Chroma collection's HNSW index in vecmig.indexes' neutral words.

Chroma's configuration (``hnsw``: ``max_neighbors`` → ``m``, ``ef_construction``, ``ef_search``),
else the legacy metadata keys (``hnsw:M``, ``hnsw:construction_ef``, ``hnsw:search_ef``), else
chromadb's defaults. A distributed (SPANN) collection reports ``spann``.
"""

from __future__ import annotations

from typing import Any

DEFAULTS = {"m": 16, "ef_construction": 100, "ef_search": 100}
CONFIG = {"max_neighbors": "m", "ef_construction": "ef_construction", "ef_search": "ef_search"}
LEGACY = {"hnsw:M": "m", "hnsw:construction_ef": "ef_construction", "hnsw:search_ef": "ef_search"}


def index_of(configuration: dict[str, Any] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
    config = configuration or {}
    if config.get("spann"):
        return {"type": "spann"}
    out: dict[str, Any] = {"type": "hnsw", **DEFAULTS}
    for key, ours in LEGACY.items():
        if isinstance((metadata or {}).get(key), int):
            out[ours] = int((metadata or {})[key])
    hnsw = config.get("hnsw") or {}
    for key, ours in CONFIG.items():
        if isinstance(hnsw.get(key), int):
            out[ours] = int(hnsw[key])
    return out
