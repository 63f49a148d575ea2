"""The one local Pinecone server (``tests/pinecone_local`` in a child process) a test process spawns.

Fixtures (registered in ``tests/conftest.py``):

* ``pinecone_server`` (session): the spawned server, shared by every module that uses it;
  a test that needs it empty calls ``reset()`` (or uses ``pinecone_srv``);
* ``pinecone_srv`` (function): the same server, reset before and after the test.

The contract suite's pinecone store (``tests/contract/stores/pinecone.py``, which gets no
fixtures) takes the same server with :func:`acquire` / :func:`release`. The API key is a
marker: it must never show up in state, plan files or any output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.pinecone_local import PineconeLocal, SpawnedPineconeLocal

API_KEY = "pcsk_MARKER-key-do-not-leak-7f3a"

_lock = threading.Lock()
_server: SpawnedPineconeLocal | None = None
_refs = 0


def acquire() -> SpawnedPineconeLocal:
    """The process's server, spawned on first use (a reference on it: pair with :func:`release`)."""
    global _server, _refs
    with _lock:
        if _server is None or _server.process.poll() is not None:
            _server = PineconeLocal.spawn(api_key=API_KEY)
        _refs += 1
        return _server


def release() -> None:
    """Give back one reference; the last one stops the server."""
    global _server, _refs
    with _lock:
        _refs = max(0, _refs - 1)
        if _refs == 0 and _server is not None:
            _server.stop()
            _server = None


@pytest.fixture(scope="session")
def pinecone_server() -> Iterator[SpawnedPineconeLocal]:
    server = acquire()
    try:
        yield server
    finally:
        release()


@pytest.fixture
def pinecone_srv(pinecone_server: SpawnedPineconeLocal) -> Iterator[SpawnedPineconeLocal]:
    pinecone_server.reset()
    yield pinecone_server
    pinecone_server.reset()
