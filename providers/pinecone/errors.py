"""Turning ``pinecone`` SDK exceptions into vecmig's transient/terminal split, without secrets.

The SDK (10.x) raises :class:`pinecone.errors.ApiError` subclasses keyed on the HTTP status
(``status_code``), :class:`PineconeConnectionError` / :class:`PineconeTimeoutError` for
transport failures, and :class:`PineconeValueError` / :class:`PineconeTypeError` for
arguments it refused before sending. It has already retried 408/429/5xx and transport
errors (3 times, within a per-host retry budget) by the time one reaches us.
"""

from __future__ import annotations

from pinecone.errors import (
    ApiError,
    PineconeConnectionError,
    PineconeError,
    PineconeTimeoutError,
    PineconeTypeError,
    PineconeValueError,
    RateLimitError,
)

from vecmig.errors import ProviderError, TerminalError, TransientError

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 300


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` in seconds), if it said."""
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return float(exc.retry_after)
    headers = getattr(exc, "headers", None) or {}
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None  # an HTTP-date: let the backoff decide
    return value if value >= 0 else None


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    from vecmig.state.redact import Redactor

    return Redactor(secrets)(text)


def status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, ApiError) else None


def classify(
    exc: BaseException,
    *,
    doing: str,
    index: str | None,
    role: str,
    secrets: tuple[str, ...] = (),
) -> ProviderError:
    """One-line, secret-free error for an SDK exception raised while ``doing`` something.

    ``role`` is where the store sits in the spec ("source"/"target"), so hints can name the
    key to fix (``target.connection.api_key``).
    """
    what = f"index '{index}'" if index else "Pinecone"
    msg = scrub(_message(exc), secrets)
    status = status_of(exc)
    if isinstance(exc, PineconeTimeoutError):
        return TransientError(f"Pinecone timed out while {doing} ({what}): {msg}")
    if isinstance(exc, PineconeConnectionError):
        return TransientError(
            f"cannot reach Pinecone while {doing} ({what}): {msg}",
            hint=f"check {role}.connection.host and the network",
        )
    if status is None:
        if isinstance(exc, PineconeValueError | PineconeTypeError):
            return TerminalError(f"Pinecone SDK refused {doing} ({what}): {msg}")
        return TerminalError(f"Pinecone failed while {doing} ({what}): {msg}")
    if status == 401:
        return TerminalError(
            f"Pinecone rejected the API key while {doing}",
            hint=f"check {role}.connection.api_key (e.g. PINECONE_API_KEY)",
        )
    if status == 403:
        return TerminalError(
            f"Pinecone refused {doing} ({what}): {msg}",
            hint="the API key lacks permission, or deletion protection is on (disable it in the console)",
        )
    if status == 404:
        return TerminalError(
            f"Pinecone {what} does not exist ({doing})",
            hint=f"check {role}.collection (index names are lowercase, digits and '-')",
        )
    if status == 402:
        return TerminalError(
            f"Pinecone refused {doing}: the project is over its plan's limits ({msg})",
            hint="check the Pinecone plan and billing",
        )
    if status in _TRANSIENT_STATUS or status >= 500:
        return TransientError(
            f"Pinecone answered {status} while {doing} ({what}): {msg}", retry_after=retry_after(exc)
        )
    if status == 413:
        return TerminalError(
            f"Pinecone refused a request as too large while {doing}: {msg}",
            hint="lower the request size (this is a vecmig packing bug: please report it)",
        )
    return TerminalError(f"Pinecone refused {doing} ({what}, HTTP {status}): {msg}")


def _message(exc: BaseException) -> str:
    raw = exc.message if isinstance(exc, PineconeError) else str(exc)
    line = " ".join(str(raw).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def is_oversize(exc: BaseException) -> bool:
    """A request refused for its size (413, or the 400 Pinecone sends for bodies over 2 MB)."""
    status = status_of(exc)
    if status == 413:
        return True
    if status != 400:
        return False
    text = _message(exc).lower()
    return "exceeds the maximum supported size" in text or "message length too large" in text
