"""CSV in the contract suite: a file per collection in the session's tmp directory, nothing to
start; seeded through vecmig's own upsert (the file is the store's only interface)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.contract.kit import StoreUnderTest
from vecmig.spec import StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    root = tmp / "csv"
    root.mkdir(parents=True, exist_ok=True)

    def spec(name: str, role: str) -> StoreSpec:
        return StoreSpec(provider="csv", connection={"path": str(root / f"{name}.csv")}, pointer=f"/{role}",
                         base_dir=root)

    return StoreUnderTest(
        provider="csv",
        spec=spec,
        lacks={
            "sparse": "a CSV file has no sparse column: vecmig refuses sparse values (VM104)",
            "namespaces": "a CSV file is one collection",
        },
        max_batch=10_000,
        stop=lambda: shutil.rmtree(root, ignore_errors=True),
    )
