"""What Qdrant cannot hold as given: rules for the plan's sample and for every upserted record.

Codes are stable (new rules get new numbers, retired ones are never reused). FD-coded
findings come from :mod:`vecmig.providers.fidelity` (a payload is a JSON document).

| code  | severity | rule |
|-------|----------|------|
| QD001 | info     | ids that are not unsigned 64-bit integers are stored under a derived UUID |
| QD002 | error    | a metadata key is one the provider reserves (``_vecmig_id``, the text key) |
| QD003 | error    | a cosine collection: Qdrant normalises its vectors, so their bits would change |
| QD004 | error    | a metadata integer outside [-2**63, 2**64): Qdrant keeps it as a double |
| QD005 | error    | a vector holds NaN or Infinity (JSON cannot carry them) |
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np

from vecmig.errors import TerminalError
from vecmig.providers import fidelity
from vecmig.providers.base import LintFinding
from vecmig.providers.qdrant.ids import ID_KEY, U64_MAX, is_native
from vecmig.records import Batch, RecordId

I64_MIN = -(2**63)
Severity = Literal["error", "warning", "info"]

RULES: dict[str, tuple[Severity, str]] = {
    "QD001": ("info", "nothing to do: vecmig maps the UUIDs back to the ids when it reads; other readers "
                      f"find the id in the payload key {ID_KEY}"),
    "QD002": ("error", "rename the metadata field (mapping.metadata.rename), or set fields.text to another key"),
    "QD003": ("error", "create the target with metric dotproduct (the same ranking for unit vectors) or "
                       "euclidean, or normalise the vectors in the source first"),
    "QD004": ("error", "store such integers as strings: Qdrant's JSON numbers stop at 64 bits"),
    "QD005": ("error", "re-embed these records: NaN and Infinity cannot be sent to Qdrant"),
}


def _big_int(value: Any, path: str) -> str | None:
    if type(value) is int and not I64_MIN <= value <= U64_MAX:
        return path
    if isinstance(value, Mapping):
        return next((p for k, v in value.items() if (p := _big_int(v, f"{path}.{k}"))), None)
    if isinstance(value, list | tuple):
        return next((p for i, v in enumerate(value) if (p := _big_int(v, f"{path}[{i}]"))), None)
    return None


def record_problems(batch: Batch, text_key: str) -> Iterator[tuple[str, RecordId, str]]:
    """``(code, id, what)`` for every rule a record breaks; QD001 and QD003 are not per record."""
    finite = np.isfinite(batch.vectors).all(axis=1) if len(batch) else np.ones(0, bool)
    texts = batch.texts if batch.texts is not None else [None] * len(batch)
    reserved = (ID_KEY, text_key)
    for pos, (rid, meta, text) in enumerate(zip(batch.ids, batch.metadata, texts, strict=True)):
        if not finite[pos]:
            yield "QD005", rid, f"record {rid!r}: the vector holds NaN or Infinity"
        for key in reserved:
            if key in meta:
                what = "the provider's id key" if key == ID_KEY else "the text key (fields.text)"
                yield "QD002", rid, f"record {rid!r}: metadata field '{key}' is {what}"
        for key, value in meta.items():
            path = _big_int(value, key)
            if path is not None:
                yield "QD004", rid, f"record {rid!r}: metadata field '{path}' is an integer beyond 64 bits"
        found = fidelity.record_problem(meta, None, "json", False, text)
        if found is not None:
            key_name, exc = found
            what = fidelity.field_message(rid, key_name, exc) if key_name is not None else f"record {rid!r}: {exc.why}"
            yield exc.code, rid, what


def _hint(code: str) -> str:
    return RULES[code][1] if code in RULES else fidelity.HINTS[code]


def check_batch(batch: Batch, text_key: str, collection: str) -> None:
    """Raise the first problem of a batch about to be written, naming the record."""
    for code, _, what in record_problems(batch, text_key):
        raise TerminalError(f"{what} [{code}] (writing Qdrant collection '{collection}')", hint=_hint(code))


def lint_sample(sample: Batch, metric: str | None, text_key: str, collection: str) -> list[LintFinding]:
    by_code: dict[str, list[str]] = {}
    for code, _, what in record_problems(sample, text_key):
        by_code.setdefault(code, []).append(what)
    mapped = [rid for rid in sample.ids if not is_native(rid)]
    if mapped:
        by_code["QD001"] = [f"{len(mapped)} sampled id(s) such as {mapped[0]!r} are not unsigned 64-bit integers: "
                            f"stored under a derived UUID, the id kept in payload key {ID_KEY}"]
    if metric == "cosine":
        by_code["QD003"] = ["Qdrant stores the vectors of a cosine collection normalised to unit length: "
                            "the copied vectors would not keep their float32 bits"]
    out = []
    for code in sorted(by_code):
        msgs = by_code[code]
        more = f" (and {len(msgs) - 1} more record(s))" if len(msgs) > 1 and code != "QD001" else ""
        severity = RULES[code][0] if code in RULES else "error"
        out.append(LintFinding(code, severity, f"{msgs[0]}{more}; target Qdrant collection '{collection}'",
                               _hint(code)))
    return out
