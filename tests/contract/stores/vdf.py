"""VDF (vector-io's directory format) in the contract suite: one VDF directory in the session's
tmp directory, each collection an index in it; seeded through vecmig's own upsert."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.contract.kit import StoreUnderTest
from vecmig.spec import StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    root = tmp / "vdf"

    def spec(name: str, role: str) -> StoreSpec:
        return StoreSpec(provider="vdf", connection={"path": str(root)}, collection=name, pointer=f"/{role}",
                         base_dir=tmp)

    return StoreUnderTest(
        provider="vdf",
        spec=spec,
        lacks={
            "sparse": "VDF's Parquet files hold dense vectors only: vecmig refuses sparse values (VM104)",
            "namespaces": "one VDF namespace per spec (namespace: <name>); '*' is refused",
            "metadata:null": "one typed Parquet column per key: a null reads back as an absent key",
        },
        max_batch=10_000,
        stop=lambda: shutil.rmtree(root, ignore_errors=True),
    )
