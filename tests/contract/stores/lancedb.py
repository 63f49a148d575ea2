"""LanceDB in the contract suite: embedded, so nothing to start; each collection a table in one
tmp directory, seeded with lancedb's own API (``create_table`` from Arrow, as its docs show)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from tests.contract.kit import StoreUnderTest
from vecmig.providers.files.common import dumps
from vecmig.spec import StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    root = tmp / "lancedb"

    def spec(name: str, role: str) -> StoreSpec:
        return StoreSpec(provider="lancedb", connection={"path": str(root)}, collection=name, pointer=f"/{role}")

    def seed(store: StoreSpec, records: list[dict[str, Any]]) -> None:
        """One table with the id, a fixed-size float32 vector, the text and the metadata as one
        JSON column: any record shape the suite sends fits it, and the provider reads it back."""
        dim = len(records[0]["vector"]) if records else 1
        ids = [r["id"] for r in records]
        id_type = pa.int64() if all(isinstance(i, int) for i in ids) else pa.string()
        flat = np.asarray([r["vector"] for r in records], dtype=np.float32).reshape(-1)
        table = pa.table({
            "id": pa.array(ids, id_type),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim),
            "text": pa.array([r.get("text") for r in records], pa.string()),
            "metadata": pa.array([dumps(r.get("metadata") or {}) for r in records], pa.string()),
        })
        lancedb.connect(str(root)).create_table(str(store.collection), data=table)

    return StoreUnderTest(
        provider="lancedb",
        spec=spec,
        lacks={
            "sparse": "LanceDB tables here hold dense vectors only: vecmig refuses sparse values (VM104)",
            "namespaces": "LanceDB has no namespaces: one table is one collection",
        },
        max_batch=10_000,
        stop=lambda: shutil.rmtree(root, ignore_errors=True),
        seed=seed,
    )
