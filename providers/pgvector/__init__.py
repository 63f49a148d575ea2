"""PostgreSQL + pgvector provider (source and target), with an optional embedded server.

The package itself imports nothing heavy: its kit (``kit.py``) is read by every spec load,
and psycopg is imported only when the provider class is first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PgvectorProvider"]


def __getattr__(name: str) -> Any:
    if name == "PgvectorProvider":
        from vecmig.providers.pgvector.provider import PgvectorProvider

        return PgvectorProvider
    raise AttributeError(name)
