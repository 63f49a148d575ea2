"""``transform.embed.keep_old``: the record's old vector kept in a target metadata field, as
JSON numbers that read back to the same float32 bits (the copy writes it, the diff and
validation compare it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vecmig.records import Batch


def old_vector_value(vector: np.ndarray) -> list[float]:
    """Each float32 widened to the float64 it equals: its shortest repr reads back to the same bits."""
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


def with_old_vectors(batch: Batch, field: str) -> list[dict[str, Any]]:
    """The batch's metadata, each record's with its (old) vector under ``field``."""
    return [{**meta, field: old_vector_value(old)} for meta, old in zip(batch.metadata, batch.vectors, strict=True)]
