"""Helpers for pointing the real ``pinecone`` SDK at the fake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pinecone import Pinecone


class _HasUrl(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def api_key(self) -> str: ...


def sdk_client(server: _HasUrl, **kwargs: Any) -> Pinecone:
    """A ``Pinecone`` client for *server*'s control plane.

    The URL must keep its ``http://`` scheme: the SDK reads a scheme-less host
    as ``https://``.
    """
    from pinecone import Pinecone

    kwargs.setdefault("api_key", server.api_key)
    return Pinecone(host=server.url, **kwargs)


def reset_sdk_host_state() -> None:
    """Forget the SDK's process-wide, per-hostname retry and throttling state.

    pinecone 10.x keeps a retry-budget token bucket and a bulk-upsert admission
    gate per *hostname* (port ignored) for the whole process. Every fake server
    is ``127.0.0.1``, so after a fault-injection test drains the budget, later
    tests in the same process would see retries suppressed or bulk upserts held
    back. These are private SDK APIs; if they move, this becomes a no-op.
    """
    try:
        from pinecone._internal.bulk import get_registry
        from pinecone._internal.http_client import get_budget_registry
    except ImportError:
        return
    for registry in (get_budget_registry(), get_registry()):
        reset = getattr(registry, "_reset", None)
        if callable(reset):
            reset()
