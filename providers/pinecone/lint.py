"""Pinecone's per-record rules, as pre-flight lint findings and as the checks ``upsert`` enforces.

One set of rules serves two callers. ``lint_sample`` runs them over a sample at plan time
and returns findings with stable codes, so a reviewer sees "3 records have nested metadata"
before anything is written. ``prepare_record`` runs the same rules on every record during
``upsert``: a record that Pinecone would reject (or silently alter) raises a
:class:`TerminalError` naming its id, because a batch of 1000 refused with one 400 is much
harder to act on than "record 'doc-17': metadata field 'a' is a nested object".

Codes are stable: new rules get new numbers, retired numbers are never reused.

| code  | severity | rule |
|-------|----------|------|
| PC001 | error    | metadata (including the text) is over 40 KB per record |
| PC002 | warning  | a metadata value is null: it is dropped (Pinecone keeps no nulls) |
| PC003 | error    | a metadata value is a nested object |
| PC004 | error    | a metadata list holds something other than strings |
| PC005 | error    | a metadata value has a type Pinecone cannot store (incl. NaN/Infinity) |
| PC006 | error    | the id is longer than 512 characters |
| PC007 | error    | the id is empty, non-ASCII or contains a NUL |
| PC008 | error    | the dimension is outside 1..20000 |
| PC009 | error    | sparse values with a metric other than dotproduct |
| PC010 | error    | the dense vector is all zeros (Pinecone refuses it) |
| PC011 | error    | the dense vector holds NaN or Infinity |
| PC012 | error    | the record text collides with a metadata key of the same name |
| PC013 | error    | the sparse values are malformed (lengths, indices, over 1000 non-zeros) |
| PC014 | error    | an integer is beyond 2**53: Pinecone stores numbers as doubles and would change it |
| PC015 | info     | integer ids are stored as strings (fetch maps them back) |
| PC016 | error    | a metadata string (or key) holds a lone surrogate: not Unicode, cannot be sent as UTF-8 |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from vecmig.records import Batch, RecordId

MAX_METADATA_BYTES = 40 * 1024
MAX_ID_LENGTH = 512
MAX_DIMENSION = 20_000
MAX_SPARSE_NNZ = 1000  # per record on a dense+sparse (hybrid) index
MAX_SPARSE_INDEX = 2**32 - 1
# A double holds every integer up to 2**53 exactly; past it Pinecone would round the value.
MAX_SAFE_INT = 2**53

Severity = Literal["error", "warning", "info"]
NestedPolicy = Literal["error", "json"]

RULES: dict[str, tuple[Severity, str]] = {
    "PC001": ("error", "shorten or drop large metadata fields (mapping.metadata.drop), or move the text elsewhere"),
    "PC002": ("warning", "nothing to do: null and absent are the same in Pinecone and in vecmig checksums"),
    "PC003": ("error", "flatten the object (mapping), or let vecmig store it as a JSON string (nested_metadata: json)"),
    "PC004": ("error", "Pinecone lists hold strings only: convert the items to strings or drop the field"),
    "PC005": ("error", "map the field to a string, number, boolean or list of strings, or drop it"),
    "PC006": ("error", "Pinecone ids are at most 512 characters: shorten or hash the ids"),
    "PC007": ("error", "Pinecone ids are 1-512 printable ASCII characters: transliterate or hash the ids"),
    "PC008": ("error", "Pinecone dense indexes take 1 to 20000 dimensions"),
    "PC009": ("error", "sparse-dense records need an index with metric dotproduct"),
    "PC010": ("error", "Pinecone refuses all-zero dense vectors: drop or re-embed these records"),
    "PC011": ("error", "re-embed these records: NaN and Infinity cannot be stored"),
    "PC012": ("error", "rename the metadata field (mapping.metadata.rename) or set fields.text to another key"),
    "PC013": ("error", "sparse values need equal-length indices and values, unique indices < 2**32, "
                       "at most 1000 non-zeros"),
    "PC014": ("error", "store large integers as strings (they would lose precision as doubles)"),
    "PC015": ("info", "nothing to do: validation maps the ids back; readers of the index see strings"),
    "PC016": ("error", "fix the text in the source: a lone UTF-16 surrogate is not a character"),
}


@dataclass(frozen=True)
class Finding:
    """One rule broken by one record (or, from :func:`summarize`, by ``count`` records)."""

    code: str
    message: str
    record_id: RecordId | None = None
    count: int = 1

    @property
    def severity(self) -> Severity:
        return RULES[self.code][0]

    @property
    def hint(self) -> str:
        return RULES[self.code][1]

    def one_line(self) -> str:
        return f"{self.code}: {self.message} — {self.hint}"


class RecordRejected(ValueError):
    """A record breaks an error-severity rule; carries the finding for the caller's message."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


