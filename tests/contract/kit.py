"""How a store joins the contract suite (``tests/contract/test_contract.py``).

One module per store under ``tests/contract/stores/``, named after the provider, defining::

    def under_test(tmp: Path) -> StoreUnderTest

called once per test session (``tmp`` is a directory of its own): it starts what the store
needs (a server, a local protocol server, nothing for files) and returns the object below.
The suite discovers every such module; a store whose server cannot start fails its tests
(never skips them). A module may also set ``TIER = "unit"`` when its store needs no server and
no subprocess (memory); its cases are then part of the fast unit tier. The default tier is
``integration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from vecmig.spec import StoreSpec


@dataclass
class StoreUnderTest:
    """One store, ready for the contract suite."""

    provider: str
    # A StoreSpec for a fresh, empty collection named from ``name`` (unique per test); role is
    # "source" or "target". Collections the suite creates are its own to drop.
    spec: Callable[[str, str], StoreSpec]
    # What the store does not do, each with why (the suite leaves those cases out, and says so
    # in its report). Keys: "ids:int", "ids:str", "text", "sparse", "namespaces", "delete",
    # "metadata:<type>" for int, float, bool, null, str, list_str. For ids, text, sparse and
    # metadata types the suite still writes such values, one record at a time: each must be
    # refused with an error naming the record, or come back equal under vecmig's canonical form
    # (1 == 1.0, null == absent): declared, never a silent change. "delete" must raise.
    lacks: Mapping[str, str] = field(default_factory=dict)
    # Records per upsert at the store's own limit (largest batch the suite sends in one call).
    max_batch: int = 1000
    # Called once when the session ends: stop servers, remove temporary files.
    stop: Callable[[], None] = lambda: None
    # Seed a collection with the store's own client (the e2e tests' "seed with its own client");
    # None: the suite seeds through vecmig's own upsert.
    seed: Callable[[StoreSpec, list[dict[str, Any]]], None] | None = None
    # Arm the store's own transient faults for the retry case: given a target spec, a context
    # manager whose value is the spec to write through while armed (memory: fault keys added;
    # a protocol server: faults set on the server) and a callable counting the faults injected
    # since it was entered. Leaving it disarms them. None: the store has no transient faults to
    # inject here (the case is left out, and the report says so).
    faults: Callable[[StoreSpec], AbstractContextManager[Faults]] | None = None


@dataclass(frozen=True)
class Faults:
    """Transient faults armed on a store (see ``StoreUnderTest.faults``)."""

    spec: StoreSpec  # the target spec to apply through while the faults are armed
    injected: Callable[[], int]  # faults injected since they were armed
