"""The unit tier: the engine in-process on the memory provider; no subprocess, no server.

Every test starts with an empty memory registry and gets a :class:`Harness` rooted in its
tmp directory (the state is ``state.db`` there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.memory import Harness
from vecmig.providers.memory import store as memory


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    memory.reset()
    yield
    memory.reset()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()
