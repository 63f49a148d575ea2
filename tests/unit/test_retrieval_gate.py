"""validate.retrieval on the memory store, with the old vectors in the evaluation file and no
model: spec rules, the plan's layout and frozen parameters, the gate passing (numbers equal a
computation by hand) and failing (the cutover held back, the report kept and rendered), a
changed evaluation file.

The memory target's ``search_noise`` knob answers like a poorly tuned index (that share of every
top-k replaced by the next-best records): the target then retrieves worse than the source.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.memory import Harness, spec_text
from tests.unit.test_operations import RecordingUi
from vecmig import planfile
from vecmig.errors import PlanError, SpecError, StalePlanError, ValidationFailed
from vecmig.executor import apply_plan
from vecmig.operations.report import ReportRequest, comparison_report
from vecmig.providers.memory import store as memory
from vecmig.quality.retrieval import ndcg_at_k, recall_at_k
from vecmig.search import similarities, top_k
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text

N, Q = 300, 20


def spec(h: Harness, retrieval: str, strategy: str = "blue-green", *, target: dict[str, Any] | None = None,
         more: str = "", queries: str | None = None) -> Spec:
    also = f", queries: {queries}" if queries else ""
    text = spec_text(strategy, target_connection=target, extra=f"validate: {{retrieval: {retrieval}{also}}}\n{more}")
    (h.tmp / "spec.yaml").write_text(text)
    return load_spec_text(text, file="spec.yaml", base_dir=h.tmp)


SOURCE: dict[str, Any] = {}


def eval_set(h: Harness, n: int = Q, k: int = 10) -> list[dict[str, Any]]:
    """Queries near source records; relevant: each one's exact top-10 by cosine (the first three of
    grade 2, the rest 1)."""
    batch = h.seed(N)
    SOURCE["batch"] = batch
    rng = np.random.default_rng(3)
    picks = rng.choice(np.arange(5, N), size=n, replace=False)
    lines = []
    for i, at in enumerate(picks):
        vec = batch.vectors[at] + rng.normal(0, 0.05, batch.vectors.shape[1]).astype(np.float32)
        best = top_k(similarities("cosine", batch.vectors, vec[None, :])[0], batch.ids, 10)
        lines.append({"id": f"q{i}", "query": f"query {i}", "vector": vec.tolist(), "k": k,
                      "relevant": {str(hit.id): 2 if r < 3 else 1 for r, hit in enumerate(best)}})
    (h.tmp / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


def by_hand(h: Harness, lines: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean recall@k and nDCG@k of exact cosine search over the source, computed here."""
    batch = SOURCE["batch"]
    ids, vectors = batch.ids, batch.vectors
    recalls, ndcgs = [], []
    for x in lines:
        q = np.asarray(x["vector"], dtype=np.float32)
        got = [hit.id for hit in top_k(similarities("cosine", vectors, q[None, :])[0], ids, x["k"])]
        grades = {str(k): float(v) for k, v in x["relevant"].items()}
        recalls.append(recall_at_k(got, grades, x["k"]))
        ndcgs.append(ndcg_at_k(got, grades, x["k"]))
    return round(sum(recalls) / len(recalls), 6), round(sum(ndcgs) / len(ndcgs), 6)


def ids(plan: Any) -> list[str]:
    return [a.id for a in plan.actions]


