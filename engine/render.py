"""Human renderings of plans and state (JSON is ``Plan.to_json_text``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vecmig.model import Action, Inventory, Plan

SYMBOLS = {
    "create_collection": ("+", "green"),
    "build_index": ("+", "green"),
    "copy_shard": ("~", "yellow"),
    "finalize": ("~", "yellow"),
    "cutover": ("~", "yellow"),
    "validate_completeness": ("?", "cyan"),
    "delete_extra": ("-", "red"),
    "decommission": ("-", "red"),
}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def human_seconds(s: float) -> str:
    if s < 1:
        return f"{s:.1f}s"
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def span(low: float, high: float) -> str:
    return f"{human_seconds(low)}–{human_seconds(high)}"


def describe_inventory(inv: Inventory) -> str:
    if not inv.exists:
        return "(does not exist)"
    parts = []
    if inv.count is not None:
        parts.append(f"{inv.count:,} records" + ("" if inv.count_exact else " (est.)"))
    if inv.dimension:
        parts.append(f"{inv.dimension} dims")
    if inv.metric:
        parts.append(inv.metric)
    if inv.id_type:
        parts.append(f"{inv.id_type} ids")
    parts.append(f"fingerprint {inv.fingerprint}")
    return " · ".join(parts)


def action_line(a: Action) -> Text:
    sym, color = SYMBOLS.get(a.kind, ("~", "yellow"))
    line = Text("  ")
    line.append(f"{sym} {a.id}", style=f"bold {color}")
    e = a.estimate
    detail = []
    if e.records:
        detail.append(f"{e.records:,} records")
    if e.bytes:
        detail.append(human_bytes(e.bytes))
    detail.append(span(e.seconds_low, e.seconds_high))
    line.append("  " + " · ".join(detail), style="dim")
    if a.status == "resume":
        line.append("  (resume)", style="bold")
    if a.destructive:
        line.append("  destructive", style="bold red")
    if not a.reversible:
        line.append("  IRREVERSIBLE", style="bold red")
    line.append(f"\n      {a.reason}")
    return line


def print_plan(plan: Plan, console: Console) -> None:
    console.print(Text(f"vecmig plan · {plan.migration} · {plan.strategy} · round {plan.round}", style="bold"))
    src = plan.spec.get("source", {})
    tgt = plan.spec.get("target", {})
    console.print(f"  source  {src.get('provider')}:{src.get('collection') or src.get('connection', {}).get('path')}"
                  f"  {describe_inventory(plan.source)}")
    console.print(f"  target  {tgt.get('provider')}:{tgt.get('collection') or tgt.get('connection', {}).get('path')}"
                  f"  {describe_inventory(plan.target)}")
    for note in plan.notes:
        console.print(f"  note: {note}", style="cyan")
    for w in plan.warnings:
        console.print(f"  {w.severity} {w.code}: {w.message}", style="yellow")
    console.print()
    if not plan.actions:
        console.print("No changes. The target matches the spec and the source.", style="bold green")
        return
    console.print("vecmig will perform the following actions, in order:\n")
    for a in plan.actions:
        console.print(action_line(a))
    t = plan.totals
    c = plan.counts()
    console.print()
    console.print(Text(
        f"Plan: {c['add']} to add, {c['change']} to change, {c['destroy']} to destroy · "
        f"{t.records:,} records · {human_bytes(t.bytes)} · est. {span(t.seconds_low, t.seconds_high)}",
        style="bold"))
    irreversible = [a.id for a in plan.actions if not a.reversible]
    if irreversible:
        console.print(Text(f"Cannot be undone by rollback: {', '.join(irreversible)}", style="bold red"))


def state_table(rows: list[dict[str, object]], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    if not rows:
        return table
    for col in rows[0]:
        table.add_column(str(col))
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    return table
