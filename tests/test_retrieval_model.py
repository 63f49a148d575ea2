"""validate.retrieval with the real packaged model (all-MiniLM-L6-v2, CPU), JSONL stores.

120 records whose texts come from six topics; an evaluation set of 30 queries whose relevant ids
are the records of their topic (those naming the query's subject graded 2, the rest 1).

* The re-embedding case, in-process: the source holds a deliberately weaker "old" embedding (a
  rank-3 random projection of the model's vectors, padded to 48 dimensions) and the evaluation
  file each query's old vector; the target holds the model's own vectors, written by the test
  as the re-embedding copy would (that copy is another helper's work: the plan here is the
  planner's for a converged target, with the check's frozen ``new`` model set by hand). The
  report's numbers equal an exact search computed here; the default gate passes; a min_recall
  above what the model reaches fails and the pointer is not switched.
* The CLI, with ``old_model``: the source holds the model's vectors, the queries carry no
  vector, so the model embeds them for both sides; the copy is a real one. ``min_recall`` above
  what is reached: exit 1, one line, the pointer file not written, ``vecmig report`` renders it.
  (One CLI apply: each loads torch and the model, tens of seconds on a shared machine.)
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.cli import vecmig
from tests.support.embed import MODEL
from vecmig.actions.params import EmbedParams
from vecmig.embed import EmbedConfig, loaded
from vecmig.embed.settings import config_from_spec
from vecmig.errors import ValidationFailed
from vecmig.executor import apply_plan
from vecmig.model import Plan
from vecmig.planner import make_plan
from vecmig.quality.retrieval_params import RetrievalParams
from vecmig.refresh import refresh
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

TOPICS = {
    "cooking": ["pasta", "bread", "soup", "curry", "salad"],
    "astronomy": ["comet", "galaxy", "nebula", "telescope", "eclipse"],
    "football": ["goalkeeper", "penalty", "striker", "referee", "stadium"],
    "programming": ["compiler", "database", "recursion", "debugger", "unit test"],
    "gardening": ["tomatoes", "compost", "roses", "pruning", "seedlings"],
    "finance": ["mortgage", "dividend", "inflation", "pension", "stock market"],
}
TEMPLATES = [
    "A short guide to the {s} for people interested in {t}.",
    "Everything I learned this year about the {s}, a {t} story.",
    "Common mistakes with the {s} and how experts in {t} avoid them.",
    "Why the {s} matters more than you think ({t} notes).",
]
QUESTIONS = ["how do I get started with the {s}", "what should I know about the {s}",
             "tips about the {s}", "explain the {s} to a beginner", "the {s} in {t}"]
OLD_DIM, RANK, K = 48, 3, 10


def corpus() -> list[dict[str, Any]]:
    out = []
    for t, subjects in TOPICS.items():
        for s in subjects:
            for tpl in TEMPLATES:
                out.append({"id": len(out) + 1, "text": tpl.format(s=s, t=t), "topic": t, "subject": s})
    return out


def queries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t, subjects in TOPICS.items():
        for i, s in enumerate(subjects):
            rel = {str(r["id"]): 2 if r["subject"] == s else 1 for r in records if r["topic"] == t}
            out.append({"id": f"{t}-{i}", "query": QUESTIONS[i].format(s=s, t=t), "relevant": rel, "k": K})
    return out


def weaker(vectors: np.ndarray) -> np.ndarray:
    """The "old model": a rank-3 random projection of the real vectors, padded to 48 dimensions."""
    proj = np.random.default_rng(11).standard_normal((vectors.shape[1], RANK))
    low = vectors.astype(np.float64) @ proj
    return np.hstack([low, np.zeros((len(vectors), OLD_DIM - RANK))]).astype(np.float32)


def write_jsonl(path: Path, records: list[dict[str, Any]], vectors: np.ndarray) -> None:
    path.write_text("".join(json.dumps({"id": r["id"], "vector": v.tolist(), "text": r["text"],
                                        "metadata": {"topic": r["topic"]}}) + "\n"
                            for r, v in zip(records, vectors, strict=True)))


def by_hand(vectors: np.ndarray, ids: list[int], query_vectors: np.ndarray,
            evals: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean recall@k and nDCG@k of exact cosine search, written out here (not vecmig's)."""
    v = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    recalls, ndcgs = [], []
    for q, e in zip(query_vectors.astype(np.float64), evals, strict=True):
        sims = v @ (q / np.linalg.norm(q))
        top = [str(ids[i]) for i in sorted(range(len(ids)), key=lambda i: (-sims[i], i))[:K]]
        rel = e["relevant"]
        recalls.append(sum(1 for x in top if x in rel) / min(len(rel), K))
        dcg = sum(rel.get(x, 0) / math.log2(r + 2) for r, x in enumerate(top))
        ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(rel.values(), reverse=True)[:K]))
        ndcgs.append(dcg / ideal)
    return sum(recalls) / len(recalls), sum(ndcgs) / len(ndcgs)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    # Once per process (torch and the weights cost seconds): the same settings as the spec's
    # transform.embed below, so the check's embeddings of the queries are these, bit for bit.
    model = loaded(EmbedConfig(model=MODEL, device="cpu"))
    records = corpus()
    evals = queries(records)
    new = model.embed([r["text"] for r in records])
    q_new = model.embed([e["query"] for e in evals])
    return {"records": records, "evals": evals, "new": new, "old": weaker(new), "q_new": q_new,
            "q_old": weaker(q_new), "ids": [r["id"] for r in records]}