# -- the plan -----------------------------------------------------------------------------
def test_plan_puts_the_check_after_completeness_and_query_parity_and_before_the_switch(h: Harness) -> None:
    eval_set(h)
    s = spec(h, "{file: e.jsonl, k: 5, min_ndcg: 0.5}", queries="{sample: 5}")
    plan = h.plan(s)
    assert ids(plan) == ["create_collection.target", "copy.shard[0]", "validate.completeness", "validate.queries",
                         "validate.retrieval", "cutover.alias"]
    check = plan.actions[4]
    assert check.kind == "validate_retrieval" and check.depends_on == ("validate.queries",)
    assert plan.actions[5].depends_on == ("validate.retrieval",)
    assert check.reason == ("20 queries of e.jsonl, k=5, target against source, both searched with their vectors: "
                            "nDCG ≥ 0.5, recall drop ≤ 0.05")
    p = check.params
    assert p["sha256"] == hashlib.sha256((h.tmp / "e.jsonl").read_bytes()).hexdigest()
    assert (p["file"], p["queries"], p["k"], p["old_model"], p["new"]) == ("e.jsonl", 20, 5, None, None)
    assert p["gate"] == {"min_ndcg": 0.5, "max_recall_drop": 0.05}
    assert check.reverse == "nothing to undo (read-only)" and check.reversible and not check.destructive
    assert check.estimate.seconds_high > 0


def test_cdc_without_a_feed_checks_after_the_catch_up_and_big_bang_without_a_switch_ends_with_it(
        h: Harness) -> None:
    eval_set(h)
    got = ids(h.plan(spec(h, "{file: e.jsonl}", "cdc", queries="{sample: 5}")))
    at = got.index("catch_up.source")
    assert got[at:at + 3] == ["catch_up.source", "validate.queries", "validate.retrieval"]
    plan = h.plan(spec(h, "{file: e.jsonl}", "big-bang"))
    assert ids(plan)[-2:] == ["validate.completeness", "validate.retrieval"]


def test_a_converged_migration_plans_no_check_again(h: Harness) -> None:
    eval_set(h)
    s = spec(h, "{file: e.jsonl}")
    h.apply(s)
    assert h.plan(s).actions == ()


def test_plan_refuses_a_query_without_an_old_vector_or_model_and_a_vector_of_another_width(h: Harness) -> None:
    lines = eval_set(h)
    del lines[2]["vector"]
    (h.tmp / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(PlanError, match=r'^e.jsonl:3: the query has no "vector" \(the old model\'s vector of it\) '
                                        "and validate.retrieval names no old_model") as e:
        h.plan(spec(h, "{file: e.jsonl}"))
    assert (e.value.where or "").endswith("/validate/retrieval/file")
    lines[2]["vector"] = [1.0, 2.0]
    (h.tmp / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(PlanError, match=r"e.jsonl:3: vector has 2 dimensions; the source's vectors have 8"):
        h.plan(spec(h, "{file: e.jsonl}"))


def test_plan_refuses_an_old_model_with_nothing_to_embed_and_one_that_does_not_exist(h: Harness) -> None:
    lines = eval_set(h)
    with pytest.raises(PlanError, match=r"every query of e.jsonl carries its old vector, so the model would embed "
                                        "nothing") as e:
        h.plan(spec(h, "{file: e.jsonl, old_model: all-MiniLM-L6-v2}"))
    assert (e.value.where or "").endswith("/validate/retrieval/old_model")
    del lines[0]["vector"]
    (h.tmp / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(PlanError, match="old_model: model 'no-such-model' is neither a packaged model nor a local "
                                        "directory"):
        h.plan(spec(h, "{file: e.jsonl, old_model: no-such-model}"))


# -- spec rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(("retrieval", "more", "message", "where"), [
    ("{file: nope.jsonl}", "", "evaluation file 'nope.jsonl' .* does not exist", "/validate/retrieval/file"),
    ("{file: sub}", "", "is a directory", "/validate/retrieval/file"),
    ("{file: e.jsonl, max_recall_drop: .nan}", "", r"max_recall_drop is \.nan, which no measure can miss",
     "/validate/retrieval/max_recall_drop"),
    ("{file: e.jsonl, min_ndcg: 1.5}", "", "must be at most 1", "/validate/retrieval/min_ndcg"),
    ("{file: e.jsonl, k: 0}", "", "must be at least 1", "/validate/retrieval/k"),
    ("{file: bad.jsonl}", "", r"^bad.jsonl:2: relevant: is empty", "/validate/retrieval/file"),
    ("{file: f.jsonl}", "mapping: {metadata: {drop: [year]}}\n",
     r"^f.jsonl:1: filter: reads field 'year', which mapping.metadata.drop removes", "/validate/retrieval/file"),
])
def test_spec_errors_say_what_and_where(h: Harness, retrieval: str, more: str, message: str, where: str) -> None:
    (h.tmp / "sub").mkdir()
    (h.tmp / "e.jsonl").write_text('{"query": "q", "relevant": [1]}\n')
    (h.tmp / "bad.jsonl").write_text('{"query": "q", "relevant": [1]}\n{"query": "q", "relevant": []}\n')
    (h.tmp / "f.jsonl").write_text('{"query": "q", "relevant": [1], "filter": {"year": 1999}}\n')
    with pytest.raises(SpecError, match=message) as e:
        spec(h, retrieval, more=more)
    assert e.value.where is not None and e.value.where.startswith("spec.yaml:") and e.value.where.endswith(where)


# -- apply --------------------------------------------------------------------------------
def test_a_faithful_target_passes_with_the_numbers_computed_by_hand_and_the_alias_switches(h: Harness) -> None:
    lines = eval_set(h)
    s = spec(h, "{file: e.jsonl, min_recall: 0.5}")
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}
    report = comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())
    assert report.status == "done" and report.failures == () and report.action == "validate.retrieval"
    a = report.result["report"]["aggregate"]
    recall, ndcg = by_hand(h, lines)
    assert 0 < recall <= 1 and (a["recall_old"], a["ndcg_old"]) == (recall, ndcg)
    assert (a["recall_new"], a["ndcg_new"], a["recall_change"], a["queries"]) == (recall, ndcg, 0.0, Q)
    assert "| recall@10 | " in report.markdown() and "**Gate: passed**" in report.markdown()


