"""``VDF_META.json``, the index of a vector-io (``vdf-io``) directory, as vdf-io 0.1.248 writes it.

vdf-io's pydantic models (``vdf_io/meta_types.py``)::

    VDFMeta:       version, file_structure[str], author, exported_from,
                   indexes{index name: [NamespaceMeta]}, exported_at, id_column (optional)
    NamespaceMeta: namespace, index_name, total_vector_count, exported_vector_count, dimensions,
                   model_name?, model_map?, vector_columns (default ["vector"]), data_path,
                   metric?, index_config?, schema_dict_str?

``data_path`` is relative to the directory; the importers read every ``*.parquet`` under it
(``os.walk``). The id column is ``id_column`` or ``"id"``; the first of ``vector_columns`` is
the vector; every other column is metadata. Metrics are qdrant's ``Distance`` names.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vecmig import safe_paths
from vecmig.durable import atomic_write
from vecmig.errors import TerminalError

META = "VDF_META.json"
FORMAT_VERSION = "0.1.248"  # the vdf-io release whose format this follows
DEFAULT_ID = "id"
STAGING = ".vecmig"  # vecmig's unmerged writes, beside the data folders (never inside one)
# vecmig's metric names <-> qdrant's Distance values, which vdf-io standardises on.
TO_VDF = {"cosine": "Cosine", "euclidean": "Euclid", "dotproduct": "Dot"}
FROM_VDF = {v: k for k, v in TO_VDF.items()}
_NAMESPACE_KEYS = {"namespace": str, "index_name": str, "total_vector_count": int, "exported_vector_count": int,
                   "dimensions": int, "data_path": str}


def read(directory: Path) -> dict[str, Any] | None:
    """The directory's meta, checked for what vecmig relies on; None when there is none."""
    path = directory / META
    if not path.exists():
        return None
    raw = safe_paths.read_bytes(path, "VDF meta file", 64 << 20, error=TerminalError)
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise TerminalError(f"{path} is not valid JSON ({exc})", hint="fix or remove the file") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("indexes"), dict):
        raise TerminalError(f"{path} has no 'indexes' object", hint="a VDF_META.json maps index names to namespaces")
    for index, namespaces in meta["indexes"].items():
        if not isinstance(namespaces, list):
            raise TerminalError(f"{path}: /indexes/{index} must be a list of namespaces", hint="fix the file")
        for i, ns in enumerate(namespaces):
            where = f"{path}: /indexes/{index}/{i}"
            if not isinstance(ns, dict):
                raise TerminalError(f"{where} must be an object", hint="fix the file")
            for key, kind in _NAMESPACE_KEYS.items():
                if not isinstance(ns.get(key), kind) or isinstance(ns.get(key), bool):
                    raise TerminalError(f"{where}/{key} must be {'a string' if kind is str else 'an integer'}",
                                        hint="fix the file (vdf-io's NamespaceMeta requires it)")
            columns = ns.get("vector_columns", ["vector"])
            if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
                raise TerminalError(f"{where}/vector_columns must be a non-empty list of names", hint="fix the file")
    id_column = meta.get("id_column")
    if id_column is not None and not isinstance(id_column, str):
        raise TerminalError(f"{path}: /id_column must be a string", hint="fix the file")
    return meta


def find(meta: Mapping[str, Any] | None, index: str, namespace: str | None) -> dict[str, Any] | None:
    """The namespace entry of ``index``: ``namespace``, else the default one ("", or the only one)."""
    if meta is None or index not in meta["indexes"]:
        return None
    entries: list[dict[str, Any]] = meta["indexes"][index]
    if namespace is not None:
        return next((e for e in entries if e["namespace"] == namespace), None)
    if len(entries) == 1:
        return entries[0]
    default = next((e for e in entries if e["namespace"] == ""), None)
    if default is None and entries:
        names = ", ".join(repr(e["namespace"]) for e in entries)
        raise TerminalError(f"VDF index '{index}' has namespaces {names} and none is the default ''",
                            hint="choose one with `namespace: <name>` beside `collection`")
    return default


def data_dir(directory: Path, entry: Mapping[str, Any]) -> Path:
    """Where the entry's Parquet files are; refuses a ``data_path`` that leaves the directory."""
    root = directory.resolve()
    found = (root / str(entry["data_path"])).resolve()
    if found != root and root not in found.parents:
        raise TerminalError(f"{directory / META}: data_path {entry['data_path']!r} of index "
                            f"'{entry['index_name']}' lies outside the VDF directory",
                            hint="data_path must be relative to the directory that holds VDF_META.json")
    return found


def parquet_files(folder: Path) -> list[Path]:
    """Every ``*.parquet`` under ``folder`` (or ``folder`` itself), as vdf-io's importers find them,
    in a fixed order (vdf-io takes ``os.walk``'s)."""
    if folder.is_file():
        return [folder] if folder.name.endswith(".parquet") else []
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != STAGING)
        found.extend(Path(root) / f for f in sorted(files) if f.endswith(".parquet"))
    return found


def entry(index: str, namespace: str, *, count: int, dimension: int, vector: str, data_path: str,
          metric: str | None, schema: str | None) -> dict[str, Any]:
    """A NamespaceMeta as vdf-io's ``model_dump`` writes it (every key, in its order)."""
    return {
        "namespace": namespace,
        "index_name": index,
        "total_vector_count": count,
        "exported_vector_count": count,
        "dimensions": dimension,
        "model_name": None,
        "model_map": None,
        "vector_columns": [vector],
        "data_path": data_path,
        "metric": TO_VDF.get(metric or ""),
        "index_config": None,
        "schema_dict_str": schema,
    }


def write(directory: Path, meta: dict[str, Any] | None, index: str, namespace: str,
          new: dict[str, Any] | None, id_column: str) -> None:
    """Replace (``new`` None: remove) the entry of ``index``/``namespace``, keeping every other one.
    The file goes when no index is left."""
    meta = dict(meta or {})
    indexes = {k: list(v) for k, v in (meta.get("indexes") or {}).items()}
    kept = [e for e in indexes.get(index, []) if e["namespace"] != namespace]
    if new is not None:
        kept.append(new)
        kept.sort(key=lambda e: str(e["namespace"]))
    if kept:
        indexes[index] = kept
    else:
        indexes.pop(index, None)
    path = directory / META
    if not indexes:
        path.unlink(missing_ok=True)
        return
    files = sorted(
        str(p.relative_to(directory))
        for entries in indexes.values() for e in entries for p in parquet_files(data_dir(directory, e))
    )
    old_id = meta.get("id_column")
    if old_id is not None and old_id != id_column and len(indexes) > 1:
        raise TerminalError(f"{path}: the directory's id column is '{old_id}', this index's is '{id_column}'",
                            hint="VDF keeps one id column per directory: set fields.id to it, or use another directory")
    doc = {
        "version": meta.get("version", FORMAT_VERSION),
        "file_structure": [*files, META],
        "author": meta.get("author", "vecmig"),
        "exported_from": meta.get("exported_from", "vecmig"),
        "indexes": indexes,
        "exported_at": _dt.datetime.now().astimezone().isoformat(),
        "id_column": id_column,
    }
    directory.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(doc, indent=4, ensure_ascii=False).encode()
    atomic_write(path, lambda tmp: tmp.write_bytes(blob))
