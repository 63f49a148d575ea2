"""Plans in review: Markdown for pull requests (size-capped), Mermaid/DOT graphs, `show`, `graph`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import psycopg

from tests.support.cli import ROOT, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for
from vecmig import planfile
from vecmig.graph import nodes_and_edges, to_dot, to_mermaid
from vecmig.model import PLAN_FORMAT_VERSION, Action, Estimate, Inventory, Plan, Warning_
from vecmig.render_markdown import GITHUB_LIMIT, Previous, marker, render


def make_plan(shards: int, *, destructive: bool = False, cost: float = 0.0) -> Plan:
    """A plan shaped like the planner's: create → N copy shards → index → validate (→ prune/decommission)."""
    create = Action("create_collection.target", "create_collection", "target pgvector:docs_v2 does not exist",
                    reverse="drop the collection", estimate=Estimate(seconds_low=0.05, seconds_high=1.0))
    width = len(str(shards - 1))
    copies = [Action(f"copy.shard[{i:0{width}d}]", "copy_shard",
                     f"1,000 source records in ids [{i * 1000}, {(i + 1) * 1000}) are not in the target yet",
                     depends_on=(create.id,), params={"shard": {"lo": i * 1000, "hi": (i + 1) * 1000}, "index": i},
                     reverse="nothing to undo record by record: the collection is dropped",
                     estimate=Estimate(1000, 1_600_000, 0.5, 2.0, {"write units": cost} if cost else {}))
              for i in range(shards)]
    index = Action("build_index.target", "build_index", "hnsw index is built after the load",
                   depends_on=tuple(a.id for a in copies), reverse="drop the index",
                   estimate=Estimate(seconds_low=3, seconds_high=9))
    check = Action("validate.completeness", "validate_completeness", "counts, id sets and checksums must match",
                   depends_on=(index.id,), reverse="nothing to undo", estimate=Estimate(seconds_low=1, seconds_high=4))
    actions = [create, *copies, index, check]
    if destructive:
        actions.append(Action("decommission.source", "decommission", "strategy.decommission is set",
                              depends_on=(check.id,), reversible=False, destructive=True,
                              reverse="cannot be undone: the old collection and its data are gone"))
    inv = Inventory("pgvector", "docs", True, 384, "cosine", shards * 1000, True, "int")
    return Plan(PLAN_FORMAT_VERSION, "0.1.0", "docs-upgrade", "a" * 64,
                {"version": 1, "name": "docs-upgrade", "source": {"provider": "pgvector", "collection": "docs",
                                                                   "connection": {"dsn": "${env:SOURCE_DSN}"}},
                 "target": {"provider": "pgvector", "collection": "docs_v2",
                            "connection": {"dsn": "${env:TARGET_DSN}"}}},
                "big-bang", inv, Inventory("pgvector", "docs_v2", False), None, 0, 1, tuple(actions),
                (Warning_("VM101", "source count is an estimate; shard sizes may be uneven"),))


def test_small_plan_has_every_part() -> None:
    plan = make_plan(3, destructive=True, cost=0.25)
    md = render(plan, plan_file="plan.json")
    assert md.startswith(marker(plan))
    assert "**Plan: 2 to add, 4 to change, 1 to destroy**" in md and "**3,000 records**" in md
    assert "est. cost **$0.75**" in md
    assert "> [!CAUTION]" in md and "`decommission.source`" in md and "**Irreversible**" in md
    assert "--allow-destructive" in md
    # Infracost-style: one row per action, a total row, cost line items.
    assert md.count("| ~ | `copy.shard[") == 3 and "| | **Total** |" in md
    assert "| write units | $0.7500 |" in md
    assert "| `VM101` | warning |" in md
    assert "```mermaid\nflowchart TD" in md
    assert "<details><summary>Actions in detail (7)</summary>" in md
    assert "<details><summary>Spec as planned (placeholders, no secrets)</summary>" in md
    assert "${env:SOURCE_DSN}" in md
    assert "summarised" not in md and "none yet" in md


def test_change_against_previous_run() -> None:
    prev = Previous(round=1, finished="2025-01-31T10:00:00.000000+00:00", records=2000, bytes=1, seconds_low=1,
                    seconds_high=3, cost=0.0, actual_seconds=2.5, actual_records=2000)
    md = render(make_plan(3), previous=prev)
    assert "Against the last applied run (round 1, completed 2025-01-31T10:00:00Z)" in md
    assert "records 2,000 → 3,000 (+1,000, +50%)" in md and "copied 2,000 records in 2.5s" in md


def test_thousands_of_shards_fit_githubs_limit_and_point_at_the_full_plan() -> None:
    plan = make_plan(5000, destructive=True)
    full_size = len(plan.to_json_text())
    assert full_size > 4 * GITHUB_LIMIT  # the plan itself is far bigger than a comment may be
    md = render(plan, plan_file="out/plan.json")
    assert len(md) <= GITHUB_LIMIT
    assert "summarised" in md and "`out/plan.json` (apply exactly it with `vecmig apply out/plan.json`)" in md
    # Shards collapse into one row carrying their totals; banners and findings survive.
    assert "`copy.shard[0000]` … `copy.shard[4999]` (5,000 shards) | copy_shard | 5,000,000 |" in md
    assert "> [!CAUTION]" in md and "`VM101`" in md
    assert "5,000 shards · 5,000,000 records" in md  # the collapsed graph node
    assert "**Plan: 2 to add, 5001 to change, 1 to destroy**" in md
    # Without -out, it says how to get the JSON.
    md = render(plan, spec_path="plans/x.yaml")
    assert len(md) <= GITHUB_LIMIT and "`vecmig plan plans/x.yaml --format json`" in md


