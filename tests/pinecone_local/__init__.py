"""A local fake of Pinecone's REST API for tests, faithful enough for the real SDK.

See ``server.py`` for routing and hooks, ``limits.py`` for the enforced limits,
and ``faults.py`` for fault injection.
"""

from tests.pinecone_local.errors import ApiFailure
from tests.pinecone_local.faults import (
    CONTROL_ENDPOINTS,
    DATA_ENDPOINTS,
    FaultConfig,
)
from tests.pinecone_local.sdk import reset_sdk_host_state, sdk_client
from tests.pinecone_local.server import (
    DEFAULT_API_KEY,
    PineconeLocal,
    SpawnedPineconeLocal,
)

__all__ = [
    "CONTROL_ENDPOINTS",
    "DATA_ENDPOINTS",
    "DEFAULT_API_KEY",
    "ApiFailure",
    "FaultConfig",
    "PineconeLocal",
    "SpawnedPineconeLocal",
    "reset_sdk_host_state",
    "sdk_client",
]