def test_a_poor_target_fails_the_check_holds_the_switch_and_the_report_says_why(h: Harness) -> None:
    lines = eval_set(h)
    s = spec(h, "{file: e.jsonl, min_recall: 0.95}", target={"search_noise": 0.5})
    with pytest.raises(ValidationFailed) as e:
        h.apply(s)
    line = e.value.one_line()
    recall, _ = by_hand(h, lines)
    assert recall >= 0.95
    assert line.startswith("retrieval check failed: recall@10 of the target ")
    assert f"is below min_recall 0.95 (the source's {recall:.2f})" in line
    assert f"below the source's {recall:.2f} (max drop 0.05) on e.jsonl (20 queries)" in line
    assert "nothing was switched" in line and "completeness check failed" not in line and "\n" not in line
    assert memory.get("dst").aliases == {}
    assert h.statuses(s)["validate.retrieval"] == "failed" and h.statuses(s)["cutover.alias"] == "pending"
    report = comparison_report(ReportRequest(h.tmp / "spec.yaml"), RecordingUi())
    assert report.status == "failed" and report.failures[0].startswith("recall@10 of the target")
    assert report.result["report"]["aggregate"]["recall_new"] < 0.95
    md = report.markdown()
    assert "**Gate: failed**" in md and "| metric | old model (source) | new model (target) | change |" in md
    # Applied again: the round resumes, the check runs again and fails again; nothing is re-copied.
    with pytest.raises(ValidationFailed, match="retrieval check failed"):
        h.apply(s)
    assert memory.get("dst").aliases == {}


def test_a_changed_evaluation_file_is_refused_by_the_saved_plan_and_replanned(h: Harness) -> None:
    eval_set(h)
    s = spec(h, "{file: e.jsonl}")
    plan = h.plan(s)
    planfile.save(plan, h.tmp / "plan.json", h.tmp)
    saved = planfile.open_saved(h.tmp / "plan.json").plan
    with (h.tmp / "e.jsonl").open("a") as f:
        f.write('{"query": "late", "relevant": [7], "vector": [1, 2, 3, 4, 5, 6, 7, 8]}\n')
    state = h.state(s, create=True)
    assert state is not None
    with pytest.raises(StalePlanError, match=r"evaluation file e.jsonl changed since the plan"):
        apply_plan(s, saved, state, approval="saved-plan")
    assert memory.get("dst").aliases == {}
    again = h.plan(s)
    assert any("the evaluation file of validate.retrieval changed since it started" in n for n in again.notes)
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}


