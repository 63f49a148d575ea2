"""Records with every kind of value a rollback must bring back exactly, and an exact comparison.

``exact(records)`` turns records into something whose equality means bit-for-bit equality:
vectors as their float32 bytes, metadata with the type of every value kept (``1``, ``1.0``
and ``True`` differ), text as is (``None`` and ``""`` differ).
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np

DIM = 4


def record(i: int, seed: int) -> dict[str, Any]:
    rng = random.Random(i * 1009 + seed)
    vec = np.array([rng.uniform(-2, 2) for _ in range(DIM)], dtype=np.float32)
    vec[0] = np.float32(1e-38 * (seed + 1))  # a subnormal-ish edge value
    if i % 3 == 0:
        vec[1] = np.float32(-0.0)
    meta: dict[str, Any] = {
        "n": i * 10 + seed,              # int
        "f": float(i) + seed,            # a float with an integral value: must stay a float
        "x": rng.random(),
        "ok": bool((i + seed) % 2),
        "tag": f"tag-{seed}-{i}-é✓",
        "none": None,
        "tags": [f"a{seed}", f"b{i}"],
    }
    text: str | None = f"text {i} seed {seed} — ünïcödé" if i % 4 else None
    return {"id": i, "vector": [float(v) for v in vec], "metadata": meta, "text": text}


def records(ids: range, seed: int) -> list[dict[str, Any]]:
    return [record(i, seed) for i in ids]


def write_jsonl(path: Path, recs: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _typed(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(_typed(v) for v in value))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


def exact(recs: Any) -> dict[Any, tuple[Any, ...]]:
    """id -> (float32 bytes of the vector, typed metadata, text), from dicts or (id, vec, meta, text) rows."""
    out: dict[Any, tuple[Any, ...]] = {}
    for r in recs:
        rid, vec, meta, text = (r["id"], r["vector"], r.get("metadata") or {}, r.get("text")) \
            if isinstance(r, dict) else r
        assert rid not in out, f"id {rid!r} twice"
        out[rid] = (np.asarray(vec, dtype="<f4").tobytes(), _typed(dict(meta)), text)
    return out


def read_store(provider: str, path: Path) -> dict[Any, tuple[Any, ...]]:
    """Every record of a file target as the provider reads it (the final file only)."""
    from vecmig.providers import provider_class
    from vecmig.spec import StoreSpec

    store = StoreSpec(provider=provider, connection={"path": str(path)}, collection=str(path))
    p = provider_class(provider)(store)
    p.connect()
    try:
        rows = [row for batch in p.scan(None, None, 1000) for row in batch.rows()]
    finally:
        p.close()
    return exact(rows)
