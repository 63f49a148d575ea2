"""Human renderings of plans and state (JSON is ``Plan.to_json_text``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vecmig.actions import KINDS
from vecmig.cluster import executor_line
from vecmig.model import Action, Inventory, Plan
from vecmig.state.rows import AuditRow

# Terraform's symbols, by the effect each action kind declares (``ActionKind.effect``).
EFFECT_SYMBOLS = {
    "add": ("+", "green"),
    "change": ("~", "yellow"),
    "read": ("?", "cyan"),
    "destroy": ("-", "red"),
}


def symbol(kind: str) -> tuple[str, str]:
    """The symbol and colour of an action of ``kind`` (a kind this vecmig does not know: a change)."""
    known = KINDS.get(kind)
    return EFFECT_SYMBOLS[known.effect if known is not None else "change"]


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


def estimate_basis(actions: Sequence[Action]) -> str:
    """", from round 1's measured 48k records/s": what the plan's time estimate rests on."""
    from vecmig.calibrate import basis_phrase

    phrase = basis_phrase(actions)
    return f", {phrase}" if phrase else ""


def end_to_end(plan: Plan) -> str:
    """"; `vecmig apply` end to end 3.1s–6.2s": the run plus start-up and the plan's own reads."""
    if plan.start_up is None:
        return ""
    whole = plan.totals + plan.start_up
    return f"; `vecmig apply` end to end {span(whole.seconds_low, whole.seconds_high)}"


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
    sym, color = symbol(a.kind)
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
    elif a.status == "recopy":
        line.append("  (re-copy)", style="bold")
    if a.destructive:
        line.append("  destructive", style="bold red")
    if not a.reversible:
        line.append("  IRREVERSIBLE", style="bold red")
    line.append(f"\n      {a.reason}")
    return line


def records_line(plan: Plan) -> str | None:
    """``Records: +100 to add, ~10 to change, -5 to delete, 99,985 unchanged`` (the diff's totals)."""
    r = plan.records
    if r is None:
        return None
    return (f"Records: +{r['add']:,} to add, ~{r['change']:,} to change, -{r['delete']:,} to delete, "
            f"{r['unchanged']:,} unchanged")


def human_count(n: float) -> str:
    """1,234 · 12.3K · 2.3M: token counts as a reader takes them in."""
    if n < 10_000:
        return f"{n:,.0f}"
    if n < 1e6:
        return f"{n / 1e3:.1f}K"
    if n < 1e9:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e9:.2f}B"


def embedding_line(plan: Plan) -> str | None:
    """``Re-embed: 100,000 texts with all-MiniLM-L6-v2 (384 dims) · ~2.3M tokens (2.2M–2.4M) · 3m–5m on
    this machine · $0.00``: what transform.embed costs, from the plan's ``embedding`` summary."""
    e = plan.embedding
    if not e:
        return None
    t, s, c = e["tokens"], e["seconds"], e["cost"]
    if t["exact"]:
        tokens = f"{human_count(t['expected'])} tokens (counted)"
    else:
        counted = "" if t["counted"] == "tokenizer" else ", estimated from characters"
        tokens = f"~{human_count(t['expected'])} tokens ({human_count(t['low'])}–{human_count(t['high'])}{counted})"
    where = "from the endpoint" if (e.get("identity") or "").startswith("api:") else "on this machine"
    time = f"{span(s['low'], s['high'])} {where}" if s["high"] else "time not probed"
    usd = c.get("usd")
    if usd is None:
        money = f"price unknown ({c.get('source')}: set cost.embedding.usd_per_million_tokens)"
    else:
        dated = f", prices as of {c['as_of']}" if c.get("as_of") else ""
        money = f"${usd:,.2f} ({c.get('source')}{dated})"
    cached = e.get("cache") or {}
    share = cached.get("uncached_share", 1.0)
    cache = "" if share >= 1.0 else f" · {1 - share:.0%} of the sample already cached (not priced)"
    return (f"Re-embed: {e['texts']:,} texts with {e['model']} ({e['dimension']} dims) · {tokens} · {time} · "
            f"{money}{cache}")


def diff_lines(plan: Plan) -> list[str]:
    """How the diff was made and what it cost, and the drift it found (Terraform's refresh notes)."""
    d = plan.diff
    if not d:
        return []
    read = d.get("records_read", {})
    how = ("hashed on both servers" if d.get("method") == "server-hash" else "read and hashed here")
    cost = d.get("cost") or {}
    priced = f" · est. ${sum(cost.values()):,.4f} in reads" if cost else ""
    reads = d.get("reads") or {}
    if "buckets_hashed" in reads:
        # The versions shortcut: say what was really hashed, not the whole table.
        how = (f"compared by row versions; {reads['buckets_hashed']:,} of {reads.get('buckets', 0):,} buckets "
               f"written since the last validation hashed ({reads.get('source_rows_hashed', 0):,} source and "
               f"{reads.get('target_rows_hashed', 0):,} target records)")
    out = [f"Diff: {read.get('source', 0):,} source and {read.get('target', 0):,} target records {how}{priced}"]
    drift = d.get("drift") or {}
    if drift.get("known") and drift.get("records"):
        shown = ", ".join(str(i) for i in drift.get("examples", [])[:5])
        out.append(f"Drift: {drift['records']:,} record(s) changed in the target outside vecmig since it last "
                   f"validated it (e.g. id {shown}); apply overwrites them with the source's")
    if drift.get("known") and drift.get("both_sides"):
        out.append(f"Drift: {drift['both_sides']:,} more record(s) sit where both the source and the target "
                   "changed since the last validation")
    if drift and not drift.get("known") and d.get("method") != "none":
        out.append(f"Drift: not known ({drift.get('why_unknown', '')})")
    if d.get("target_only") and not (plan.records or {}).get("delete"):
        out.append(f"Kept: {d['target_only']:,} target record(s) not in the source (this strategy does not "
                   "remove them)")
    return out


