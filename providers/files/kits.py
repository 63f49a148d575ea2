"""The file stores as the spec loader sees them (pyarrow is not imported here)."""

from __future__ import annotations

from vecmig.providers.kit import ProviderKit, SpecRules

_FILE = {"path": ("file", "{role} file")}
_PATH = {"path": {"$ref": "#/$defs/nonempty_string", "description": "the file (relative to the spec)"}}

JSONL = ProviderKit(
    name="jsonl",
    summary="a JSON Lines file, one record a line",
    provider="vecmig.providers.files.jsonl:JsonlProvider",
    rules=SpecRules(("path",), "connection: {path: data.jsonl}", connection_schema=_PATH,
                    paths=_FILE, keeps_metric=False),
)
PARQUET = ProviderKit(
    name="parquet",
    summary="a Parquet file, vectors as fixed-size float32 lists",
    provider="vecmig.providers.files.parquet:ParquetProvider",
    rules=SpecRules(("path",), "connection: {path: data.parquet}", connection_schema=_PATH,
                    paths=_FILE, keeps_metric=False),
)
