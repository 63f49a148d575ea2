"""Turning chromadb exceptions into vecmig's transient/terminal split, in one line each.

The client (1.5.9) raises :class:`chromadb.errors.ChromaError` subclasses whose ``code()`` is
the HTTP status the server answered (or would have: PersistentClient raises the same types),
httpx transport errors when ``chroma run`` cannot be reached, and ``ValueError`` for
arguments it refused before sending. The server being down, restarting or overloaded is
worth retrying; anything it refused for what was sent is not.
"""

from __future__ import annotations

import httpx
from chromadb.errors import ChromaError

from vecmig.errors import ProviderError, TerminalError, TransientError

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 300


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def classify(exc: BaseException, *, doing: str, collection: str | None, role: str) -> ProviderError:
    what = f"collection {collection!r}" if collection else "Chroma"
    msg = _message(exc)
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"Chroma timed out while {doing} ({what}): {msg}")
    if isinstance(exc, httpx.TransportError) or "could not connect" in msg.lower():
        return TransientError(f"cannot reach Chroma while {doing} ({what}): {msg}",
                              hint=f"check {role}.connection.host and port, and that `chroma run` is up")
    if isinstance(exc, ChromaError):
        status = exc.code()
        if status in _TRANSIENT_STATUS:
            return TransientError(f"Chroma answered {status} while {doing} ({what}): {msg}")
        return TerminalError(f"Chroma refused {doing} ({what}): {msg}")
    return TerminalError(f"Chroma failed while {doing} ({what}): {type(exc).__name__}: {msg}")
