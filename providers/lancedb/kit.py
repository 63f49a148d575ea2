"""LanceDB as the spec loader sees it (lancedb is not imported here: spec loading imports every kit)."""

from __future__ import annotations

import re

from vecmig.providers.kit import ProviderKit, SpecRules

KIT = ProviderKit(
    name="lancedb",
    summary="LanceDB (embedded): a directory of Lance tables, vectors as fixed-size float32 lists",
    provider="vecmig.providers.lancedb.provider:LanceDBProvider",
    rules=SpecRules(
        connection_keys=("path",),
        connection_example="connection: {path: ./lancedb}",
        connection_schema={
            "path": {"$ref": "#/$defs/nonempty_string",
                     "description": "lancedb: the database directory (relative to the spec); a collection is a table"},
            "metric": {"enum": ["cosine", "euclidean", "dotproduct"],
                       "description": "lancedb: the metric readers search a table by when the table records none "
                                      "(neither vecmig's schema mark nor a vector index): used by queries"},
        },
        optional_keys=("metric",),
        needs_collection=True,
        collection_hint="the table name: add `collection: <table>`",
        # LanceDB's own rule for table names (it refuses others with a less helpful message).
        collection_pattern=re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$"),
        collection_rule="use letters, digits, underscores, hyphens and periods (not a leading period)",
        collection_noun="table name",
        indexes=True,
        # No aliases: for blue-green, readers follow a pointer file or command to the live table.
        pointer_only=True,
        paths={"path": ("dir", "{role} LanceDB directory")},
        lint_prefix="LD",
    ),
)
