"""The memory provider in the contract suite: in-process, so its cases run in the unit tier too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tests.contract.kit import Faults, StoreUnderTest
from vecmig.providers.memory import store as registry
from vecmig.spec import StoreSpec

TIER = "unit"  # no server, no subprocess: `-m unit` runs the engine's fast contract check


def under_test(tmp: Path) -> StoreUnderTest:
    name = f"contract-{uuid.uuid4().hex[:8]}"  # a store of its own: unit tests reset theirs

    def spec(collection: str, role: str) -> StoreSpec:
        return StoreSpec(provider="memory", connection={"name": name}, collection=collection,
                         pointer=f"/{role}", base_dir=tmp)

    @contextmanager
    def faults(target: StoreSpec) -> Iterator[Faults]:
        stats = registry.get(name).stats
        before = stats.transient_faults
        # Every third upsert fails transiently, asking for no wait: the engine's copy retries
        # from its last checkpoint.
        armed = replace(target, connection={**target.connection, "transient_every": 3, "retry_after": 0})
        yield Faults(armed, lambda: stats.transient_faults - before)

    return StoreUnderTest(provider="memory", spec=spec, max_batch=1000, faults=faults)
