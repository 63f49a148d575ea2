"""A LanceDB table that already exists as the target, judged at plan time against the sample:
what the copy would refuse, said before anything is written (the codes pgvector uses)."""

from __future__ import annotations

from vecmig.providers.base import LintFinding
from vecmig.providers.fidelity import lint_records
from vecmig.providers.files.parquet import Layout
from vecmig.records import Batch


def findings(layout: Layout, where: str, sample: Batch) -> list[LintFinding]:
    """VM144 ids of the other type, VM141 text without a text column, VM140 metadata without a
    column, and the fidelity rules (FD0xx) against the table's own column types."""
    out: list[LintFinding] = []
    kind = int if layout.id_type == "int" else str
    wrong = [rid for rid in sample.ids if not isinstance(rid, kind) or isinstance(rid, bool)]
    if wrong:
        out.append(LintFinding(
            "VM144", "error", f"record id {wrong[0]!r} cannot be stored in the {layout.id_type} id column "
            f"'{layout.id}' of {where}", "migrate into a new table (its id type follows the source's)"))
    texts = sample.texts or []
    if layout.text is None and any(t is not None for t in texts):
        out.append(LintFinding("VM141", "error", f"records carry text but {where} has no text column",
                               "set target.fields.text to the column that should hold it"))
    slots, document = layout.slots()
    if slots is not None:
        unknown = sorted({k for m in sample.metadata for k, v in m.items() if v is not None} - set(slots))
        if unknown:
            out.append(LintFinding(
                "VM140", "error", f"metadata field(s) {', '.join(unknown)} have no column in {where}",
                "add the columns (table.add_columns), drop/rename the fields in mapping, or migrate into a new "
                "table"))
    known = [{k: v for k, v in m.items() if slots is None or k in slots} for m in sample.metadata]
    out += lint_records(sample.ids, known, [t if layout.text else None for t in (texts or [None] * len(sample))],
                        slots, document, False, f"lancedb ({where})")
    return out
