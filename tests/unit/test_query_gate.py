"""validate.queries on the memory store: spec rules, the plan's layout and frozen parameters,
the gate passing and failing (the cutover held back, the report kept), a changed query file,
filters renamed for the target, and `vecmig report`.

The memory target's ``search_noise`` knob answers like a poorly tuned index (that share of
every top-k replaced by the next-best records); everything else is exact search.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.memory import Harness, StopAfter, capture_context, spec_text
from tests.unit.test_operations import RecordingUi
from vecmig.errors import Interrupted, PlanError, SpecError, StalePlanError, ValidationFailed, VecmigError
from vecmig.executor import apply_plan
from vecmig.model import Action
from vecmig.operations.report import ReportRequest, comparison_report
from vecmig.planner import make_plan
from vecmig.providers.base import Capabilities
from vecmig.providers.memory import store as memory
from vecmig.providers.memory.provider import MemoryProvider
from vecmig.refresh import refresh
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.export import document

N = 400


def spec(h: Harness, queries: str, strategy: str = "blue-green", *, target: dict[str, object] | None = None,
         more: str = "") -> Spec:
    text = spec_text(strategy, target_connection=target, extra=f"validate: {{queries: {queries}}}\n{more}")
    (h.tmp / "spec.yaml").write_text(text)
    return load_spec_text(text, file="spec.yaml", base_dir=h.tmp)


def write_queries(h: Harness, lines: list[dict[str, object]], name: str = "q.jsonl") -> Path:
    path = h.tmp / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def vectors(n: int, seed: int = 7) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32).tolist()


def kinds(plan_actions: tuple[object, ...]) -> list[str]:
    return [a.id for a in plan_actions]  # type: ignore[attr-defined]


# -- the plan -----------------------------------------------------------------------------
def test_plan_puts_the_gate_after_completeness_and_before_the_switch(h: Harness) -> None:
    h.seed(N)
    write_queries(h, [{"vector": v} for v in vectors(3)])
    s = spec(h, "{sample: 20, seed: 3, file: q.jsonl, concurrency: 2, min_overlap: 0.95, min_recall: 0.8, "
                "max_latency_ratio: 3}")
    plan = h.plan(s)
    assert kinds(plan.actions) == ["create_collection.target", "copy.shard[0]", "validate.completeness",
                                   "validate.queries", "cutover.alias"]
    gate = plan.actions[3]
    assert gate.kind == "validate_queries" and gate.depends_on == ("validate.completeness",)
    assert plan.actions[4].depends_on == ("validate.queries",)
    assert gate.reason == ("20 sampled + 3 file queries, k=10: overlap ≥ 0.95, recall ≥ 0.8, "
                           "recall drop ≤ 0.05, p95 latency ≤ 3× source, errors ≤ 0%")
    assert gate.reverse == "nothing to undo (read-only)" and gate.reversible and not gate.destructive
    p = gate.params
    import hashlib
    assert p["sha256"] == hashlib.sha256((h.tmp / "q.jsonl").read_bytes()).hexdigest()
    assert (p["file"], p["file_queries"], p["sample"], p["seed"], p["k"], p["concurrency"]) == ("q.jsonl", 3, 20, 3,
                                                                                                  10, 2)
    assert p["gate"] == {"min_overlap": 0.95, "min_recall": 0.8, "max_recall_drop": 0.05, "max_latency_ratio": 3.0,
                         "max_error_rate": 0.0}
    assert gate.estimate.seconds_high > 0 and gate.estimate.records == 0


def test_without_completeness_the_gate_follows_the_copy_and_big_bang_ends_with_it(h: Harness) -> None:
    h.seed(N)
    text = spec_text("big-bang", extra="validate: {completeness: false, queries: {sample: 5}}\n")
    plan = h.plan(load_spec_text(text, file="spec.yaml", base_dir=h.tmp))
    assert kinds(plan.actions)[-2:] == ["copy.shard[0]", "validate.queries"]
    assert plan.actions[-1].depends_on == ("copy.shard[0]",)


def test_cdc_without_a_feed_gates_after_the_catch_up(h: Harness) -> None:
    h.seed(N)
    ids = kinds(h.plan(spec(h, "{sample: 5}", "cdc")).actions)
    at = ids.index("validate.queries")
    assert ids[at - 1:] == ["catch_up.source", "validate.queries"]


def test_a_converged_migration_plans_no_gate_again(h: Harness) -> None:
    h.seed(N)
    s = spec(h, "{sample: 10}")
    h.apply(s)
    assert h.plan(s).actions == ()


def test_plan_refuses_a_store_without_search_and_a_file_of_the_wrong_dimension(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.seed(N)
    write_queries(h, [{"vector": [1.0, 2.0]}])
    with pytest.raises(PlanError, match=r"q.jsonl:1: vector has 2 dimensions; the collection has 8") as e:
        h.plan(spec(h, "{file: q.jsonl}"))
    assert "/validate/queries/file" in (e.value.where or "")
    monkeypatch.setattr(MemoryProvider, "capabilities", Capabilities(create_collection=True, aliases=True))
    with pytest.raises(PlanError, match=r"source memory:docs cannot answer nearest-neighbour queries"):
        h.plan(spec(h, "{sample: 5}"))


# -- spec rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(("queries", "more", "message", "where"), [
    ("{k: 5}", "", "needs queries to send", "/validate/queries"),
    ("{sample: 5, filter: {lang: {$regex: x}}}", "", r"unknown operator \$regex", "/validate/queries/filter"),
    ("{sample: 5, filter: {year: 2000}}", "mapping: {metadata: {drop: [year]}}\n",
     "reads field 'year', which mapping.metadata.drop removes", "/validate/queries/filter"),
    ("{file: nope.jsonl}", "", "does not exist", "/validate/queries/file"),
    ("{sample: 5, min_overlap: 2}", "", "must be at most 1", "/validate/queries/min_overlap"),
])
def test_spec_errors_say_what_and_where(h: Harness, queries: str, more: str, message: str, where: str) -> None:
    with pytest.raises(SpecError, match=message) as e:
        spec(h, queries, more=more)
    assert e.value.where is not None and e.value.where.startswith("spec.yaml:") and e.value.where.endswith(where)


def test_a_namespace_mapping_is_refused_for_now(h: Harness) -> None:
    text = ("version: 1\nname: ns\nsource: {provider: jsonl, connection: {path: in.jsonl}}\n"
            'target: {provider: pinecone, connection: {api_key: "${env:K}"}, collection: dst, namespace: "*"}\n'
            "mapping: {namespace: {from: field, name: tenant}}\nvalidate: {queries: {sample: 5}}\n")
    with pytest.raises(SpecError, match="not supported yet with a namespace mapping") as e:
        load_spec_text(text, file="spec.yaml", base_dir=h.tmp, env={"K": "x"})
    assert (e.value.where or "").endswith("/validate/queries")


def test_a_bad_query_file_line_is_named_with_the_spec_key(h: Harness) -> None:
    (h.tmp / "q.jsonl").write_text('{"vector": [1, 2]}\n{"vector": [1, 2], "filter": {"year": 1}}\n')
    with pytest.raises(SpecError, match=r"^q.jsonl:2: the query filters on field 'year', which mapping") as e:
        spec(h, "{file: q.jsonl, k: 3}", more="mapping: {metadata: {drop: [year]}}\n")
    assert (e.value.where or "").endswith("/validate/queries/file")
    (h.tmp / "q.jsonl").write_text('{"vector": [1, 2]}\n{"vector": "x"}\n')
    with pytest.raises(SpecError, match=r"q.jsonl:2: vector must be a non-empty list") as e:
        spec(h, "{file: q.jsonl}")
    assert (e.value.where or "").endswith("/validate/queries/file")


# -- apply --------------------------------------------------------------------------------
def test_a_good_target_passes_and_the_alias_switches(h: Harness) -> None:
    h.seed(N)
    write_queries(h, [{"vector": vectors(1)[0], "id": "q-en", "filter": {"lang": "en"}, "k": 5}])
    s = spec(h, "{sample: 30, file: q.jsonl, min_overlap: 0.99, min_recall: 0.99}")
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}
    state = h.state(s, create=False)
    assert state is not None
    row = next(r for r in state.all_actions() if r["action_id"] == "validate.queries")
    result = json.loads(row["result_json"] or "{}")
    assert row["status"] == "done" and result["ok"] and result["failures"] == []
    agg = result["report"]["aggregate"]
    assert (agg["queries"], agg["overlap"], agg["recall_target"], agg["recall_source"]) == (31, 1.0, 1.0, 1.0)
    assert result["queries"] == {"sample": 30, "file": 1, "k": 10}
    named = {q["name"]: q for q in result["report"]["queries"]}
    assert named["q-en"]["filter"] == {"lang": "en"} and named["q-en"]["k"] == 5
    exported = document(state)  # validated against the export's schema
    assert [a["result"]["report"]["aggregate"]["overlap"] for a in exported["actions"]
            if a["action_id"] == "validate.queries"] == [1.0]
    audited = [e["data"] for e in exported["audit"] if e["data"].get("result", {}).get("title") == result["title"]]
    assert len(audited) == 1


def test_a_poor_target_fails_the_gate_holds_the_switch_and_a_fixed_one_passes(h: Harness) -> None:
    h.seed(N)
    poor = spec(h, "{sample: 25, min_overlap: 0.95, min_recall: 0.9}", target={"search_noise": 0.5})
    with pytest.raises(ValidationFailed) as e:
        h.apply(poor)
    line = e.value.one_line()
    assert line.startswith("query parity failed: overlap@10 0.50 < 0.95")
    assert "recall@10 0.50 < 0.9 on target" in line and "nothing was switched" in line
    assert "completeness check failed" not in line
    assert memory.get("dst").aliases == {}
    assert h.statuses(poor) == {"create_collection.target": "done", "copy.shard[0]": "done",
                                "validate.completeness": "done", "validate.queries": "failed",
                                "cutover.alias": "pending"}
    report = comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())
    assert report.status == "failed" and report.failures[0].startswith("overlap@10 0.50")
    md = report.markdown()
    assert "**Gate: failed**" in md and "| recall@10 vs exact | 1.000 | 0.500 |" in md
    # The same spec again: the round resumes, the gate runs again and fails again; nothing is re-copied.
    with pytest.raises(ValidationFailed):
        h.apply(poor)
    assert memory.get("dst").aliases == {}
    fixed = spec(h, "{sample: 25, min_overlap: 0.95, min_recall: 0.9}")
    h.apply(fixed)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}
    again = comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())
    assert again.status == "done" and again.failures == ()
    assert again.result["report"]["aggregate"]["overlap"] == 1.0
    first = comparison_report(ReportRequest(h.tmp / "spec.yaml", round=1), RecordingUi())
    assert first.round == 1


def test_filters_reach_the_target_in_its_own_field_names(h: Harness) -> None:
    h.seed(N)
    s = spec(h, "{sample: 15, filter: {lang: de}, min_overlap: 1.0}",
             more="mapping: {metadata: {rename: {lang: language}}}\n")
    plan = h.plan(s)
    gate = next(a for a in plan.actions if a.kind == "validate_queries")
    assert gate.params["renames"] == {"lang": "language"} and gate.params["filter"] == {"lang": "de"}
    h.apply(s)
    state = h.state(s, create=False)
    assert state is not None
    result = json.loads(next(r for r in state.all_actions() if r["action_id"] == "validate.queries")["result_json"]
                        or "{}")
    assert result["report"]["aggregate"]["overlap"] == 1.0  # unrenamed, the target would match nothing


def test_a_query_file_changed_since_the_plan_is_refused_then_replanned(h: Harness) -> None:
    h.seed(N)
    write_queries(h, [{"vector": v} for v in vectors(2)])
    s = spec(h, "{file: q.jsonl}")
    state = h.state(s, create=True)
    assert state is not None
    plan = make_plan(s, state, refresh(s))
    write_queries(h, [{"vector": v} for v in vectors(3)])
    with pytest.raises(StalePlanError, match=r"query file q.jsonl changed since the plan \(sha256 "):
        apply_plan(s, plan, state, approval="auto-approve")
    assert memory.get("dst").aliases == {}
    replanned = h.plan(s)
    assert any("query file of validate.queries changed" in n for n in replanned.notes)
    gate = next(a for a in replanned.actions if a.kind == "validate_queries")
    assert gate.params["file_queries"] == 3
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}


def test_report_says_when_there_is_none(h: Harness) -> None:
    h.seed(N)
    (h.tmp / "spec.yaml").write_text(spec_text("blue-green"))
    with pytest.raises(VecmigError, match="no state store exists"):
        comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())
    h.apply(load_spec_text(spec_text("blue-green"), file="spec.yaml", base_dir=h.tmp))
    with pytest.raises(VecmigError, match="no comparison report in the state of unit"):
        comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())


@pytest.mark.parametrize(("settings", "phrase", "advice"), [
    ({"type": "ivfflat", "name": "i", "opclass": "vector_cosine_ops", "lists": 200, "probes": 1, "ef_search": 40,
      "metric": "cosine", "ivfflat.iterative_scan": "off"},
     "ivfflat lists=200 probes=1 metric=cosine", "raise probes (now 1) or build hnsw"),
    ({"metric": "cosine", "index": {"type": "hnsw", "params": {"m": 16, "ef_construction": 64}},
      "hnsw.ef_search": 40, "ivfflat.probes": 1}, "hnsw m=16 ef_construction=64 ef_search=40 metric=cosine",
     "raise ef_search (now 40)"),
    ({"type": "none", "metric": "euclidean", "ef_search": 40, "probes": 1}, "no index (exact scan) metric=euclidean",
     ""),
    ({"index_type": "serverless", "metric": "dotproduct", "namespace": "", "max_top_k": 10000},
     "serverless metric=dotproduct", "check the target index's parameters against the source's"),
])
def test_search_settings_read_as_one_phrase(settings: dict[str, object], phrase: str, advice: str) -> None:
    from vecmig.quality.settings import advice as advise
    from vecmig.quality.settings import settings_phrase

    assert (settings_phrase(settings), advise(settings)) == (phrase, advice)


class StopInGate(StopAfter):
    """Sets ``ctx.stop`` (as SIGINT does) after ``batches`` answers of the gate."""

    def advance(self, action: Action, records: int) -> None:
        if action.kind == "validate_queries":
            super().advance(action, records)


def test_a_gate_interrupted_runs_again_from_its_start(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.seed(N)
    s = spec(h, "{sample: 25, concurrency: 1}", target={"search_delay": 0.001})
    stopper = StopInGate(5)
    with capture_context(monkeypatch, stopper), pytest.raises(Interrupted):
        h.apply(s, reporter=stopper)
    assert h.statuses(s)["validate.queries"] == "running" and h.statuses(s)["cutover.alias"] == "pending"
    assert memory.get("dst").aliases == {}
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}
    result = comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi()).result
    assert result["report"]["aggregate"]["queries"] == 25 and result["report"]["aggregate"]["error_rate_target"] == 0
