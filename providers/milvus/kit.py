"""The Milvus store as the spec loader sees it (pymilvus is not imported here)."""

from __future__ import annotations

import re

from vecmig.providers.kit import ProviderKit, SpecRules

# Milvus names: a letter or '_' first, then letters, digits and '_', 255 at most.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MAX_DIMENSION = 32_768  # Milvus' maxDimension for FLOAT_VECTOR

KIT = ProviderKit(
    name="milvus",
    summary="Milvus (or Milvus Lite's server, Zilliz Cloud) collections, through the official pymilvus client",
    provider="vecmig.providers.milvus.provider:MilvusProvider",
    rules=SpecRules(
        connection_keys=("uri",),
        connection_example='connection: {uri: "${env:MILVUS_URI}", token: "${env:MILVUS_TOKEN}"} '
                           "(token and timeout optional)",
        connection_schema={
            "uri": {"$ref": "#/$defs/secret_string",
                    "description": "milvus: the server address, e.g. http://127.0.0.1:19530"},
            "token": {"$ref": "#/$defs/secret_string",
                      "description": "milvus: 'user:password' or an API key (optional)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                        "description": "milvus: seconds per request (default 60)"},
        },
        optional_keys=("token", "timeout"),
        needs_collection=True,
        collection_hint="the collection name: add `collection: <name>`",
        collection_pattern=NAME,
        collection_rule="use 1-255 letters, digits and '_', starting with a letter or '_'",
        collection_noun="Milvus collection name",
        max_dimension=MAX_DIMENSION,
        namespaces=True,  # a namespace is a partition
        indexes=True,
        shards_by_size=False,  # one shard per partition
        # vecmig's collections have fixed fields: the primary key, one FLOAT_VECTOR, a JSON
        # field "metadata"; only the text field's name may be chosen (fields.text, default "text").
        fixed_fields=("id", "vector", "metadata"),
        metadata_columns=False,
        secret_keys=("uri", "token"),
        secret_env=("MILVUS_TOKEN",),
        lint_prefix="MV",
    ),
)
