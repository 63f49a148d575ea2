"""A local server speaking Qdrant's REST protocol, faithful enough for the real ``qdrant-client``.

``store.py`` holds the data model and Qdrant's rules (ids, order, float32, cosine
normalisation, payload numbers), ``handlers.py`` the endpoints, ``server.py`` the HTTP layer
(envelope, 32 MB body limit, API key, scripted faults) and ``spawn`` for a child process.
"""

from tests.qdrant_local.server import MAX_REQUEST_BYTES, QdrantLocal, SpawnedQdrantLocal

__all__ = ["MAX_REQUEST_BYTES", "QdrantLocal", "SpawnedQdrantLocal"]
