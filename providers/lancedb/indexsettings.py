"""LanceDB's vector index in vecmig.indexes' neutral words, and where its query settings live.

IVF_HNSW_* ↔ ``hnsw`` (``max_connections`` ↔ ``m``, ``construction_ef`` ↔ ``ef_construction``),
IVF_FLAT ↔ ``ivfflat`` (``num_partitions`` ↔ ``lists``); IVF_PQ and others keep LanceDB's name
(``ivfpq``) and get the nearest type elsewhere. Query settings (``.ef(n)``, ``.nprobes(n)``) are
per query in LanceDB: vecmig records the index it built, with them, in the vector field's metadata
(:data:`FIELD_KEY`, JSON), where the inventory (and vecmig's own searches) read them back. LanceDB
does not report ``num_partitions`` itself, so a foreign IVF index reports no ``lists``.
"""

from __future__ import annotations

import json
from typing import Any

from vecmig.spec import IndexSpec

FIELD_KEY = "vecmig.index"
_NEUTRAL = ("type", "m", "ef_construction", "ef_search", "lists", "probes")


def recorded(table: Any, column: str) -> dict[str, Any]:
    """What vecmig recorded on ``column`` when it built the index ({} when nothing)."""
    try:
        meta = table.schema.field(column).metadata or {}
    except (KeyError, AttributeError):
        return {}
    raw = meta.get(FIELD_KEY.encode())
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if k in _NEUTRAL} if isinstance(found, dict) else {}


def neutral(config: Any, kind: str, kept: dict[str, Any]) -> dict[str, Any]:
    """The neutral keys of index ``config`` (a list_indices() entry) of type ``kind``: LanceDB's
    own details, overlaid with what vecmig recorded for an index of the same type."""
    details = getattr(config, "index_details", None) or {}
    hnsw = details.get("hnsw") if isinstance(details, dict) else None
    out: dict[str, Any] = {}
    if isinstance(hnsw, dict):
        for theirs, ours in (("max_connections", "m"), ("construction_ef", "ef_construction")):
            if isinstance(hnsw.get(theirs), int):
                out[ours] = hnsw[theirs]
    if kept.get("type") == kind:
        out.update({k: v for k, v in kept.items() if k != "type"})
    return out


def to_record(index: IndexSpec, built: dict[str, Any]) -> str | None:
    """The field metadata value for an index built as ``built`` (neutral keys), or None."""
    if index.type == "none":
        return None
    out: dict[str, Any] = {"type": index.type, **built}
    if index.type == "hnsw" and index.ef_search is not None:
        out["ef_search"] = int(index.ef_search)
    if index.type == "ivfflat" and index.probes is not None:
        out["probes"] = int(index.probes)
    return json.dumps(out, sort_keys=True)


def record(table: Any, column: str, value: str | None) -> None:
    """Set (or, None, delete) the record on ``column``: a new table version, idempotent."""
    if value is None and not recorded(table, column):
        return
    table.update_field_metadata({"path": column, "metadata": {FIELD_KEY: value}})


def reader_settings(index: IndexSpec) -> str | None:
    if index.type == "hnsw" and index.ef_search is not None:
        call = f".ef({int(index.ef_search)})"
    elif index.type == "ivfflat" and index.probes is not None:
        call = f".nprobes({int(index.probes)})"
    else:
        return None
    return (f"readers of the target search as planned only if each query sets it: `table.search(v){call}`; "
            f"vecmig records it in the vector field's metadata ({FIELD_KEY}) for its own searches")