def test_results_are_json_in_state_export(h: Harness, tmp_path: Path) -> None:
    eval_set(h, n=3)
    s = spec(h, "{file: e.jsonl}")
    h.apply(s)
    from vecmig.state.export import document
    state = h.state(s, create=False)
    assert state is not None
    exported = document(state)  # validated against the export's schema
    check = next(a for a in exported["actions"] if a["action_id"] == "validate.retrieval")
    assert check["status"] == "done" and check["result"]["report"]["queries_total"] == 3
    audited = [e["data"] for e in exported["audit"]
               if e["data"].get("result", {}).get("title") == check["result"]["title"]]
    assert len(audited) == 1


def test_phased_measures_the_whole_collection_after_the_last_wave_before_the_switch(h: Harness) -> None:
    eval_set(h)
    text = spec_text("phased", extra="validate: {retrieval: {file: e.jsonl}}\n").replace(
        "shard_size: 1000}", "shard_size: 1000, waves: [{name: low, ids: {from: 1, to: 100}}]}")
    text = text.replace("  collection: docs_v2", "  collection: docs_v2\n  alias: docs_live")
    plan = h.plan(load_spec_text(text, file="spec.yaml", base_dir=h.tmp))
    got = ids(plan)
    assert got.count("validate.retrieval") == 1 and got[-2:] == ["validate.retrieval", "cutover.alias"]
    check = plan.actions[got.index("validate.retrieval")]
    assert check.depends_on == (got[got.index("validate.retrieval") - 1],)


def test_params_round_trip_and_rollback_has_nothing_to_undo(h: Harness) -> None:
    from vecmig.actions.params import EmbedParams
    from vecmig.quality.retrieval_params import RetrievalParams

    p = RetrievalParams(k=5, file="e.jsonl", sha256="ab", queries=3, gate={"min_recall": 0.5},
                        old_model="m", old_identity="local:m@1", old_device="cpu",
                        new=EmbedParams(model="n", text="{title}", identity="local:n@2", dimension=384),
                        renames={"a": "b"}, concurrency=2)
    assert RetrievalParams.from_json(json.loads(json.dumps(p.to_json()))) == p
    eval_set(h, n=3)
    s = spec(h, "{file: e.jsonl}")
    h.apply(s)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}
    h.rollback(s)
    assert memory.get("dst").aliases == {}
    assert h.statuses(s)["validate.retrieval"] == "rolled_back"


def test_a_threshold_lowered_after_a_failed_check_is_the_one_measured_next(h: Harness) -> None:
    eval_set(h)
    with pytest.raises(ValidationFailed):
        h.apply(spec(h, "{file: e.jsonl, min_recall: 0.95}", target={"search_noise": 0.5}))
    lowered = spec(h, "{file: e.jsonl, max_recall_drop: 0.6}", target={"search_noise": 0.5})
    plan = h.plan(lowered)
    assert any("validate.retrieval changed in the spec since it started" in n for n in plan.notes)
    assert ids(plan) == ["validate.retrieval", "cutover.alias"]  # the copied records are found equal
    h.apply(lowered)
    assert memory.get("dst").aliases == {"docs_live": "docs_v2"}


def test_relevant_ids_the_source_does_not_hold_fail_the_check_instead_of_passing_at_zero(h: Harness) -> None:
    # The red team's case: relevant ids of another collection made both sides score 0.00, and "no
    # worse than the old model" passed a check that measured nothing.
    lines = eval_set(h)
    for x in lines:
        x["relevant"] = {f"not-{rid}": grade for rid, grade in x["relevant"].items()}
    (h.tmp / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    s = spec(h, "{file: e.jsonl}")
    with pytest.raises(ValidationFailed, match="neither the old nor the new side found any relevant id"):
        h.apply(s)
    assert memory.get("dst").aliases == {}
