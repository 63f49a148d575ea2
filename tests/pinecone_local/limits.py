"""Pinecone's documented hard limits, and the request validation that enforces them.

Messages copy the server's wording where it is known (quoted in Pinecone's docs,
its SDKs, or error reports), so code that matches on them behaves the same here.
Every check runs before anything is written: a rejected request never
half-applies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.pinecone_local.errors import bad_request

MAX_UPSERT_BATCH = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# The gateway's own frame limit: a body past it never reaches the 2 MB check.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_LENGTH = 512
MAX_FETCH_IDS = 1000
MAX_DELETE_IDS = 1000
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 100
MAX_DIMENSION = 20_000
MAX_SPARSE_NNZ_HYBRID = 1000
MAX_SPARSE_NNZ_SPARSE_INDEX = 2048
MAX_SPARSE_INDEX = 2**32 - 1
MAX_INDEX_NAME_LENGTH = 45
MAX_TAGS = 20
MAX_TAG_KEY_LENGTH = 80
MAX_TAG_VALUE_LENGTH = 120
METRICS = ("cosine", "euclidean", "dotproduct")
CLOUDS = ("aws", "gcp", "azure")

_INDEX_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_NUMBER_TYPES = frozenset({int, float})
# The server quotes at most this many UTF-8 bytes of a rejected metadata value.
_METADATA_DISPLAY_BYTES = 16


@dataclass
class ParsedVector:
    id: str
    values: np.ndarray | None
    sparse_indices: np.ndarray | None
    sparse_values: np.ndarray | None
    metadata: dict[str, Any] | None


def request_size_message(size: int) -> str:
    # Pinecone rounds the size up to whole MB in this message.
    mb = math.ceil(size / (1024 * 1024))
    return f"Request size {mb}MB exceeds the maximum supported size of 2MB"


def validate_index_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise bad_request("Index name is required and must be a non-empty string")
    if len(name) > MAX_INDEX_NAME_LENGTH or not _INDEX_NAME_RE.match(name):
        raise bad_request(
            f"Invalid index name {name!r}: name must consist of lower case alphanumeric "
            "characters or '-', start and end with an alphanumeric character, and be "
            f"{MAX_INDEX_NAME_LENGTH} characters or less"
        )
    return name


def validate_dimension(dimension: Any) -> int:
    if isinstance(dimension, bool) or not isinstance(dimension, int):
        raise bad_request("dimension must be an integer")
    if not 1 <= dimension <= MAX_DIMENSION:
        raise bad_request(f"Invalid dimension {dimension}: dimension must be between 1 and {MAX_DIMENSION}")
    return dimension


def validate_metric(metric: Any) -> str:
    if metric not in METRICS:
        raise bad_request(f"Invalid metric {metric!r}: must be one of {', '.join(METRICS)}")
    return str(metric)


def validate_deletion_protection(value: Any) -> str:
    if value not in ("enabled", "disabled"):
        raise bad_request(f"Invalid deletion_protection {value!r}: must be 'enabled' or 'disabled'")
    return str(value)


def validate_tags(tags: Any, *, allow_empty_values: bool) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise bad_request("tags must be an object of string keys to string values")
    if len(tags) > MAX_TAGS:
        raise bad_request(f"tags exceeded the maximum of {MAX_TAGS}. Got {len(tags)} tags.")
    for key, value in tags.items():
        if not isinstance(value, str):
            raise bad_request(f"Tag value for key {key!r} must be a string")
        if not key or len(key) > MAX_TAG_KEY_LENGTH or not _TAG_KEY_RE.match(key):
            raise bad_request(
                f"Invalid tag key {key!r}: keys must be 1-{MAX_TAG_KEY_LENGTH} alphanumeric characters, '_' or '-'"
            )
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise bad_request(f"Tag value for key {key!r} exceeds the {MAX_TAG_VALUE_LENGTH}-character limit")
        if not value and not allow_empty_values:
            raise bad_request(f"Tag value for key {key!r} must not be empty")
    return dict(tags)


def validate_vector_id(value: Any, what: str = "Vector ID") -> str:
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string")
    if not value:
        raise bad_request(f"{what} must not be empty; vector IDs are 1-{MAX_ID_LENGTH} characters")
    if not value.isascii():
        raise bad_request(f"{what} must contain only ASCII characters, got: {value[:64]!r}")
    if len(value) > MAX_ID_LENGTH:
        raise bad_request(f"{what} exceeds the maximum length of {MAX_ID_LENGTH} characters, got {len(value)}")
    if "\x00" in value:
        raise bad_request(f"{what} must not contain null characters")
    return value


def parse_dense(raw: Any, dimension: int, *, what: str = "Vector") -> np.ndarray:
    if not isinstance(raw, list):
        raise bad_request(f"{what} values must be a list of numbers")
    if len(raw) != dimension:
        raise bad_request(f"{what} dimension {len(raw)} does not match the dimension of the index {dimension}")
    # json.loads only yields these exact types, so a set of types is a cheap
    # whole-list check (bool must fail even though it subclasses int).
    if not set(map(type, raw)) <= _NUMBER_TYPES:
        bad = next(item for item in raw if type(item) not in _NUMBER_TYPES)
        raise bad_request(f"{what} values must be numbers, got {bad!r}")
    # Stored as float32 because that is Pinecone's storage type: values come
    # back rounded to the nearest float32, exactly as from the real service.
    with np.errstate(over="ignore"):
        arr = np.asarray(raw, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise bad_request(f"{what} values must be finite numbers (no NaN or Infinity)")
    return arr


def parse_sparse(raw: Any, max_nnz: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(raw, dict):
        raise bad_request("sparseValues must be an object with 'indices' and 'values'")
    indices = raw.get("indices")
    values = raw.get("values")
    if not isinstance(indices, list) or not isinstance(values, list):
        raise bad_request("sparseValues must contain 'indices' and 'values' lists")
    if len(indices) != len(values):
        raise bad_request(
            f"Sparse vector indices and values must have the same length, got "
            f"{len(indices)} indices and {len(values)} values"
        )
    if not indices:
        raise bad_request("Sparse vector must contain at least one non-zero value")
    if len(indices) > max_nnz:
        raise bad_request(f"Sparse vector size {len(indices)} exceeds the maximum size of {max_nnz}")
    for idx in indices:
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= MAX_SPARSE_INDEX:
            raise bad_request(f"Sparse vector indices must be integers in [0, 2^32), got {idx!r}")
    if len(set(indices)) != len(indices):
        raise bad_request("Sparse vector indices must be unique")
    for val in values:
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise bad_request(f"Sparse vector values must be numbers, got {val!r}")
    vals = np.asarray(values, dtype=np.float32)
    if not np.isfinite(vals).all():
        raise bad_request("Sparse vector values must be finite numbers (no NaN or Infinity)")
    return np.asarray(indices, dtype=np.int64), vals


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, dict):
            return {k: _numbers_as_floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [_numbers_as_floats(v) for v in value]
        return value
    return float(value)


def _render_rejected_value(value: Any) -> str:
    # Mirrors the server's rendering (the SDK reproduces it byte for byte in
    # pinecone/_internal/vector_factory.py): compact JSON, numbers as doubles,
    # cut to 16 UTF-8 bytes with "...".
    rendered = json.dumps(_numbers_as_floats(value), separators=(",", ":"), ensure_ascii=False)
    encoded = rendered.encode("utf-8")
    if len(encoded) > _METADATA_DISPLAY_BYTES:
        return encoded[:_METADATA_DISPLAY_BYTES].decode("utf-8", "ignore") + "..."
    return rendered


def normalize_metadata(raw: Any, *, null_metadata: str) -> dict[str, Any] | None:
    """Validate one record's metadata and return it the way Pinecone stores it.

    Pinecone keeps metadata in a protobuf ``Struct``, whose only number type is
    a double, so integers come back as floats (``2020`` -> ``2020.0``). Null
    values are stripped on write (the SDK documents this as the server's
    ``NullHandling::Strip``); ``null_metadata="reject"`` turns them into a 400
    instead, for callers who want the stricter, older documented rule.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("Metadata must be a JSON object")
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise bad_request(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )
    out: dict[str, Any] = {}
    for field, value in raw.items():
        if value is None:
            if null_metadata == "reject":
                raise bad_request(f"Metadata value for field '{field}' must not be null")
            continue
        if isinstance(value, (bool, str)):
            out[field] = value
        elif isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise bad_request(f"Metadata value for field '{field}' must be a finite number")
            out[field] = float(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            out[field] = list(value)
        else:
            raise bad_request(
                "Metadata value must be a string, number, boolean or list of strings, "
                f"got '{_render_rejected_value(value)}' for field '{field}'"
            )
    return out


def parse_upsert_vectors(
    body: Any,
    *,
    dimension: int | None,
    has_sparse: bool,
    null_metadata: str,
) -> list[ParsedVector]:
    """Validate a whole upsert body; raises before returning anything on the first violation."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    vectors = body.get("vectors")
    if not isinstance(vectors, list):
        raise bad_request("vectors is required and must be a list")
    if not vectors:
        raise bad_request("Must provide at least one vector to upsert")
    if len(vectors) > MAX_UPSERT_BATCH:
        raise bad_request(
            f"Upsert request contains {len(vectors)} vectors, which exceeds the maximum "
            f"of {MAX_UPSERT_BATCH} vectors per request"
        )
    sparse_only = dimension is None
    max_nnz = MAX_SPARSE_NNZ_SPARSE_INDEX if sparse_only else MAX_SPARSE_NNZ_HYBRID
    parsed: list[ParsedVector] = []
    for item in vectors:
        if not isinstance(item, dict):
            raise bad_request("Each vector must be a JSON object")
        vid = validate_vector_id(item.get("id"))
        raw_values = item.get("values")
        raw_sparse = item.get("sparseValues", item.get("sparse_values"))
        values: np.ndarray | None = None
        if sparse_only:
            if raw_values:
                raise bad_request(f"Vector {vid!r} has dense values, but the index has no dense vector field")
        else:
            if not raw_values:
                raise bad_request(f"Vector {vid!r} is missing dense values")
            assert dimension is not None
            values = parse_dense(raw_values, dimension, what="Vector")
            if not values.any():
                raise bad_request("Dense vectors must contain at least one non-zero value")
        sparse_indices: np.ndarray | None = None
        sparse_values: np.ndarray | None = None
        if raw_sparse is not None:
            if not has_sparse:
                raise bad_request(
                    "Sparse vector values are not supported by this index: its schema "
                    "declares no sparse_vector field. Create the index with a "
                    "'_sparse_values' sparse_vector field to store sparse-dense vectors."
                )
            sparse_indices, sparse_values = parse_sparse(raw_sparse, max_nnz)
        elif sparse_only:
            raise bad_request(f"Vector {vid!r} is missing sparse values")
        metadata = normalize_metadata(item.get("metadata"), null_metadata=null_metadata)
        parsed.append(ParsedVector(vid, values, sparse_indices, sparse_values, metadata))
    return parsed
