"""The Chroma store as the spec loader sees it (chromadb is not imported here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vecmig.providers.kit import ProviderKit, SpecRules

# What chromadb 1.5.9 accepts as a collection name.
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")


def _port_needs_host(store: Mapping[str, Any], pointer: str) -> tuple[str, str, str] | None:
    conn = store.get("connection") or {}
    if "port" in conn and "path" in conn:
        return (f"{pointer}/connection/port goes with host, not with path (a local persistent store)",
                f"{pointer}/connection/port", "drop port, or connect to a server with `host` and `port`")
    return None


KIT = ProviderKit(
    name="chroma",
    summary="Chroma collections: a `chroma run` server (host, port) or a local persistent directory (path)",
    provider="vecmig.providers.chroma.provider:ChromaProvider",
    rules=SpecRules(
        connection_keys=("host", "path"),
        connection_example="connection: {host: localhost, port: 8000} or connection: {path: ./chroma-data}",
        connection_schema={
            "host": {"$ref": "#/$defs/nonempty_string",
                     "description": "chroma: the host of a `chroma run` server"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                     "description": "chroma: the server's port (default 8000)"},
            "path": {"$ref": "#/$defs/nonempty_string",
                     "description": "chroma: directory of a local persistent store (PersistentClient)"},
        },
        optional_keys=("port",),
        connection_exclusive_hint="host connects to a `chroma run` server; path opens a local store: keep one",
        needs_collection=True,
        collection_hint="the collection name: add `collection: <name>`",
        collection_pattern=COLLECTION_NAME,
        collection_rule="use 3-512 letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        collection_noun="Chroma collection name",
        fixed_fields=("id", "vector"),
        metadata_columns=False,
        paths={"path": ("dir", "Chroma persistent directory")},
        lint_prefix="CH",
        checks=(_port_needs_host,),
    ),
)