def test_last_resort_cut_keeps_any_limit() -> None:
    plan = make_plan(40)
    for limit in (1500, 3000, 9000):
        md = render(plan, plan_file="p.json", limit=limit)
        assert len(md) <= limit and "p.json" in md
        assert ("cut to fit GitHub's comment limit" in md) == (limit < 2000), limit
        assert md.count("```") % 2 == 0, "an open code block would swallow the rest of the page"


def test_graph_from_depends_on() -> None:
    plan = make_plan(3)
    nodes, edges = nodes_and_edges(plan, max_shards=None)
    ids = {n.key: n.members[0] for n in nodes}
    named = {(ids[a], ids[b]) for a, b in edges}
    assert ("create_collection.target", "copy.shard[1]") in named
    assert ("copy.shard[2]", "build_index.target") in named
    assert ("build_index.target", "validate.completeness") in named
    assert len(edges) == 3 + 3 + 1
    mermaid = to_mermaid(plan, max_shards=None)
    assert 'n1["copy.shard[0]"]' in mermaid and "n0 --> n1" in mermaid
    dot = to_dot(plan, max_shards=None)
    assert dot.startswith('digraph "docs-upgrade" {') and 'n0 [label="create_collection.target"' in dot
    assert "n0 -> n1;" in dot and dot.rstrip().endswith("}")
    # Collapsed: one node for the run of shards, edges deduplicated.
    big = make_plan(50)
    nodes, edges = nodes_and_edges(big)
    assert len(nodes) == 4 and len(edges) == 3
    assert "copy.shard[00] … copy.shard[49]<br/>50 shards · 50,000 records" in to_mermaid(big)


def test_show_saved_plan_with_thousands_of_shards(tmp_path: Path) -> None:
    plan = make_plan(3000)
    out = tmp_path / "big-plan.json"
    planfile.save(plan, out, tmp_path)
    r = vecmig("show", str(out), "--format", "markdown")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) <= GITHUB_LIMIT and str(out) in r.stdout and "summarised" in r.stdout
    r = vecmig("show", str(out), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["checksum"] == json.loads(plan.to_json_text())["checksum"]
    r = vecmig("graph", str(out), "--format", "dot")
    assert r.returncode == 0 and "3,000 shards" in r.stdout
    r = vecmig("graph", str(out), "--expand")
    assert r.returncode == 0 and r.stdout.count("copy.shard[") == 3000


def test_blue_green_example_markdown_through_the_cli(pg_db: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "plans", tmp_path / "plans")
    spec = tmp_path / "plans" / "pgvector-blue-green.yaml"
    make_docs_table(pg_db, "docs", 2000, 16, seed=4, index="hnsw")
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")
    env = env_for(pg_db)
    saved = tmp_path / "plan.json"
    r = vecmig("plan", str(spec), "--format", "markdown", "-out", str(saved), env=env)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    (tmp_path / "plan.md").write_text(md)
    assert md.startswith("<!-- vecmig-plan:docs-blue-green -->")
    assert "**2,000 records**" in md and "`cutover.alias`" in md and "```mermaid" in md
    assert "none yet" in md and str(saved) in md
    assert "Saved the plan" in r.stderr and "Saved the plan" not in md
    assert vecmig("show", str(saved), "--format", "markdown", env=env).stdout == md
    r = vecmig("graph", str(spec), env=env)
    assert r.returncode == 0 and "flowchart TD" in r.stdout and "cutover.alias" in r.stdout
    assert vecmig("apply", str(saved), env=env).returncode == 0

    # The next plan compares itself with the run just applied.
    with psycopg.connect(pg_db) as conn:
        conn.execute("INSERT INTO docs (id, embedding, body) SELECT id + 100000, embedding, body FROM docs "
                     "WHERE id <= 500")
    r = vecmig("plan", str(spec), "--format", "markdown", env=env)
    assert r.returncode == 0, r.stderr
    # Round 2 writes only the 500 new records (the record-level diff), against round 1's 2,000.
    m = re.search(r"Against the last applied run \(round 1, completed [^)]+\): records 2,000 → 500 \(-1,500, -75%\)",
                  r.stdout)
    assert m, r.stdout[:3000]
    assert "**Records: +500 to add, ~0 to change, -0 to delete, 2,000 unchanged**" in r.stdout
    assert "that run actually copied 2,000 records" in r.stdout
    # --json stays an alias of --format json.
    a = vecmig("plan", str(spec), "--json", env=env).stdout
    b = vecmig("plan", str(spec), "--format", "json", env=env).stdout
    assert a == b and json.loads(a)["state"]["round"] == 2