SPEC = """\
version: 1
name: retrieval
state: {{path: state.db}}
source: {{provider: jsonl, connection: {{path: source.jsonl, metric: cosine}}}}
target: {{provider: jsonl, connection: {{path: target.jsonl, metric: cosine}}, collection: docs_v2,
          pointer: {{file: live.json}}}}
validate: {{retrieval: {retrieval}}}
{more}"""


def load(tmp: Path, retrieval: str, more: str = "") -> Spec:
    text = SPEC.format(retrieval=retrieval, more=more)
    (tmp / "spec.yaml").write_text(text)
    return load_spec_text(text, file="spec.yaml", base_dir=tmp)


def reembedded_plan(tmp: Path, data: dict[str, Any], retrieval: str) -> tuple[Spec, Plan]:
    """The plan of a converged target (only the check and the switch), its check given the
    re-embedding's new model; then the target is rewritten with the model's vectors."""
    write_jsonl(tmp / "source.jsonl", data["records"], data["old"])
    write_jsonl(tmp / "target.jsonl", data["records"], data["old"])
    evals = [{**e, "vector": v.tolist()} for e, v in zip(data["evals"], data["q_old"], strict=True)]
    (tmp / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    plain = load(tmp, retrieval)
    plan = make_plan(plain, None, refresh(plain))
    assert [a.id for a in plan.actions] == ["validate.retrieval", "cutover.pointer"]
    spec = load(tmp, retrieval, f"transform: {{embed: {{model: {MODEL}, text: text, device: cpu}}}}\n")
    assert spec.transform.embed is not None
    model = loaded(config_from_spec(spec.transform.embed))
    new = EmbedParams.from_spec(spec.transform.embed, identity=model.identity, dimension=model.dimension)
    check = plan.actions[0]
    params = dataclasses.replace(RetrievalParams.from_json(check.params), new=new).to_json()
    plan = dataclasses.replace(plan, actions=(dataclasses.replace(check, params=params), *plan.actions[1:]))
    write_jsonl(tmp / "target.jsonl", data["records"], data["new"])
    return spec, plan


def apply(tmp: Path, spec: Spec, plan: Plan) -> dict[str, Any]:
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
    assert state is not None
    try:
        return apply_plan(spec, plan, state, approval="auto-approve")
    finally:
        state.close()


def result_of(tmp: Path, spec: Spec) -> dict[str, Any]:
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=False, redactor=spec.redactor)
    assert state is not None
    try:
        row = next(r for r in state.all_actions() if r["action_id"] == "validate.retrieval")
        out: dict[str, Any] = json.loads(row["result_json"] or "{}")
        return {"status": row["status"], **out}
    finally:
        state.close()


def test_the_new_model_is_measured_against_the_old_and_equals_exact_search_by_hand(
        tmp_path: Path, data: dict[str, Any]) -> None:
    spec, plan = reembedded_plan(tmp_path, data, "{file: eval.jsonl, k: 10}")
    apply(tmp_path, spec, plan)
    got = result_of(tmp_path, spec)
    a = got["report"]["aggregate"]
    old_recall, old_ndcg = by_hand(data["old"], data["ids"], data["q_old"], data["evals"])
    new_recall, new_ndcg = by_hand(data["new"], data["ids"], data["q_new"], data["evals"])
    assert a["queries"] == 30 and got["status"] == "done" and got["failures"] == []
    assert a["recall_old"] == pytest.approx(old_recall, abs=1e-6) and a["ndcg_old"] == pytest.approx(old_ndcg, abs=1e-6)
    assert a["recall_new"] == pytest.approx(new_recall, abs=1e-6) and a["ndcg_new"] == pytest.approx(new_ndcg, abs=1e-6)
    assert new_recall > old_recall + 0.1, "the weaker embedding must retrieve worse"
    assert got["models"] == {"old": "old vectors", "new": MODEL}
    assert json.loads((tmp_path / "live.json").read_text())["index"] == "docs_v2"


