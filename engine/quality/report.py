"""A comparison report as people read it: Markdown for a pull request or an audit folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_markdown(report: Mapping[str, Any], *, title: str, failures: list[str] | None = None,
                    source: str = "source", target: str = "target") -> str:
    """``report`` is :meth:`Report.to_json`'s shape (as state keeps it)."""
    a = report.get("aggregate", {})
    from vecmig.quality.compare import k_label

    k = k_label(report.get("k"), report.get("k_min"))
    lines = [f"## {title}", ""]
    if failures is not None:
        lines += ["**Gate: passed**" if not failures else "**Gate: failed**", ""]
        lines += [f"- {f}" for f in failures]
        if failures:
            lines.append("")
    lines += [
        f"| measure | {source} | {target} |",
        "|---|---|---|",
        f"| queries | {_f(a.get('queries'))} | {_f(a.get('queries'))} |",
        f"| recall@{k} vs exact | {_f(a.get('recall_source'))} | {_f(a.get('recall_target'))} |",
    ]
    if a.get("expected_recall_source") is not None or a.get("expected_recall_target") is not None:
        lines.append(f"| recall@{k} vs expected | {_f(a.get('expected_recall_source'))} | "
                     f"{_f(a.get('expected_recall_target'))} |")
    ls, lt = a.get("latency_source") or {}, a.get("latency_target") or {}
    for p in ("p50", "p95", "p99"):
        lines.append(f"| latency {p} (ms) | {_f(ls.get(p), 1)} | {_f(lt.get(p), 1)} |")
    lines += [
        f"| queries/s | {_f(a.get('qps_source'), 1)} | {_f(a.get('qps_target'), 1)} |",
        f"| error rate | {_f(a.get('error_rate_source'), 4)} | {_f(a.get('error_rate_target'), 4)} |",
        "",
        f"overlap@{k} of {target} with {source}: mean {_f(a.get('overlap'))}, min {_f(a.get('overlap_min'))}; "
        f"rank correlation {_f(a.get('rank_correlation'))}; largest score difference {_f(a.get('score_diff'), 6)}",
        "",
    ]
    queries = report.get("queries") or []
    if queries:
        shown, total = report.get("queries_shown", len(queries)), report.get("queries_total", len(queries))
        lines += [f"Queries ({shown} of {total}{', the worst' if shown < total else ''}):", "",
                  f"| query | overlap | recall {source} | recall {target} | ms {source} | ms {target} | error |",
                  "|---|---|---|---|---|---|---|"]
        for q in queries:
            err = q.get("error_target") or q.get("error_source") or ""
            lines.append(f"| {q.get('name')} | {_f(q.get('overlap'))} | {_f(q.get('recall_source'))} | "
                         f"{_f(q.get('recall_target'))} | {_f(q.get('ms_source'), 1)} | {_f(q.get('ms_target'), 1)} | "
                         f"{str(err).replace('|', '/')[:80]} |")
        lines.append("")
    return "\n".join(lines)
