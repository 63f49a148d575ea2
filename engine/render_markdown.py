"""A plan as a pull-request comment: headline, cost/time table, banners, findings, graph.

The comment must fit GitHub's 65,536-character limit however many shards a plan has. It is
rendered in decreasing detail until it fits: everything; then runs of copy shards collapsed
into one row with their totals; then without per-action detail. A summarised comment says
so and where the full JSON plan is. A last-resort cut keeps the limit whatever happens.

The first line is a hidden marker (``<!-- vecmig-plan:NAME -->``) so a CI job can find and
update its own comment instead of adding a new one on every push.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from vecmig.cluster import executor_line
from vecmig.graph import DEFAULT_MAX_SHARDS, to_mermaid
from vecmig.model import Action, Estimate, Plan
from vecmig.render import (
    describe_inventory,
    diff_lines,
    embedding_line,
    estimate_basis,
    human_bytes,
    records_line,
    span,
    symbol,
)
from vecmig.state.reader import StateReader

GITHUB_LIMIT = 65_536
SHOWN_SHARDS = 8  # a collapsed run of shards still lists this many in its details


def marker(plan: Plan) -> str:
    return f"<!-- vecmig-plan:{plan.migration} -->"


@dataclass(frozen=True)
class Previous:
    """The last round applied to completion before this plan, as the state recorded it."""

    round: int
    finished: str
    records: int
    bytes: int
    seconds_low: float
    seconds_high: float
    cost: float
    actual_seconds: float
    actual_records: int


def previous_run(state: StateReader | None, before_round: int) -> Previous | None:
    if state is None:
        return None
    done = [r for r in state.rounds() if r["status"] == "complete" and r["round"] < before_round]
    if not done:
        return None
    last = done[-1]
    totals = json.loads(last["plan_json"]).get("totals", {})
    rows = state.actions(last["round"])
    return Previous(
        round=last["round"], finished=last["updated"], records=int(totals.get("records", 0)),
        bytes=int(totals.get("bytes", 0)), seconds_low=float(totals.get("seconds_low", 0.0)),
        seconds_high=float(totals.get("seconds_high", 0.0)), cost=sum(totals.get("cost", {}).values()),
        actual_seconds=sum(float(a["actual_seconds"] or 0.0) for a in rows),
        actual_records=sum(int(a["records"] or 0) for a in rows if a["kind"] == "copy_shard"),
    )


def render(plan: Plan, *, previous: Previous | None = None, plan_file: str | None = None,
           spec_path: str | None = None, limit: int = GITHUB_LIMIT) -> str:
    where = _where_full_plan(plan_file, spec_path)
    for level in (0, 1, 2):
        text = _render(plan, previous, where, level)
        if len(text) <= limit:
            return text
    return _cut(text, limit, where)


def _render(plan: Plan, previous: Previous | None, where: str, level: int) -> str:
    parts = [marker(plan), _headline(plan, previous)]
    if level:
        parts.append(f"> [!NOTE]\n> This plan is too large for one comment, so it is summarised here "
                     f"(copy shards collapsed{', per-action detail left out' if level > 1 else ''}). "
                     f"The full plan: {where}.")
    parts += [_banner(plan), _table(plan, collapse=level > 0), _cost_items(plan), _findings(plan),
              _graph(plan), _details(plan, level), _provenance(plan, where)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _where_full_plan(plan_file: str | None, spec_path: str | None) -> str:
    if plan_file:
        return f"`{plan_file}` (apply exactly it with `vecmig apply {plan_file}`)"
    spec = spec_path or "SPEC"
    return f"`vecmig plan {spec} --format json`, or save it with `vecmig plan {spec} -out plan.json`"


# -- headline ------------------------------------------------------------------------------
def _cost(total: float, known: bool) -> str:
    return f"${total:,.2f}" if known else "$0.00 (no metered line items)"


def _headline(plan: Plan, previous: Previous | None) -> str:
    t = plan.totals
    c = plan.counts()
    title = f"### vecmig plan · `{plan.migration}` · {plan.strategy} · round {plan.round}"
    if not plan.actions:
        body = "**No changes.** The target matches the spec and the source."
    else:
        body = (f"**Plan: {c['add']} to add, {c['change']} to change, {c['destroy']} to destroy** · "
                f"**{t.records:,} records** ({human_bytes(t.bytes)}) · est. **{span(t.seconds_low, t.seconds_high)}**"
                f"{estimate_basis(plan.actions)} · est. cost **{_cost(sum(t.cost.values()), bool(t.cost))}**")
    lines = [title, "", body]
    records = records_line(plan)
    if records:
        lines.append(f"\n**{records}**")
    for line in diff_lines(plan):
        lines.append(f"\n{_esc(line)}")
    embedding = embedding_line(plan)
    if embedding:
        lines.append(f"\n{_esc(embedding)}")
    where = executor_line(plan.spec)
    if where:
        lines.append(f"\n{_esc(where)}")
    for note in plan.notes:
        lines.append(f"\n_{_esc(note)}_")
    lines.append("\n" + _change(plan.totals, previous))
    return "\n".join(lines)


def _change(t: Estimate, previous: Previous | None) -> str:
    if previous is None:
        return "Against the last applied run: none yet — this migration has not completed a round."
    delta = t.records - previous.records
    pct = f", {delta / previous.records:+.0%}" if previous.records else ""
    cost = sum(t.cost.values())
    return (f"Against the last applied run (round {previous.round}, completed {previous.finished[:19]}Z): "
            f"records {previous.records:,} → {t.records:,} ({delta:+,}{pct}) · "
            f"est. time {span(previous.seconds_low, previous.seconds_high)} → {span(t.seconds_low, t.seconds_high)} · "
            f"est. cost ${previous.cost:,.2f} → ${cost:,.2f} ({cost - previous.cost:+,.2f}) · "
            f"that run actually copied {previous.actual_records:,} records in {previous.actual_seconds:,.1f}s.")


def _banner(plan: Plan) -> str:
    destructive = [a for a in plan.actions if a.destructive]
    irreversible = [a for a in plan.actions if not a.reversible]
    if not destructive and not irreversible:
        return ""
    lines = ["> [!CAUTION]"]
    if destructive:
        lines.append(f"> **Destructive** — `apply` needs `--allow-destructive`: "
                     f"{', '.join(f'`{a.id}`' for a in destructive)}.")
        lines += [f"> - `{a.id}`: {_esc(a.reason)} (undo: {_esc(a.reverse)})" for a in destructive[:10]]
    if irreversible:
        if destructive:
            lines.append(">")
        lines.append(f"> **Irreversible** — rollback cannot undo: {', '.join(f'`{a.id}`' for a in irreversible)}.")
    return "\n".join(lines)


# -- the Infracost-style table -------------------------------------------------------------
def _runs(actions: tuple[Action, ...], collapse: bool) -> list[list[Action]]:
    out: list[list[Action]] = []
    for a in actions:
        if collapse and out and a.kind == "copy_shard" and out[-1][0].kind == "copy_shard":
            out[-1].append(a)
        else:
            out.append([a])
    return out


def _table(plan: Plan, collapse: bool) -> str:
    if not plan.actions:
        return ""
    rows = ["| | Action | Kind | Records | Data | Est. time | Est. cost | Undo |",
            "|:-:|---|---|--:|--:|--:|--:|---|"]
    for run in _runs(plan.actions, collapse):
        e = sum((a.estimate for a in run), Estimate())
        first = run[0]
        sym = symbol(first.kind)[0]
        name = f"`{first.id}`" if len(run) == 1 else f"`{first.id}` … `{run[-1].id}` ({len(run):,} shards)"
        flags = (" **destructive**" if any(a.destructive for a in run) else "") + (
            " **resume**" if any(a.status == "resume" for a in run) else "") + (
            " **re-copy**" if any(a.status == "recopy" for a in run) else "")
        undo = "**irreversible**" if any(not a.reversible for a in run) else "rollback"
        rows.append(f"| {sym} | {name}{flags} | {first.kind} | {e.records:,} | {human_bytes(e.bytes)} | "
                    f"{span(e.seconds_low, e.seconds_high)} | {_money(e)} | {undo} |")
    t = plan.totals
    rows.append(f"| | **Total** | | **{t.records:,}** | **{human_bytes(t.bytes)}** | "
                f"**{span(t.seconds_low, t.seconds_high)}** | **{_money(t)}** | |")
    return "\n".join(rows)


def _money(e: Estimate) -> str:
    return f"${sum(e.cost.values()):,.2f}" if e.cost else "–"


def _cost_items(plan: Plan) -> str:
    items = plan.totals.cost
    if not items:
        return ""
    rows = ["| Cost line item | Est. USD |", "|---|--:|"]
    rows += [f"| {_esc(k)} | ${v:,.4f} |" for k, v in sorted(items.items())]
    return "\n".join(rows)


def _findings(plan: Plan) -> str:
    if not plan.warnings:
        return "**Lint:** no findings."
    errors = sum(1 for w in plan.warnings if w.severity == "error")
    head = f"**Lint findings** ({len(plan.warnings)}" + (f", **{errors} error-level: apply will refuse**)" if errors
                                                          else ")")
    rows = [head, "", "| Code | Severity | Finding |", "|---|---|---|"]
    rows += [f"| `{w.code}` | {'**error**' if w.severity == 'error' else w.severity} | {_esc(w.message)} |"
             for w in plan.warnings]
    return "\n".join(rows)


def _graph(plan: Plan) -> str:
    if not plan.actions:
        return ""
    return "<details><summary>Action graph</summary>\n\n```mermaid\n" + to_mermaid(plan, DEFAULT_MAX_SHARDS) + \
        "```\n\n</details>"


# -- collapsible detail --------------------------------------------------------------------
def _details(plan: Plan, level: int) -> str:
    parts = [_stores(plan)]
    if plan.actions and level < 2:
        lines = []
        for run in _runs(plan.actions, collapse=level > 0):
            shown = run if len(run) <= SHOWN_SHARDS or level == 0 else run[:SHOWN_SHARDS]
            lines += [_action_detail(a) for a in shown]
            if len(shown) < len(run):
                rest = run[len(shown):]
                lines.append(f"- … and {len(rest):,} more shards, `{rest[0].id}` to `{rest[-1].id}`, "
                             f"{sum(a.estimate.records for a in rest):,} records")
        parts.append(f"<details><summary>Actions in detail ({len(plan.actions):,})</summary>\n\n"
                     + "\n".join(lines) + "\n\n</details>")
    spec = _spec_yaml(plan.spec)
    parts.append("<details><summary>Spec as planned (placeholders, no secrets)</summary>\n\n```yaml\n"
                 + spec + "```\n\n</details>")
    return "\n\n".join(parts)


SPEC_ORDER = ("version", "name", "state", "source", "target", "mapping", "strategy", "validate", "policy")


def _spec_yaml(spec: dict[str, Any]) -> str:
    """Top-level keys in the documented order, nested ones sorted: a saved plan stores its spec
    with sorted keys, and `plan` and `show` must render the same text."""
    ordered = {k: spec[k] for k in SPEC_ORDER if k in spec} | {k: spec[k] for k in sorted(spec) if k not in SPEC_ORDER}
    parts = [yaml.safe_dump({k: v}, sort_keys=True, allow_unicode=True, width=100) for k, v in ordered.items()]
    return "".join(parts)


def _action_detail(a: Action) -> str:
    after = ", ".join(f"`{d}`" for d in a.depends_on[:3]) + (f" and {len(a.depends_on) - 3} more"
                                                             if len(a.depends_on) > 3 else "")
    params = json.dumps(a.params, sort_keys=True, default=str).replace("`", "'")
    if len(params) > 400:
        params = params[:400] + "…"
    line = f"- **`{a.id}`** ({a.kind}): {_esc(a.reason)}"
    if after:
        line += f"; after {after}"
    line += f"; undo: {_esc(a.reverse) or '–'}; params `{params}`"
    return line


def _stores(plan: Plan) -> str:
    src, tgt = plan.spec.get("source", {}), plan.spec.get("target", {})

    def name(store: dict[str, Any]) -> str:
        return f"{store.get('provider')}:{store.get('collection') or store.get('connection', {}).get('path', '')}"

    return ("<details><summary>Source and target as found</summary>\n\n"
            f"- source `{name(src)}`: {describe_inventory(plan.source)}\n"
            f"- target `{name(tgt)}`: {describe_inventory(plan.target)}\n\n</details>")


def _provenance(plan: Plan, where: str) -> str:
    return (f"<sub>vecmig {plan.tool_version} · spec `{plan.spec_hash[:12]}` · plan `{plan.plan_hash[:12]}` · "
            f"state lineage `{plan.state_lineage or 'none yet'}` serial {plan.state_serial} · "
            f"source `{plan.source.fingerprint}` · target `{plan.target.fingerprint}` · full plan: {where}</sub>")


def _esc(text: str) -> str:
    """Table cells and inline text: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _cut(text: str, limit: int, where: str) -> str:
    notice = f"\n\n… cut to fit GitHub's comment limit. The full plan: {where}.\n"
    room = limit - len(notice) - len("```\n")
    head = text[:room]
    head = head[: head.rfind("\n") + 1] if "\n" in head else head
    if head.count("```") % 2:
        head += "```\n"  # close a code block the cut opened
    return head + notice
