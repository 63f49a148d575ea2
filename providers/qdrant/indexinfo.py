"""A Qdrant collection's HNSW index in vecmig.indexes' neutral words.

``hnsw_config`` (the collection's, overridden per named vector) gives ``m`` and ``ef_construct``
(→ ``ef_construction``); a search without ``hnsw_ef`` uses ``ef_construct``, so that is its
``ef_search``. ``m: 0`` turns the graph off: every search is exhaustive (``flat``).
"""

from __future__ import annotations

from typing import Any


def index_of(info: Any, vector_name: str | None) -> dict[str, Any] | None:
    """The index of vector ``vector_name`` (None: the unnamed one) from ``get_collection``'s info."""
    config = getattr(info, "config", None)
    hnsw = getattr(config, "hnsw_config", None)
    if hnsw is None:
        return None
    m, ef = getattr(hnsw, "m", None), getattr(hnsw, "ef_construct", None)
    vectors = getattr(getattr(config, "params", None), "vectors", None)
    params = vectors.get(vector_name) if isinstance(vectors, dict) and vector_name else vectors
    override = getattr(params, "hnsw_config", None)
    if override is not None:
        m = override.m if override.m is not None else m
        ef = override.ef_construct if override.ef_construct is not None else ef
    if m == 0:
        return {"type": "flat"}
    out: dict[str, Any] = {"type": "hnsw"}
    if isinstance(m, int):
        out["m"] = m
    if isinstance(ef, int):
        out["ef_construction"] = ef
        out["ef_search"] = ef
    return out