# ---- ids ------------------------------------------------------------------------------------


def wire_id(record_id: RecordId) -> str:
    """The string Pinecone stores for an engine id (ints become their decimal string)."""
    if isinstance(record_id, str):
        return record_id
    if isinstance(record_id, bool) or not isinstance(record_id, int | np.integer):
        raise RecordRejected(Finding("PC007", f"record id {record_id!r} is a {type(record_id).__name__}", record_id))
    return str(int(record_id))


def id_findings(record_id: RecordId) -> list[Finding]:
    try:
        text = wire_id(record_id)
    except RecordRejected as exc:
        return [exc.finding]
    out: list[Finding] = []
    if not isinstance(record_id, str):
        out.append(Finding("PC015", f"record id {record_id!r} is an integer; Pinecone stores '{text}'", record_id))
    if not text:
        out.append(Finding("PC007", "record id is an empty string", record_id))
    elif not text.isascii() or "\x00" in text:
        out.append(Finding("PC007", f"record id {_short(text)} is not plain ASCII (or holds a NUL)", record_id))
    if len(text) > MAX_ID_LENGTH:
        out.append(Finding("PC006", f"record id {_short(text)} is {len(text)} characters long", record_id))
    return out


# ---- metadata -------------------------------------------------------------------------------


def clean_metadata(
    record_id: RecordId, metadata: Mapping[str, Any], *, nested: NestedPolicy = "error"
) -> tuple[dict[str, Any], list[Finding]]:
    """Pinecone's form of one record's metadata, plus every finding about it.

    Nulls are dropped (PC002, absent == null), numpy scalars and tuples become plain values,
    and anything Pinecone would refuse or change is reported with an error finding. The
    cleaned dict is only meaningful when no error finding came back.
    """
    out: dict[str, Any] = {}
    findings: list[Finding] = []
    for key, raw in metadata.items():
        if raw is None:
            findings.append(Finding("PC002", f"metadata field '{key}' is null and is dropped", record_id))
            continue
        value, problem = _clean_value(raw) if _unicode(str(key)) else (None, "PC016")
        if problem is not None:
            if problem in ("PC003", "PC004") and nested == "json":
                out[str(key)] = _as_json_string(raw)
                continue
            findings.append(Finding(problem, _value_message(problem, key, raw), record_id))
            continue
        out[str(key)] = value
    return out, findings


def metadata_size(metadata: Mapping[str, Any]) -> int:
    """Bytes of the compact JSON Pinecone measures against its 40 KB limit."""
    return len(orjson.dumps(metadata))


def _clean_value(value: Any) -> tuple[Any, str | None]:
    # bool before int: True is an int to Python, a boolean to Pinecone.
    if isinstance(value, bool | np.bool_):
        return bool(value), None
    if isinstance(value, str):
        return (value, None) if _unicode(value) else (None, "PC016")
    if isinstance(value, int | np.integer):
        v = int(value)
        return (v, None) if abs(v) <= MAX_SAFE_INT else (None, "PC014")
    if isinstance(value, float | np.floating):
        f = float(value)
        return (f, None) if math.isfinite(f) else (None, "PC005")
    if isinstance(value, Mapping):
        return None, "PC003"
    if isinstance(value, list | tuple | np.ndarray):
        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        if all(isinstance(item, str) for item in items):
            return (items, None) if all(map(_unicode, items)) else (None, "PC016")
        return None, "PC004"
    return None, "PC005"


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_json_string(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS).decode()


def _value_message(code: str, key: str, value: Any) -> str:
    kind = type(value).__name__
    if code == "PC003":
        return f"metadata field '{key}' is a nested object"
    if code == "PC004":
        return f"metadata field '{key}' is a list holding non-strings ({_short(value)})"
    if code == "PC016":
        return f"metadata field '{key}' holds a lone surrogate ({_short(value)})"
    if code == "PC014":
        return f"metadata field '{key}' = {value} is beyond 2**53"
    if isinstance(value, float | np.floating):
        return f"metadata field '{key}' is {value} (not a finite number)"
    return f"metadata field '{key}' is a {kind} ({_short(value)})"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- vectors --------------------------------------------------------------------------------


def dimension_findings(dimension: int | None) -> list[Finding]:
    if dimension is None or 1 <= dimension <= MAX_DIMENSION:
        return []
    return [Finding("PC008", f"dimension {dimension} is outside 1..{MAX_DIMENSION}")]


