"""A JSON Lines file in the contract suite: one file per collection under the session's directory."""

from __future__ import annotations

from pathlib import Path

from tests.contract.kit import StoreUnderTest
from vecmig.spec import StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    def spec(collection: str, role: str) -> StoreSpec:
        return StoreSpec(provider="jsonl", connection={"path": str(tmp / f"{collection}.jsonl")},
                         pointer=f"/{role}", base_dir=tmp)

    # A file has no transient failures of its own to inject: no `faults`.
    return StoreUnderTest(provider="jsonl", spec=spec, max_batch=5000)
