"""The Pinecone store as the spec loader sees it (the SDK is not imported here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vecmig.providers.kit import ProviderKit, SpecRules

INDEX_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")


def _sparse_needs_dotproduct(store: Mapping[str, Any], pointer: str) -> tuple[str, str, str] | None:
    create = store.get("create") or {}
    if create.get("sparse") and create.get("metric", "dotproduct") != "dotproduct":
        return (f"{pointer}/create/sparse needs metric dotproduct, not {create['metric']}",
                f"{pointer}/create/sparse",
                "set `metric: dotproduct` (Pinecone scores sparse-dense records by dot product), or drop sparse")
    return None


KIT = ProviderKit(
    name="pinecone",
    summary="Pinecone serverless indexes, through the official pinecone SDK",
    provider="vecmig.providers.pinecone.provider:PineconeProvider",
    rules=SpecRules(
        connection_keys=("api_key",),
        connection_example='connection: {api_key: "${env:PINECONE_API_KEY}"} (optionally host, concurrency, '
                           "timeout, ready_timeout, nested_metadata)",
        connection_schema={
            "api_key": {"$ref": "#/$defs/secret_string"},
            "host": {"$ref": "#/$defs/secret_string",
                     "description": "pinecone: the control-plane address (a local server in tests)"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 64,
                            "description": "pinecone: requests in flight per worker (default 4)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                        "description": "pinecone: seconds per request (default 30)"},
            "ready_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400,
                              "description": "pinecone: seconds to wait for a new index to be ready (default 300)"},
            "nested_metadata": {"enum": ["error", "json"],
                                "description": "pinecone: nested objects and non-string lists in metadata fail "
                                               "(error) or are stored as JSON strings (json)"},
        },
        optional_keys=("host", "concurrency", "timeout", "ready_timeout", "nested_metadata"),
        create_schema={
            "cloud": {"enum": ["aws", "gcp", "azure"], "description": "pinecone: the serverless cloud (default aws)"},
            "region": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
                       "x-messages": {"pattern": "{value} is not a cloud region name"},
                       "x-hint": "write the region as the cloud names it, e.g. us-east-1",
                       "description": "pinecone: the serverless region (default us-east-1)"},
            "deletion_protection": {"enum": ["enabled", "disabled"],
                                    "description": "pinecone: refuse deletes of the new index "
                                                   "(rollback then cannot drop it)"},
            "tags": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,80}$"},
                     "additionalProperties": {"type": "string", "maxLength": 120},
                     "x-hint": "tags are `{name: value}` strings, e.g. `tags: {team: search}`",
                     "description": "pinecone: index tags (vecmig adds created-by: vecmig)"},
            "sparse": {"type": "boolean",
                       "description": "pinecone: give the new index a sparse field (needs metric dotproduct)"},
        },
        prices_schema={
            "type": "object", "additionalProperties": False,
            "properties": {
                "plan": {"enum": ["standard", "enterprise"]},
                "write_units_per_million": {"type": "number", "minimum": 0},
                "read_units_per_million": {"type": "number", "minimum": 0},
                "storage_gb_month": {"type": "number", "minimum": 0},
                "as_of": {"$ref": "#/$defs/nonempty_string"},
            },
            "x-hint": "USD list prices, e.g. `{write_units_per_million: 4.0, read_units_per_million: 16.0, "
                      "storage_gb_month: 0.33, as_of: 2025-06}`",
        },
        needs_collection=True,
        collection_hint="the index name: add `collection: <index>`",
        collection_pattern=INDEX_NAME,
        collection_rule="use 1-45 lowercase letters, digits and '-', starting and ending with a letter or digit",
        collection_noun="Pinecone index name",
        max_dimension=20_000,
        namespaces=True,
        target_only_keys=("nested_metadata", "ready_timeout"),
        shards_by_size=False,
        fixed_fields=("id", "vector"),
        metadata_columns=False,
        id_types=(),
        metered=True,
        pointer_only=True,
        secret_keys=("api_key",),
        secret_env=("PINECONE_API_KEY",),
        lint_prefix="PC",
        checks=(_sparse_needs_dotproduct,),
    ),
)
