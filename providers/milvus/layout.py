"""How vecmig's records sit in a Milvus collection, and how any collection's fields are read.

Collections vecmig creates have four fields: the primary key ``id`` (INT64, or VARCHAR of
65,535 bytes for text ids), ``vector`` (FLOAT_VECTOR), a nullable VARCHAR text field (only
when records carry text; named by ``fields.text``, default ``text``), and ``metadata``, one
JSON field. JSON keeps every metadata type exactly (checked against the server): int stays
int (int64), 1.0 stays float, -0.0 stays -0.0, bool, null, strings and lists of strings;
dynamic fields would too, but a JSON field also keeps a key named like a field.

A collection made by someone else is read through its schema: the primary key, its one
FLOAT_VECTOR field (or the one named ``vector``), the text field if present, and as metadata
the JSON field ``metadata`` merged with every other scalar field and the dynamic fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.milvus.lint import MAX_VARCHAR_BYTES
from vecmig.records import Batch, RecordId
from vecmig.spec import IndexSpec

ID, VECTOR, METADATA = "id", "vector", "metadata"
METRICS = {"cosine": "COSINE", "euclidean": "L2", "dotproduct": "IP"}
METRIC_OF = {v: k for k, v in METRICS.items()}
VECTOR_TYPES = {DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR, DataType.FLOAT16_VECTOR,
                DataType.BFLOAT16_VECTOR, DataType.SPARSE_FLOAT_VECTOR, DataType.INT8_VECTOR}
SCALAR_KIND = {DataType.BOOL: "bool", DataType.INT8: "int", DataType.INT16: "int", DataType.INT32: "int",
               DataType.INT64: "int", DataType.FLOAT: "float", DataType.DOUBLE: "float",
               DataType.VARCHAR: "text", DataType.JSON: "json"}


@dataclass(frozen=True)
class Layout:
    """Where one collection keeps each part of a record."""

    pk: str
    pk_int: bool
    vector: str
    dimension: int
    text: str | None  # the VARCHAR text field, if the collection has one
    metadata: str | None  # the JSON field whose object is the record's metadata
    scalars: dict[str, str]  # other scalar fields read as metadata: name -> logical type
    dynamic: bool

    @property
    def output_fields(self) -> list[str]:
        names = [self.pk, self.vector, *([self.text] if self.text else []), *([self.metadata] if self.metadata else []),
                 *self.scalars]
        return [*names, "$meta"] if self.dynamic else names

    @property
    def every(self) -> str:
        """A filter every record matches: Milvus Lite ignores the partitions of an unfiltered count."""
        return f"{self.pk} >= {literal(-(2**63), True)}" if self.pk_int else f'{self.pk} >= ""'

    def id_filter(self, op: str, rid: RecordId) -> str:
        return f"{self.pk} {op} {literal(rid, self.pk_int)}"

    def ids_filter(self, ids: list[RecordId]) -> str:
        """``pk in [...]`` with our own literals: pymilvus' ``ids=`` sends a line break raw, which
        Milvus' parser refuses."""
        return f"{self.pk} in [{', '.join(literal(rid, self.pk_int) for rid in ids)}]"


def literal(rid: RecordId, as_int: bool) -> str:
    """A primary-key value in Milvus' expression language (strings double-quoted, escaped).
    Milvus' parser refuses a raw line break inside a string ("unterminated string literal") and
    knows no \\x or \\u escapes: line breaks go as \\n and \\r, every other character as itself."""
    if as_int:
        return str(int(rid))
    text = str(rid).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{text}"'


def read_layout(description: dict[str, Any], text_field: str | None, where: str) -> Layout:
    fields = description.get("fields") or []
    pk = next((f for f in fields if f.get("is_primary")), None)
    vectors = [f for f in fields if f["type"] == DataType.FLOAT_VECTOR]
    vector = next((f for f in vectors if f["name"] == VECTOR), vectors[0] if len(vectors) == 1 else None)
    if pk is None or vector is None:
        found = ", ".join(f["name"] for f in vectors) or "none"
        raise TerminalError(f"{where} has no single FLOAT_VECTOR field to read (found: {found})",
                            hint="name the vector field 'vector', or migrate a collection with one dense vector")
    text = text_field or "text"
    text_f = next((f for f in fields if f["name"] == text and f["type"] == DataType.VARCHAR and f is not pk), None)
    meta = next((f for f in fields if f["name"] == METADATA and f["type"] == DataType.JSON), None)
    taken = {pk["name"], vector["name"], *(f["name"] for f in (text_f, meta) if f)}
    scalars: dict[str, str] = {}
    for f in fields:
        if f["name"] in taken or f["type"] in VECTOR_TYPES or f.get("is_dynamic"):
            continue
        if f["type"] == DataType.ARRAY:
            scalars[f["name"]] = "text[]" if f.get("element_type") == DataType.VARCHAR else "json"
        else:
            scalars[f["name"]] = SCALAR_KIND.get(f["type"], "json")
    return Layout(pk=pk["name"], pk_int=pk["type"] != DataType.VARCHAR, vector=vector["name"],
                  dimension=int(vector.get("params", {}).get("dim", 0)), text=text_f["name"] if text_f else None,
                  metadata=meta["name"] if meta else None, scalars=scalars,
                  dynamic=bool(description.get("enable_dynamic_field")))


