"""The Qdrant store as the spec loader sees it (qdrant-client is not imported here)."""

from __future__ import annotations

import re

from vecmig.providers.kit import ProviderKit, SpecRules

# Qdrant refuses these characters in a collection name (they would break its storage paths).
COLLECTION_NAME = re.compile(r'^[^/\\:*?"<>|\x00]{1,255}$')

KIT = ProviderKit(
    name="qdrant",
    summary="Qdrant collections over REST, through the official qdrant-client",
    provider="vecmig.providers.qdrant.provider:QdrantProvider",
    rules=SpecRules(
        connection_keys=("url",),
        connection_example='connection: {url: "http://localhost:6333", api_key: "${env:QDRANT_API_KEY}"} '
                           "(api_key and timeout optional)",
        connection_schema={
            "url": {"$ref": "#/$defs/secret_string",
                    "description": "qdrant: the REST endpoint, e.g. http://localhost:6333 (may carry credentials)"},
            "api_key": {"$ref": "#/$defs/secret_string", "description": "qdrant: the API key (optional)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                        "description": "qdrant: seconds per request (default 60)"},
        },
        optional_keys=("api_key", "timeout"),
        needs_collection=True,
        collection_hint="the collection name: add `collection: <name>`",
        collection_pattern=COLLECTION_NAME,
        collection_rule="use 1-255 characters, none of / \\ : * ? \" < > |",
        collection_noun="Qdrant collection name",
        max_dimension=65_536,
        fixed_fields=("id",),
        metadata_columns=False,
        id_types=(),
        secret_keys=("url", "api_key"),
        secret_env=("QDRANT_API_KEY",),
        lint_prefix="QD",
    ),
)
