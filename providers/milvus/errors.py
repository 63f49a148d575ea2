"""pymilvus exceptions as vecmig's transient/terminal split, one line each, without secrets.

pymilvus raises :class:`MilvusException` (``code``: the server's error code, or a client
one) and subclasses for arguments it refused before sending; transport failures surface as
``grpc.RpcError`` or as a MilvusException with code 2 ("Fail connecting to server").
Transient: the server is unreachable, not ready, rate-limiting, or timed out; every other
error is terminal (bad input, a missing collection, a schema mismatch).
"""

from __future__ import annotations

import grpc
from pymilvus.exceptions import (
    ConnectError,
    DataNotMatchException,
    MilvusException,
    MilvusUnavailableException,
    ParamError,
)

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.state.redact import Redactor

RATE_LIMIT = 8
COLLECTION_NOT_FOUND = 100
CONNECT_FAILED = 2  # pymilvus' code when the channel never became ready
_TRANSIENT_GRPC = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
# Server messages that mean "try again later" (coordinators starting, a node gone, memory pressure).
_TRANSIENT_WORDS = ("not ready", "unavailable", "timeout", "timed out", "rate limit", "too many requests",
                    "memory quota", "disk quota", "no available", "channel not found")
_MAX_MESSAGE = 300


def message_of(exc: BaseException) -> str:
    raw = exc.message if isinstance(exc, MilvusException) else (
        exc.details() if isinstance(exc, grpc.RpcError) and hasattr(exc, "details") else str(exc))
    line = " ".join(str(raw).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in _TRANSIENT_GRPC
    if isinstance(exc, ConnectionError | TimeoutError | MilvusUnavailableException | ConnectError):
        return True
    if isinstance(exc, ParamError | DataNotMatchException):
        return False
    if isinstance(exc, MilvusException):
        if exc.code in (RATE_LIMIT, CONNECT_FAILED) or getattr(exc, "retriable", False):
            return True
        text = message_of(exc).lower()
        return any(word in text for word in _TRANSIENT_WORDS)
    return False


def classify(exc: BaseException, *, doing: str, collection: str | None, role: str,
             secrets: tuple[str, ...] = ()) -> ProviderError:
    """One-line, secret-free error for a pymilvus exception raised while ``doing`` something;
    ``role`` names the spec key to fix (``target.connection.uri``)."""
    what = f"collection '{collection}'" if collection else "Milvus"
    msg = Redactor(secrets)(message_of(exc))
    if is_transient(exc):
        return TransientError(f"Milvus is unavailable while {doing} ({what}): {msg}",
                              hint=f"check that the server at {role}.connection.uri is up")
    code = exc.code if isinstance(exc, MilvusException) else None
    if code == COLLECTION_NOT_FOUND:
        return TerminalError(f"Milvus {what} does not exist ({doing})", hint=f"check {role}.collection")
    lowered = msg.lower()
    if "auth" in lowered or "credential" in lowered or "permission" in lowered or "privilege" in lowered:
        return TerminalError(f"Milvus refused {doing} ({what}): {msg}", hint=f"check {role}.connection.token")
    return TerminalError(f"Milvus refused {doing} ({what}): {msg}")