def new_schema(schema: CollectionSchema, text_field: str | None) -> Any:
    """The Milvus schema of a collection vecmig creates for ``schema``."""
    out = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="created by vecmig")
    if schema.id_type == "text":
        out.add_field(ID, DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR_BYTES)
    else:
        out.add_field(ID, DataType.INT64, is_primary=True)
    out.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=int(schema.dimension))
    if schema.text:
        out.add_field(text_field or "text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES, nullable=True)
    out.add_field(METADATA, DataType.JSON)
    return out


def to_batch(layout: Layout, rows: list[dict[str, Any]]) -> Batch:
    """Rows as pymilvus returns them, in order, as one Batch (vectors as float32 bits)."""
    vectors = (np.asarray([r[layout.vector] for r in rows], dtype=np.float32) if rows
               else np.zeros((0, layout.dimension), dtype=np.float32))
    known = {layout.pk, layout.vector, layout.text, layout.metadata}
    metadata: list[dict[str, Any]] = []
    for r in rows:
        meta = dict(r.get(layout.metadata) or {}) if layout.metadata else {}
        for key, value in r.items():
            if key not in known and key != "$meta":
                if key in meta:  # one key, two values: keeping either would drop the other silently
                    raise TerminalError(
                        f"record {r[layout.pk]!r}: metadata key '{key}' is both in the JSON field "
                        f"'{layout.metadata}' and a field (or dynamic field) of its own",
                        hint=f"rename or remove one of them in the source collection; vecmig reads both as "
                             f"metadata key '{key}'")
                meta[key] = value
        metadata.append(meta)
    texts = [r.get(layout.text) for r in rows] if layout.text else None
    return Batch(ids=[r[layout.pk] for r in rows], vectors=np.ascontiguousarray(vectors), metadata=metadata,
                 texts=texts)


def to_rows(layout: Layout, batch: Batch) -> list[dict[str, Any]]:
    """A batch as rows for ``upsert``: each metadata key into the scalar field of its name, else
    into the JSON field ``metadata``, else into a dynamic field; a key with nowhere to go raises
    :class:`TerminalError` naming the record (``check_existing_target`` says so at plan time)."""
    rows: list[dict[str, Any]] = []
    vectors = batch.vectors.astype(np.float32, copy=False).tolist()  # float32 values, exact as doubles
    simple = not layout.scalars and layout.metadata is not None  # vecmig's own collections
    for i, (rid, meta) in enumerate(zip(batch.ids, batch.metadata, strict=True)):
        row: dict[str, Any] = {layout.pk: rid, layout.vector: vectors[i]}
        if layout.text:
            row[layout.text] = batch.texts[i] if batch.texts is not None else None
        if simple:
            row[str(layout.metadata)] = meta
        else:
            rest: dict[str, Any] = {}
            for key, value in meta.items():
                if key in layout.scalars:
                    row[key] = value
                elif layout.metadata is not None or layout.dynamic:
                    rest[key] = value
                else:
                    raise TerminalError(f"record {rid!r}: metadata field '{key}' has no field in the Milvus "
                                        "collection (no JSON field 'metadata', no dynamic fields)",
                                        hint="add the field, or drop/rename it in mapping")
            if layout.metadata is not None:
                row[layout.metadata] = rest
            else:
                row.update(rest)
        rows.append(row)
    return rows


def index_params(index: IndexSpec) -> tuple[str, dict[str, Any]]:
    """The spec's index as Milvus' index type and build params."""
    if index.type == "hnsw":
        return "HNSW", {"M": index.m, "efConstruction": index.ef_construction}
    if index.type == "ivfflat":
        return "IVF_FLAT", {"nlist": index.lists}
    return "FLAT", {}


_DESCRIBED = ("index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows",
              "pending_index_rows", "state")


def index_info(name: str, desc: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``describe_index``'s answer as the inventory's index (type as vecmig names it: hnsw,
    ivfflat, flat, else Milvus' own in lowercase; build params; metric) and vecmig's metric."""
    raw = str(desc.get("index_type", ""))
    kind = {"HNSW": "hnsw", "IVF_FLAT": "ivfflat", "FLAT": "flat"}.get(raw, raw.lower())
    params = {k: v for k, v in desc.items() if k not in _DESCRIBED}
    metric = METRIC_OF.get(str(desc.get("metric_type", "")).upper())
    return {"name": name, "type": kind, "params": params, "metric_type": desc.get("metric_type")}, metric


