"""The file providers' shared machinery under its old name: every name re-exported from the
modules it was cut into, so existing imports keep working.

* :mod:`~vecmig.providers.files.fields`: field names and metadata type inference;
* :mod:`~vecmig.providers.files.jsonio`: exact JSON parsing and compact float32 output;
* :mod:`vecmig.durable`: fsync, temporary siblings, the one atomic write;
* :mod:`~vecmig.providers.files.staging`: parts, tombstones and the manifest;
* :mod:`~vecmig.providers.files.base`: the ``FileProvider`` skeleton and its merge (its
  docstring describes how a file target survives ``SIGKILL``);
* :mod:`~vecmig.providers.files.idindex`: random access for ``fetch()``.
"""

from __future__ import annotations

from vecmig.durable import atomic_write, fsync_path, remove_tmp_leftovers, tmp_sibling
from vecmig.providers.files.base import FileProvider, Keep
from vecmig.providers.files.fields import (
    TYPE_SAMPLE,
    FileFields,
    TypeSampler,
    check_record_id,
    combine_kinds,
    dict_columns,
    resolve_fields,
    value_kind,
)
from vecmig.providers.files.idindex import IdIndex, file_stamp, line_number
from vecmig.providers.files.jsonio import DuplicateKey, dumps, float32_for_json, json_default, loads, loads_record
from vecmig.providers.files.staging import TOMB_SUFFIX, PartKind, Source, Staging, read_tombstone

__all__ = [
    "TOMB_SUFFIX",
    "TYPE_SAMPLE",
    "DuplicateKey",
    "FileFields",
    "FileProvider",
    "IdIndex",
    "Keep",
    "PartKind",
    "Source",
    "Staging",
    "TypeSampler",
    "atomic_write",
    "check_record_id",
    "combine_kinds",
    "dict_columns",
    "dumps",
    "file_stamp",
    "float32_for_json",
    "fsync_path",
    "json_default",
    "line_number",
    "loads",
    "loads_record",
    "read_tombstone",
    "remove_tmp_leftovers",
    "resolve_fields",
    "tmp_sibling",
    "value_kind",
]
