"""qdrant-client exceptions as vecmig's transient/terminal split, in one line, without secrets.

Over REST the client raises :class:`UnexpectedResponse` for any status but 2xx (Qdrant's
message is ``status.error`` in the JSON body), :class:`ResourceExhaustedResponse` for a 429
that names a ``Retry-After``, and :class:`ResponseHandlingException` around a transport
failure (the httpx error is its ``source``) or an answer it could not parse.
"""

from __future__ import annotations

import json

import httpx
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.state.redact import Redactor

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 300


def server_message(exc: UnexpectedResponse) -> str:
    """Qdrant's ``status.error`` text, else the start of the raw body."""
    try:
        text = str(json.loads(exc.content)["status"]["error"])
    except (ValueError, KeyError, TypeError):
        text = exc.content[:_MAX_MESSAGE].decode("utf-8", "replace") or (exc.reason_phrase or "")
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def is_oversize(exc: BaseException) -> bool:
    """A request Qdrant refused for its size (over ``max_request_size_mb``, 32 MB by default)."""
    if not isinstance(exc, UnexpectedResponse) or exc.status_code not in (400, 413):
        return False
    return exc.status_code == 413 or "larger than allowed" in server_message(exc)


def _retry_after(exc: UnexpectedResponse) -> float | None:
    raw = exc.headers.get("retry-after") if exc.headers is not None else None
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def classify(exc: BaseException, *, doing: str, collection: str | None, role: str,
             secrets: tuple[str, ...]) -> ProviderError:
    what = f"collection '{collection}'" if collection else "Qdrant"
    scrub = Redactor(secrets)
    if isinstance(exc, ResourceExhaustedResponse):
        return TransientError(f"Qdrant is rate limiting {doing} ({what}): {scrub(exc.message)}",
                              retry_after=float(exc.retry_after_s))
    if isinstance(exc, ResponseHandlingException):
        source = exc.source
        if isinstance(source, httpx.TransportError):
            return TransientError(f"cannot reach Qdrant while {doing} ({what}): {scrub(type(source).__name__)}",
                                  hint=f"check {role}.connection.url and the network")
        return TerminalError(f"Qdrant gave an answer qdrant-client cannot read while {doing} ({what})",
                             hint="check that the url is a Qdrant REST endpoint (port 6333)")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"cannot reach Qdrant while {doing} ({what}): {type(exc).__name__}",
                              hint=f"check {role}.connection.url and the network")
    if not isinstance(exc, UnexpectedResponse):
        return TerminalError(f"qdrant-client refused {doing} ({what}): {scrub(' '.join(str(exc).split())[:300])}")
    status = exc.status_code or 0
    msg = scrub(server_message(exc))
    if status in (401, 403):
        return TerminalError(f"Qdrant refused the API key while {doing} ({msg})",
                             hint=f"check {role}.connection.api_key")
    if status == 404:
        return TerminalError(f"Qdrant {what} does not exist ({doing}): {msg}",
                             hint=f"check {role}.collection, or let vecmig create it (target.create)")
    if status in _TRANSIENT_STATUS or status >= 500:
        return TransientError(f"Qdrant answered {status} while {doing} ({what}): {msg}",
                              retry_after=_retry_after(exc))
    return TerminalError(f"Qdrant refused {doing} ({what}, HTTP {status}): {msg}")
