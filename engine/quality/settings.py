"""A store's search settings in one phrase ("ivfflat lists=1000 probes=1"), and what to change.

Stores report their settings in their own shapes (:meth:`Provider.search_settings`): pgvector
``{"index": {"type": "ivfflat", "params": {"lists": 1000}}, "ivfflat.probes": 1, "hnsw.ef_search":
40, "metric": "cosine"}``, Pinecone ``{"index_type": "serverless", "metric": ...}``, Milvus and
Qdrant their own. The phrase flattens nested parameters, strips a setting's index-type prefix
(``ivfflat.probes`` → ``probes``) and leaves out the settings of index types the store is not
using (``hnsw.ef_search`` beside an IVFFlat index changes nothing), so a failure names what
decides the answers and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Shown first, in this order; then any other scalar setting, except the noise below.
PRIMARY = ("m", "ef_construction", "lists", "nlist", "probes", "nprobe", "ef_search", "ef", "hnsw_ef", "metric")
NOISE = frozenset({"name", "opclass", "type", "index_type", "iterative_scan", "max_scan_tuples", "max_probes",
                   "namespace", "max_top_k"})
INDEX_TYPES = frozenset({"hnsw", "ivfflat", "ivf", "ivf_flat", "ivf_pq", "ivf_sq8", "diskann", "flat"})
# Settings a store reports whatever its index is, which only an index of this family reads
# (left out for any other index, and for none: an exact scan reads neither).
ONLY_FOR = {"ef_search": "hnsw", "ef": "hnsw", "hnsw_ef": "hnsw", "probes": "ivf", "nprobe": "ivf"}


def index_kind(settings: Mapping[str, Any]) -> str:
    """The index type the settings describe ("" when they name none)."""
    index = settings.get("index")
    if isinstance(index, Mapping):
        return str(index.get("type") or index.get("index_type") or "")
    for key in ("type", "index_type", "index"):
        if isinstance(settings.get(key), str):
            return str(settings[key])
    return ""


def flat_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every scalar setting under its plain name, those of other index types left out."""
    kind = index_kind(settings).lower()
    out: dict[str, Any] = {}

    def walk(data: Mapping[str, Any]) -> None:
        for key, value in data.items():
            if isinstance(value, Mapping):
                walk(value)
                continue
            if value is None or not isinstance(value, int | float | str) or isinstance(value, bool):
                continue
            name = str(key)
            if "." in name:
                prefix, rest = name.split(".", 1)
                if prefix.lower() != kind and prefix.lower() in INDEX_TYPES:
                    continue
                name = rest
            out.setdefault(name, value)

    walk(settings)
    if kind:
        out = {k: v for k, v in out.items() if k not in ONLY_FOR or kind.startswith(ONLY_FOR[k])}
    return out


def settings_phrase(settings: Mapping[str, Any]) -> str:
    """"ivfflat lists=1000 probes=1 metric=cosine" from a store's search settings."""
    if not settings:
        return ""
    flat = flat_settings(settings)
    kind = index_kind(settings)
    if (not kind and "index" in settings and settings["index"] is None) or kind == "none":
        kind = "no index (exact scan)"
    keys = [k for k in PRIMARY if k in flat] + sorted(k for k in flat if k not in PRIMARY and k not in NOISE)
    return " ".join(([kind] if kind else []) + [f"{k}={flat[k]}" for k in keys])


def advice(settings: Mapping[str, Any]) -> str:
    """What usually lifts recall for the search settings found (store-neutral names)."""
    flat = flat_settings(settings)
    kind = index_kind(settings).lower()
    probes = flat.get("probes", flat.get("nprobe", flat.get("nprobes")))
    ef = flat.get("ef_search", flat.get("ef", flat.get("hnsw_ef")))
    if probes is not None and ("ivf" in kind or not kind):
        return f"raise probes (now {probes}) or build hnsw"
    if ef is not None and "hnsw" in kind:
        return f"raise ef_search (now {ef})"
    if kind in ("", "none"):
        return ""
    return "check the target index's parameters against the source's"
