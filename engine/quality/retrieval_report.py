"""A retrieval report as people read it: the old model and the new one side by side, in Markdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vecmig.quality.compare import k_label
from vecmig.quality.retrieval import LABELS, MEASURES


def _f(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _change(v: Any) -> str:
    return "–" if v is None else f"{v:+.3f}"


def render_retrieval(report: Mapping[str, Any], *, title: str, failures: list[str], old: str, new: str,
                     file: str | None = None) -> str:
    """``report`` is :meth:`RetrievalReport.to_json`'s shape (as state keeps it); ``old`` and
    ``new`` name the two sides (model names, or "source"/"target")."""
    a = report.get("aggregate") or {}
    k = k_label(report.get("k"), report.get("k_min"))
    lines = [f"## {title}", "", "**Gate: passed**" if not failures else "**Gate: failed**", ""]
    lines += [f"- {f}" for f in failures]
    if failures:
        lines.append("")
    on = f" on {file}" if file else ""
    lines += [f"{a.get('queries', 0)} queries{on}, k={k}", "",
              f"| metric | old model ({old}) | new model ({new}) | change |", "|---|---|---|---|"]
    for m in MEASURES:
        at = f"@{k}" if m != "mrr" else ""
        lines.append(f"| {LABELS[m]}{at} | {_f(a.get(f'{m}_old'))} | {_f(a.get(f'{m}_new'))} | "
                     f"{_change(a.get(f'{m}_change'))} |")
    lines.append(f"| failed queries | {a.get('errors_old', 0)} | {a.get('errors_new', 0)} | |")
    lines.append("")
    queries = report.get("queries") or []
    if queries:
        shown, total = report.get("queries_shown", len(queries)), report.get("queries_total", len(queries))
        lines += [f"Queries ({shown} of {total}{', those that lost most' if shown < total else ''}):", "",
                  "| query | relevant | recall old | recall new | nDCG old | nDCG new | error |",
                  "|---|---|---|---|---|---|---|"]
        for q in queries:
            err = q.get("error_new") or q.get("error_old") or ""
            lines.append(f"| {str(q.get('name')).replace('|', '/')} | {q.get('relevant')} | "
                         f"{_f(q.get('recall_old'))} | {_f(q.get('recall_new'))} | {_f(q.get('ndcg_old'))} | "
                         f"{_f(q.get('ndcg_new'))} | {str(err).replace('|', '/')[:80]} |")
        lines.append("")
    return "\n".join(lines)
