"""The plan's action graph as Mermaid or Graphviz DOT, built from ``Action.depends_on``.

Copy shards are independent siblings with the same dependencies; thousands of them make a
graph no one can read (and GitHub stops rendering Mermaid long before that), so a run of
more than ``max_shards`` shards becomes one node with their count and records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vecmig.actions import KINDS
from vecmig.model import Action, Plan

DEFAULT_MAX_SHARDS = 8


def _effect(kind: str) -> str:
    """What an action of ``kind`` declares it does (``ActionKind.effect``); unknown kinds change."""
    known = KINDS.get(kind)
    return known.effect if known is not None else "change"


@dataclass(frozen=True)
class Node:
    key: str  # n0, n1, ...: safe in both languages
    label: str
    kind: str
    members: tuple[str, ...]  # action ids this node stands for
    destructive: bool = False
    irreversible: bool = False


Edge = tuple[str, str]


def nodes_and_edges(plan: Plan, max_shards: int | None = DEFAULT_MAX_SHARDS) -> tuple[list[Node], list[Edge]]:
    groups = _group(plan.actions, max_shards)
    nodes: list[Node] = []
    owner: dict[str, str] = {}
    for i, group in enumerate(groups):
        key = f"n{i}"
        first = group[0]
        if len(group) == 1:
            label = first.id
        else:
            records = sum(a.estimate.records for a in group)
            label = f"{first.id} … {group[-1].id}\n{len(group):,} shards · {records:,} records"
        nodes.append(Node(key, label, first.kind, tuple(a.id for a in group),
                          any(a.destructive for a in group), any(not a.reversible for a in group)))
        for a in group:
            owner[a.id] = key
    edges: list[Edge] = []
    seen: set[Edge] = set()
    for group in groups:
        for a in group:
            for dep in a.depends_on:
                edge = (owner.get(dep, ""), owner[a.id])
                if edge[0] and edge[0] != edge[1] and edge not in seen:
                    seen.add(edge)
                    edges.append(edge)
    return nodes, edges


def _group(actions: tuple[Action, ...], max_shards: int | None) -> list[list[Action]]:
    """Runs of copy shards sharing their dependencies, split out only when small enough."""
    runs: list[list[Action]] = []
    for a in actions:
        last = runs[-1] if runs else None
        if (last and a.kind == "copy_shard" and last[0].kind == "copy_shard"
                and last[0].depends_on == a.depends_on):
            last.append(a)
        else:
            runs.append([a])
    out: list[list[Action]] = []
    for run in runs:
        if run[0].kind == "copy_shard" and max_shards is not None and len(run) > max_shards:
            out.append(run)
        else:
            out.extend([a] for a in run)
    return out


def _mermaid_label(text: str) -> str:
    # Mermaid strings cannot hold a bare double quote; its entity code can.
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(plan: Plan, max_shards: int | None = DEFAULT_MAX_SHARDS) -> str:
    nodes, edges = nodes_and_edges(plan, max_shards)
    lines = ["flowchart TD"]
    if not nodes:
        lines.append('  empty["no changes"]')
    for n in nodes:
        lines.append(f'  {n.key}["{_mermaid_label(n.label)}"]')
    for a, b in edges:
        lines.append(f"  {a} --> {b}")
    styled = {"destructive": [n.key for n in nodes if n.destructive or n.irreversible],
              "create": [n.key for n in nodes if _effect(n.kind) == "add"],
              "check": [n.key for n in nodes if _effect(n.kind) == "read"]}
    lines.append("  classDef destructive fill:#fdd,stroke:#c00,color:#600")
    lines.append("  classDef create fill:#dfd,stroke:#080")
    lines.append("  classDef check fill:#def,stroke:#06c")
    for cls, keys in styled.items():
        if keys:
            lines.append(f"  class {','.join(keys)} {cls}")
    return "\n".join(lines) + "\n"


def to_dot(plan: Plan, max_shards: int | None = DEFAULT_MAX_SHARDS) -> str:
    nodes, edges = nodes_and_edges(plan, max_shards)
    lines = [f"digraph {json.dumps(plan.migration)} {{", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    for n in nodes:
        attrs = [f"label={json.dumps(n.label, ensure_ascii=False)}"]  # JSON's escapes are DOT's
        if n.destructive or n.irreversible:
            attrs.append('color=red, fontcolor=red')
        elif _effect(n.kind) == "add":
            attrs.append("color=darkgreen")
        lines.append(f"  {n.key} [{', '.join(attrs)}];")
    for a, b in edges:
        lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"
