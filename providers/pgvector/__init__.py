"""PostgreSQL + pgvector provider (source and target), with an optional embedded server."""

from vecmig.providers.pgvector.provider import PgvectorProvider

__all__ = ["PgvectorProvider"]
