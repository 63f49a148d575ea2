"""Pytest fixtures for the fake; import the ones you need into a test module.

Example::

    from tests.pinecone_local.fixtures import pinecone_local  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pinecone_local.sdk import reset_sdk_host_state
from tests.pinecone_local.server import DEFAULT_API_KEY, PineconeLocal


@pytest.fixture
def pinecone_local() -> Iterator[PineconeLocal]:
    """A fresh in-process fake per test, indexes ready as soon as created."""
    with PineconeLocal(api_key=DEFAULT_API_KEY) as server:
        yield server
    reset_sdk_host_state()


@pytest.fixture(scope="module")
def pinecone_local_module() -> Iterator[PineconeLocal]:
    """One fake shared by a module; call ``server.reset()`` between tests as needed."""
    with PineconeLocal(api_key=DEFAULT_API_KEY) as server:
        yield server
    reset_sdk_host_state()