def vector_problems(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (non-finite, all-zero) for a (n, dim) matrix, computed once per batch."""
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        empty = np.zeros(vectors.shape[0] if vectors.ndim else 0, dtype=bool)
        return empty, empty
    nonfinite = ~np.isfinite(vectors).all(axis=1)
    zero = ~vectors.any(axis=1)
    return nonfinite, zero & ~nonfinite


def sparse_findings(
    record_id: RecordId, sparse: Any, metric: str | None
) -> tuple[dict[str, list[Any]] | None, list[Finding]]:
    """Validate one record's sparse values; returns them as plain lists for the wire."""
    if sparse is None:
        return None, []
    findings: list[Finding] = []
    if metric is not None and metric != "dotproduct":
        findings.append(Finding("PC009", f"record has sparse values but the metric is {metric}", record_id))
    try:
        indices = [int(i) for i in _seq(sparse, "indices")]
        values = [float(v) for v in _seq(sparse, "values")]
    except (KeyError, TypeError, ValueError):
        findings.append(Finding("PC013", f"sparse values {_short(sparse)} are not {{indices, values}}", record_id))
        return None, findings
    problem = None
    if len(indices) != len(values):
        problem = f"{len(indices)} indices but {len(values)} values"
    elif not indices:
        problem = "no non-zero values"
    elif len(indices) > MAX_SPARSE_NNZ:
        problem = f"{len(indices)} non-zeros (at most {MAX_SPARSE_NNZ})"
    elif len(set(indices)) != len(indices) or min(indices) < 0 or max(indices) > MAX_SPARSE_INDEX:
        problem = "indices are not unique integers in [0, 2**32)"
    elif not all(math.isfinite(v) for v in values):
        problem = "values hold NaN or Infinity"
    if problem:
        findings.append(Finding("PC013", f"sparse values have {problem}", record_id))
    return {"indices": indices, "values": values}, findings


def _seq(sparse: Any, key: str) -> Iterable[Any]:
    seq: Iterable[Any] = sparse[key] if isinstance(sparse, Mapping) else getattr(sparse, key)
    if isinstance(seq, np.ndarray):
        items: list[Any] = seq.tolist()  # a 1-d array's tolist() is a list
        return items
    return seq


# ---- whole samples --------------------------------------------------------------------------


def lint_sample(
    batch: Batch,
    *,
    dimension: int | None = None,
    metric: str | None = None,
    text_key: str = "text",
    nested: NestedPolicy = "error",
) -> list[Finding]:
    """Every rule ``upsert`` enforces, over a sample, as findings (one per record and rule).

    ``dimension`` defaults to the batch's own width; ``metric`` to "unknown" (PC009 is then
    only reported when the caller names a metric other than dotproduct).
    """
    dim = dimension if dimension is not None else (int(batch.vectors.shape[1]) if batch.vectors.ndim == 2 else None)
    out: list[Finding] = list(dimension_findings(dim))
    vectors = np.asarray(batch.vectors)
    nonfinite, zero = vector_problems(vectors)
    sparse_list: Sequence[Any] = batch.extra.get("sparse") or [None] * len(batch)
    texts = batch.texts if batch.texts is not None else [None] * len(batch)
    for pos, (rid, meta, text, sparse) in enumerate(zip(batch.ids, batch.metadata, texts, sparse_list, strict=True)):
        out.extend(id_findings(rid))
        if pos < len(nonfinite) and nonfinite[pos]:
            out.append(Finding("PC011", "dense vector holds NaN or Infinity", rid))
        if pos < len(zero) and zero[pos] and sparse is None:
            out.append(Finding("PC010", "dense vector is all zeros", rid))
        clean, found = clean_metadata(rid, meta, nested=nested)
        out.extend(found)
        if text is not None:
            if text_key in clean and clean[text_key] != text:
                out.append(Finding("PC012", f"record text and metadata field '{text_key}' differ", rid))
            clean[text_key] = text
        size = metadata_size(clean)
        if size > MAX_METADATA_BYTES:
            out.append(Finding("PC001", f"metadata is {size:,} bytes (limit {MAX_METADATA_BYTES:,})", rid))
        out.extend(sparse_findings(rid, sparse, metric)[1])
    return out


def summarize(findings: Iterable[Finding], examples: int = 3) -> list[Finding]:
    """One finding per code, with a count and a few example ids: what a plan shows."""
    by_code: dict[str, list[Finding]] = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f)
    out = []
    for code in sorted(by_code):
        group = by_code[code]
        ids = [f.record_id for f in group if f.record_id is not None]
        if ids:
            shown = ", ".join(repr(i) for i in ids[:examples]) + (", ..." if len(ids) > examples else "")
            message = f"{len(group)} record(s): {group[0].message} (e.g. {shown})"
        else:
            message = group[0].message
        out.append(Finding(code, message, None, len(group)))
    return out


def first_error(findings: Iterable[Finding]) -> Finding | None:
    return next((f for f in findings if f.severity == "error"), None)