def test_min_recall_above_what_the_model_reaches_fails_and_the_pointer_stays(
        tmp_path: Path, data: dict[str, Any]) -> None:
    new_recall, _ = by_hand(data["new"], data["ids"], data["q_new"], data["evals"])
    assert new_recall < 0.99
    spec, plan = reembedded_plan(tmp_path, data, "{file: eval.jsonl, min_recall: 0.99}")
    model = loaded(config_from_spec(spec.transform.embed))  # type: ignore[arg-type]
    embedded = model.texts_embedded
    with pytest.raises(ValidationFailed) as e:
        apply(tmp_path, spec, plan)
    line = e.value.one_line()
    assert line.startswith(f"retrieval check failed: recall@10 of {MODEL} {new_recall:.2f} is below min_recall 0.99 "
                           "(the old model's ")
    assert e.value.message.endswith(" on eval.jsonl (30 queries)") and "\n" not in line
    assert "nothing was switched" in line
    assert not (tmp_path / "live.json").exists(), "a failed check must not switch the pointer"
    got = result_of(tmp_path, spec)
    assert got["status"] == "failed" and got["report"]["aggregate"]["recall_new"] == pytest.approx(new_recall)
    # The check used the model this process loaded already (vecmig.embed.loaded): 30 query texts, once each.
    assert model.texts_embedded - embedded == 30


def cli_spec(tmp: Path, data: dict[str, Any], retrieval: str) -> Path:
    write_jsonl(tmp / "source.jsonl", data["records"], data["new"])
    (tmp / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in data["evals"]))
    (tmp / "spec.yaml").write_text(SPEC.format(retrieval=retrieval, more=""))
    return tmp / "spec.yaml"


def test_cli_with_old_model_fails_with_exit_1_and_report_renders_it(
        tmp_path: Path, data: dict[str, Any]) -> None:
    spec = cli_spec(tmp_path, data, f"{{file: eval.jsonl, old_model: {MODEL}, min_recall: 0.99}}")
    recall, ndcg = by_hand(data["new"], data["ids"], data["q_new"], data["evals"])
    r = vecmig("apply", str(spec), "--auto-approve")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if "retrieval check failed" in x]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert f"recall@10 of the target {recall:.2f} is below min_recall 0.99 (the source's {recall:.2f})" in lines[0]
    assert not (tmp_path / "live.json").exists()
    md = vecmig("report", str(spec))
    assert md.returncode == 0, md.stdout + md.stderr
    assert "**Gate: failed**" in md.stdout and "| metric | old model (all-MiniLM-L6-v2) | new model (target) |" \
        in md.stdout
    assert f"| recall@10 | {recall:.3f} | {recall:.3f} | +0.000 |" in md.stdout
    assert f"| nDCG@10 | {ndcg:.3f} | {ndcg:.3f} | +0.000 |" in md.stdout
    got = json.loads(vecmig("report", str(spec), "--format", "json").stdout)
    assert got["status"] == "failed" and got["report"]["aggregate"]["recall_new"] == pytest.approx(recall, abs=1e-6)
    assert got["models"] == {"old": MODEL, "new": "target"}


def test_a_re_embed_plan_freezes_the_copys_model_into_the_check_and_loads_it_once(
        tmp_path: Path, data: dict[str, Any]) -> None:
    write_jsonl(tmp_path / "source.jsonl", data["records"], data["old"])
    evals = [{**e, "vector": v.tolist()} for e, v in zip(data["evals"], data["q_old"], strict=True)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    spec = load(tmp_path, "{file: eval.jsonl, max_ndcg_drop: 0.02}",
                f"transform: {{embed: {{model: {MODEL}, text: text, device: cpu}}}}\n")
    assert spec.transform.embed is not None
    model = loaded(config_from_spec(spec.transform.embed))  # the module's, loaded already
    plan = make_plan(spec, None, refresh(spec))
    got = [a.id for a in plan.actions]
    assert got[-2:] == ["validate.retrieval", "cutover.pointer"] and "validate.completeness" in got
    check = RetrievalParams.from_json(plan.actions[-2].params)
    copy = next(a for a in plan.actions if a.kind == "copy_shard").params["embed"]
    assert check.new is not None and check.new.to_json() == copy  # the very model the copy re-embeds with
    assert (check.new.identity, check.new.dimension) == (model.identity, 384)
    assert loaded(config_from_spec(spec.transform.embed)) is model  # planning loaded no second copy
    assert plan.actions[-2].reason.startswith(f"30 queries of eval.jsonl, k=10, {MODEL} (target) against their "
                                              "old vectors (source): recall drop ≤ 0.05, nDCG drop ≤ 0.02")
