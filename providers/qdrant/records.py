"""Qdrant points as vecmig records and back: payload = metadata + text + (mapped) original id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qdrant_client import models

from vecmig.providers.qdrant import ids
from vecmig.records import Batch, RecordId


def to_batch(points: Sequence[models.Record], dim: int, vector_name: str | None, text_key: str,
             collection: str) -> Batch:
    """Records in the order given. A text key holding something other than a string is
    metadata (a collection vecmig did not write may use the name for anything)."""
    out_ids: list[RecordId] = []
    rows: list[Any] = []
    metadata: list[dict[str, Any]] = []
    texts: list[str | None] = []
    for point in points:
        payload = dict(point.payload or {})
        out_ids.append(ids.record_id(point.id, payload, collection))  # type: ignore[arg-type]
        text = payload.get(text_key)
        texts.append(payload.pop(text_key) if isinstance(text, str) else None)
        metadata.append(payload)
        vec: Any = point.vector
        if isinstance(vec, dict):
            vec = vec.get(vector_name or "")
        rows.append(vec)
    vectors = np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, dim), np.float32)
    return Batch(ids=out_ids, vectors=vectors.reshape(len(rows), dim), metadata=metadata, texts=texts)


def payloads(batch: Batch, text_key: str) -> list[dict[str, Any]]:
    texts = batch.texts if batch.texts is not None else [None] * len(batch)
    out = []
    for rid, meta, text in zip(batch.ids, batch.metadata, texts, strict=True):
        payload = dict(meta)
        if text is not None:
            payload[text_key] = text
        if not ids.is_native(rid):
            payload[ids.ID_KEY] = rid
        out.append(payload)
    return out