def print_plan(plan: Plan, console: Console) -> None:
    console.print(Text(f"vecmig plan · {plan.migration} · {plan.strategy} · round {plan.round}", style="bold"))
    src = plan.spec.get("source", {})
    tgt = plan.spec.get("target", {})
    console.print(f"  source  {src.get('provider')}:{src.get('collection') or src.get('connection', {}).get('path')}"
                  f"  {describe_inventory(plan.source)}")
    console.print(f"  target  {tgt.get('provider')}:{tgt.get('collection') or tgt.get('connection', {}).get('path')}"
                  f"  {describe_inventory(plan.target)}")
    if (where := executor_line(plan.spec)) is not None:
        console.print(f"  {where}")
    for note in plan.notes:
        console.print(f"  note: {note}", style="cyan")
    for w in plan.warnings:
        hint = f" — {w.hint}" if getattr(w, "hint", None) else ""
        console.print(f"  {w.severity} {w.code}: {w.message}{hint}", style="red" if w.severity == "error" else "yellow")
    for line in diff_lines(plan):
        console.print(f"  {line}", style="yellow" if line.startswith("Drift: ") and "not known" not in line
                      else "cyan")
    embedding = embedding_line(plan)
    if embedding:
        console.print(f"  {embedding}", style="cyan")
    console.print()
    records = records_line(plan)
    if not plan.actions:
        if records:
            console.print(records, style="bold")
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
        f"{t.records:,} records · {human_bytes(t.bytes)} · est. {span(t.seconds_low, t.seconds_high)}"
        + estimate_basis(plan.actions) + end_to_end(plan),
        style="bold"))
    if records:
        console.print(Text(records, style="bold"))
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


def _parsed(text: str) -> dict[str, Any]:
    """History must render even a tampered row; `state verify` is what judges it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text[:60]}
    return value if isinstance(value, dict) else {"value": value}


def who(actor_json: str) -> str:
    a = _parsed(actor_json)
    base = f"{a.get('user')}@{a.get('host')}"
    return f"{base} (CI: {a['ci_actor']})" if a.get("ci_actor") else base


def event_summary(event: str, data: dict[str, Any]) -> str:
    """One line an auditor can read without opening the JSON."""
    if event == "run_started":
        return (f"{data.get('operation')} round {data.get('round')} · approval {data.get('approval')} · "
                f"plan {str(data.get('plan_hash'))[:12]} · spec {str(data.get('spec_hash'))[:12]}")
    if event == "run_finished":
        parts = [str(data.get("status"))]
        if data.get("records_copied") is not None:
            parts.append(f"{data['records_copied']:,} records copied")
        for name, v in (data.get("validations") or {}).items():
            parts.append(f"{name} {'ok' if v.get('ok') else 'FAILED'}")
        if data.get("error"):
            parts.append(f"error: {data['error']}")
        return " · ".join(parts)
    if event.startswith("action_"):
        parts = [str(data.get("action"))]
        if data.get("records"):
            parts.append(f"{data['records']:,} records")
        if data.get("actual_seconds") is not None:
            parts.append(f"{data['actual_seconds']}s")
        result = data.get("result") or {}
        if "ok" in result:
            parts.append(f"validation {'ok' if result['ok'] else 'FAILED'}, checksum "
                         f"{str((result.get('source') or {}).get('sum', ''))[:16]}")
        if data.get("error"):
            parts.append(f"error: {data['error']}")
        return " · ".join(parts)
    if event == "intent":
        return f"about to touch {data.get('kind')} {data.get('name')} ({data.get('side')}) for {data.get('action')}"
    if event in ("round_started", "apply_authorised"):
        acts = data.get("actions") or data.get("destructive_actions") or []
        return (f"round {data.get('round')} · plan {str(data.get('plan_hash'))[:12]} · {len(acts)} action(s)"
                + (f" · approval {data['approval']}" if data.get("approval") else ""))
    if event.startswith("lock_"):
        return str(data.get("lock_id") or (data.get("holder") or data.get("dead_holder") or {}).get("lock_id", ""))
    keys = [k for k in data if k != "tool_version"]
    return ", ".join(f"{k}={data[k]}" for k in keys[:4])


def history_table(events: Sequence[AuditRow], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("seq", "time (UTC)", "event", "who", "summary"):
        table.add_column(col, overflow="fold")
    for ev in events:
        data = _parsed(ev["data_json"])
        table.add_row(str(ev["seq"]), ev["ts"][:19].replace("T", " "), ev["event"], who(ev["actor_json"]),
                      event_summary(ev["event"], data))
    return table
