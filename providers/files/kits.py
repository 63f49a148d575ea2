"""The file stores as the spec loader sees them (pyarrow is not imported here)."""

from __future__ import annotations

from vecmig.providers.kit import ProviderKit, SpecRules

# A file records no metric; queries of it (validate.queries, parallel-run) use the declared one.
METRIC_SCHEMA = {
    "metric": {"enum": ["cosine", "euclidean", "dotproduct"],
               "description": "files: the metric the file's readers search it by (queries use it)"},
}

_FILE = {"path": ("file", "{role} file")}
_PATH = {"path": {"$ref": "#/$defs/nonempty_string", "description": "the file (relative to the spec)"},
         **METRIC_SCHEMA}

JSONL = ProviderKit(
    name="jsonl",
    summary="a JSON Lines file, one record a line",
    provider="vecmig.providers.files.jsonl:JsonlProvider",
    rules=SpecRules(("path",), "connection: {path: data.jsonl}", connection_schema=_PATH,
                    paths=_FILE, keeps_metric=False, optional_keys=("metric",)),
)
PARQUET = ProviderKit(
    name="parquet",
    summary="a Parquet file, vectors as fixed-size float32 lists",
    provider="vecmig.providers.files.parquet:ParquetProvider",
    rules=SpecRules(("path",), "connection: {path: data.parquet}", connection_schema=_PATH,
                    paths=_FILE, keeps_metric=False, optional_keys=("metric",)),
)
CSV = ProviderKit(
    name="csv",
    summary="a CSV file: header row, JSON-array vectors, one typed column per metadata key",
    provider="vecmig.providers.files.csvfile:CsvProvider",
    rules=SpecRules(("path",), "connection: {path: data.csv}", connection_schema=_PATH,
                    paths=_FILE, keeps_metric=False, optional_keys=("metric",)),
)
VDF = ProviderKit(
    name="vdf",
    summary="a vector-io VDF directory: VDF_META.json plus Parquet files per index and namespace",
    provider="vecmig.providers.files.vdf:VdfProvider",
    rules=SpecRules(("path",), "connection: {path: vdf_dir}, collection: <index name>",
                    connection_schema={"path": {"$ref": "#/$defs/nonempty_string",
                                                "description": "the VDF directory (relative to the spec)"},
                                       **METRIC_SCHEMA},
                    optional_keys=("metric",),
                    paths={"path": ("dir", "{role} VDF directory")}, needs_collection=True, namespaces=True,
                    collection_hint="the index name inside the VDF directory: add `collection: <index>`"),
)
