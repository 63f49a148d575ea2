"""Pinecone serverless provider (source and target), through the official ``pinecone`` SDK.

The package itself imports nothing heavy: its kit (``kit.py``) is read by every spec load,
and the SDK is imported only when the provider class is first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Finding", "PineconeProvider", "lint_sample"]


def __getattr__(name: str) -> Any:
    if name == "PineconeProvider":
        from vecmig.providers.pinecone.provider import PineconeProvider

        return PineconeProvider
    if name in ("Finding", "lint_sample"):
        from vecmig.providers.pinecone import lint

        return getattr(lint, name)
    raise AttributeError(name)
