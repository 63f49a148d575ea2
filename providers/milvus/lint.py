"""Milvus' limits on records, checked on the plan's sample (findings) and on every upserted
record (a :class:`TerminalError` naming the record): what Milvus would refuse or change.

Codes are stable (policies name them):

* MV001 the dimension is over Milvus' 32,768 for FLOAT_VECTOR
* MV002 a string id is longer than a VARCHAR primary key holds (65,535 bytes of UTF-8)
* MV003 an integer id does not fit INT64 (Milvus' integer primary key)
* MV004 a text is longer than the VARCHAR text field holds (65,535 bytes of UTF-8)
* MV005 a record's metadata is larger than a JSON field holds (65,536 bytes as JSON)
* MV006 a metadata integer does not fit int64 (Milvus' JSON keeps integers as int64)
* MV007 a vector value is NaN or infinite (Milvus would store it; distances become NaN)
* MV008 a float metadata value is NaN or infinite (JSON has no such number)

(Sparse values, which vecmig's Milvus collections do not hold, are the engine's VM104.)
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from vecmig.model import Inventory
from vecmig.providers.base import LintFinding
from vecmig.providers.milvus.kit import MAX_DIMENSION
from vecmig.records import Batch, RecordId

MAX_VARCHAR_BYTES = 65_535  # VARCHAR max_length, primary key or not
MAX_JSON_BYTES = 65_536  # proxy.maxJSONSize's default... per JSON value
INT64 = (-(2**63), 2**63 - 1)

HINTS = {
    "MV001": "reduce the dimension (Milvus' FLOAT_VECTOR holds at most 32,768)",
    "MV002": "shorten the id, or map ids to shorter keys before migrating",
    "MV003": "use ids within int64, or text ids (target.create.id_type: text)",
    "MV004": "shorten the text, or move it out of the record",
    "MV005": "shrink the record's metadata under 64 KiB of JSON",
    "MV006": "store such numbers as strings in the source",
    "MV007": "fix or drop the record in the source: its vector has NaN or infinite values",
    "MV008": "replace NaN/Infinity by null or a string in the source",
}


def _bad_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]


def _metadata_problem(value: Any) -> str | None:
    """MV006 / MV008 for a metadata value (nested lists and objects included), else None."""
    if _bad_int(value):
        return "MV006"
    if isinstance(value, float) and not math.isfinite(value):
        return "MV008"
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _metadata_problem(item)
            if found:
                return found
    return None


def metadata_json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=True)


def record_problem(rid: RecordId, vector: np.ndarray, metadata: dict[str, Any], text: str | None) \
        -> tuple[str, str] | None:
    """The first limit a record breaks: ``(code, what)``, or None."""
    # A string of n characters is at most 4n bytes of UTF-8: only long ones are encoded.
    if isinstance(rid, str) and len(rid) * 4 > MAX_VARCHAR_BYTES and len(rid.encode()) > MAX_VARCHAR_BYTES:
        return "MV002", f"its id is {len(rid.encode()):,} bytes (at most {MAX_VARCHAR_BYTES:,})"
    if _bad_int(rid):
        return "MV003", "its id does not fit int64"
    if vector.size and not np.isfinite(vector).all():
        return "MV007", "its vector has NaN or infinite values"
    if text is not None and len(text) * 4 > MAX_VARCHAR_BYTES and len(text.encode()) > MAX_VARCHAR_BYTES:
        return "MV004", f"its text is {len(text.encode()):,} bytes (at most {MAX_VARCHAR_BYTES:,})"
    for key, value in metadata.items():
        code = _metadata_problem(value)
        if code == "MV006":
            return code, f"metadata '{key}' holds an integer outside int64"
        if code == "MV008":
            return code, f"metadata '{key}' holds NaN or an infinity"
    size = len(metadata_json(metadata).encode())
    if size > MAX_JSON_BYTES:
        return "MV005", f"its metadata is {size:,} bytes as JSON (at most {MAX_JSON_BYTES:,})"
    return None


def batch_findings(sample: Batch, dimension: int) -> list[LintFinding]:
    """Plan-time findings: one per code, naming the first record and how many break it."""
    found: dict[str, tuple[RecordId, str, int]] = {}
    if dimension > MAX_DIMENSION:
        found["MV001"] = ("", f"the dimension is {dimension:,} (Milvus holds at most {MAX_DIMENSION:,})", 0)
    for rid, vector, metadata, text in sample.rows():
        problem = record_problem(rid, vector, metadata, text)
        if problem is None:
            continue
        code, what = problem
        first, first_what, n = found.get(code, (rid, what, 0))
        found[code] = (first, first_what, n + 1)
    out = []
    for code, (rid, what, n) in sorted(found.items()):
        message = what if not n else f"record {rid!r}: {what}" + (f" ({n} sampled records break it)" if n > 1 else "")
        out.append(LintFinding(code=code, severity="error", message=message, hint=HINTS[code]))
    return out


def existing_target_findings(inventory: Inventory, sample: Batch, role: str) -> list[LintFinding]:
    """What an existing collection cannot hold, in the engine's codes for existing targets:
    ids of the other key type (VM144), text without a text field (VM141), metadata fields with
    no field to go to (VM140)."""
    name, extra = inventory.collection, inventory.extra
    out: list[LintFinding] = []
    pk_int = inventory.id_type == "int"
    other = next((rid for rid in sample.ids if isinstance(rid, int) != pk_int), None)
    if other is not None:
        out.append(LintFinding(
            "VM144", "error", f"record id {other!r} cannot be stored in the {'INT64' if pk_int else 'VARCHAR'} "
            f"primary key '{extra.get('pk')}' of Milvus collection '{name}'",
            "migrate into a new collection (target.create.id_type), or map the ids first"))
    if not inventory.has_text and sample.texts is not None and any(t is not None for t in sample.texts):
        out.append(LintFinding("VM141", "error", f"records carry text but Milvus collection '{name}' has no "
                               "VARCHAR text field", f"set {role}.fields.text to the field that should hold it"))
    if not extra.get("metadata_field") and not extra.get("dynamic"):
        keys = {k for m in sample.metadata for k in m}
        unknown = sorted(keys - set(extra.get("scalars") or []))
        if unknown:
            out.append(LintFinding(
                "VM140", "error", f"metadata field(s) {', '.join(unknown)} have no field in Milvus collection "
                f"'{name}' (no JSON field 'metadata', no dynamic fields)",
                "add the fields, drop/rename them in mapping, or migrate into a new collection"))
    return out
