"""The pgvector store as the spec loader sees it (no driver imported here)."""

from __future__ import annotations

from vecmig.providers.kit import ProviderKit, SpecRules

KIT = ProviderKit(
    name="pgvector",
    summary="PostgreSQL with pgvector: a running server (dsn) or an embedded one started by vecmig",
    provider="vecmig.providers.pgvector.provider:PgvectorProvider",
    rules=SpecRules(
        connection_keys=("dsn", "embedded"),
        connection_example='connection: {dsn: "${env:PG_DSN}"} or connection: {embedded: .vecmig/pg}',
        connection_schema={
            "dsn": {"$ref": "#/$defs/secret_string", "description": "pgvector: a libpq connection string"},
            "embedded": {"$ref": "#/$defs/nonempty_string",
                         "description": "pgvector: directory of a PostgreSQL 16 + pgvector server vecmig starts"},
        },
        connection_exclusive_hint="dsn connects to a running server; embedded starts a local one: keep one",
        needs_collection=True,
        collection_hint="the table name: add `collection: <table>`",
        plain_names=True,
        indexes=True,
        paths={"embedded": ("dir", "embedded PostgreSQL directory")},
        secret_keys=("dsn",),
    ),
)
