"""Milvus' index in vecmig.indexes' neutral words, and where its query-time settings live.

Build parameters translate by name (``M`` ↔ ``m``, ``efConstruction`` ↔ ``ef_construction``,
``nlist`` ↔ ``lists``). Search parameters (``ef`` for HNSW, ``nprobe`` for IVF) are per query in
Milvus: vecmig records the index it built, with them, in the collection property
:data:`PROPERTY` (neutral JSON), where the provider's searches read them (:func:`search_params`)
and the inventory reports them. The record also gives the build parameters back where the server
does not describe them (Milvus Lite's ``describe_index`` omits them). Other readers pass the
search parameters with each search: the plan says so (VM148).
"""

from __future__ import annotations

import json
from typing import Any

from vecmig.spec import IndexSpec

PROPERTY = "vecmig.index"
BUILD = {"M": "m", "efConstruction": "ef_construction", "nlist": "lists"}
_NEUTRAL = ("type", "m", "ef_construction", "ef_search", "lists", "probes")


def to_record(index: IndexSpec) -> str | None:
    """The property value for ``index`` built by vecmig (None: nothing to keep)."""
    if index.type == "none":
        return None
    out: dict[str, Any] = ({"type": "hnsw", "m": int(index.m), "ef_construction": int(index.ef_construction)}
                           if index.type == "hnsw" else {"type": "ivfflat", "lists": int(index.lists)})
    if index.type == "hnsw" and index.ef_search is not None:
        out["ef_search"] = int(index.ef_search)
    if index.type == "ivfflat" and index.probes is not None:
        out["probes"] = int(index.probes)
    return json.dumps(out, sort_keys=True)


def stored(properties: dict[str, Any] | None) -> dict[str, Any]:
    """What vecmig recorded in the collection's properties ({} when nothing or unreadable)."""
    text = (properties or {}).get(PROPERTY)
    try:
        found = json.loads(str(text)) if text else {}
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if k in _NEUTRAL} if isinstance(found, dict) else {}


def search_params(kept: dict[str, Any]) -> dict[str, int]:
    """The params vecmig's own searches pass for the recorded index ({"ef": 40}; {}: defaults)."""
    if kept.get("type") == "hnsw" and isinstance(kept.get("ef_search"), int):
        return {"ef": int(kept["ef_search"])}
    if kept.get("type") == "ivfflat" and isinstance(kept.get("probes"), int):
        return {"nprobe": int(kept["probes"])}
    return {}


def neutral(kind: str, params: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """The neutral keys of an index of type ``kind`` with server build ``params``, overlaid
    with vecmig's record where it describes an index of the same type."""
    out: dict[str, Any] = {}
    for theirs, ours in BUILD.items():
        if str(params.get(theirs, "")).isdigit():
            out[ours] = int(params[theirs])
    if kept.get("type") == kind:
        out.update({k: v for k, v in kept.items() if k != "type" and k not in out})
    return out


def reader_settings(index: IndexSpec) -> str | None:
    found = json.loads(to_record(index) or "{}")
    params = search_params(found)
    if not params:
        return None
    return (f"readers of the target search with {json.dumps(params)} only if they pass it: "
            f"`search(..., search_params={{\"params\": {json.dumps(params)}}})`; vecmig records it in the "
            f"collection property {PROPERTY} for its own searches")
