"""The retrieval measures against textbook values, the evaluation file's parser, and the gate's
sentences (validate.retrieval, issue 14)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vecmig.errors import SpecError
from vecmig.quality.evalset import load_eval, parse_line
from vecmig.quality.retrieval import RetrievalGate, measure, mrr_at_k, ndcg_at_k, recall_at_k
from vecmig.quality.retrieval_report import render_retrieval
from vecmig.quality.runner import Answer
from vecmig.search import Hit

# Wikipedia's "Discounted cumulative gain" example: six documents ranked with grades 3, 2, 3, 0,
# 1, 2; two more relevant documents (grades 3 and 2) were not retrieved. DCG6 = 6.861,
# IDCG6 (3, 3, 3, 2, 2, 2) = 8.740, nDCG6 = 0.785.
GRADES = {"d1": 3.0, "d2": 2.0, "d3": 3.0, "d5": 1.0, "d6": 2.0, "d7": 3.0, "d8": 2.0}
RANKED = ["d1", "d2", "d3", "d4", "d5", "d6"]


def test_ndcg_with_graded_relevance_is_the_textbook_value() -> None:
    dcg = 3 + 2 / math.log2(3) + 3 / 2 + 0 + 1 / math.log2(6) + 2 / math.log2(7)
    idcg = 3 + 3 / math.log2(3) + 3 / 2 + 2 / math.log2(5) + 2 / math.log2(6) + 2 / math.log2(7)
    assert round(dcg, 3) == 6.861 and round(idcg, 3) == 8.740
    assert ndcg_at_k(RANKED, GRADES, 6) == pytest.approx(dcg / idcg)
    assert round(ndcg_at_k(RANKED, GRADES, 6), 3) == 0.785


def test_binary_ndcg_recall_and_mrr() -> None:
    rel = {"a": 1.0, "b": 1.0}
    # a and b at ranks 2 and 3: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    assert ndcg_at_k(["c", "a", "b"], rel, 3) == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "b", "c"], rel, 3) == 1.0
    assert ndcg_at_k(["x", "y"], rel, 2) == 0.0
    assert recall_at_k(["c", "a", "b"], rel, 3) == 1.0
    assert recall_at_k(["c", "a", "b"], rel, 2) == 0.5
    # More relevant ids than k: recall is over min(|relevant|, k), so a perfect top-6 reaches 1.
    assert recall_at_k(RANKED, GRADES, 6) == 5 / 6
    assert recall_at_k(["d1", "d3", "d7"], GRADES, 3) == 1.0
    assert mrr_at_k(["x", "y", "a"], rel, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], rel, 2) == 0.0
    assert mrr_at_k(RANKED, GRADES, 6) == 1.0


def test_ids_follow_the_house_rule_int_7_is_string_7() -> None:
    q = parse_line('{"query": "q", "relevant": [7, "8"]}', "e.jsonl:1", 10)
    hits = [Hit(8, 0.9), Hit("7", 0.8)]
    report = measure([q], [Answer(hits=hits)], [Answer(hits=[Hit("9", 1.0), Hit(7, 0.5)])])
    r = report.queries[0]
    assert r.old is not None and r.new is not None
    assert (r.old["recall"], r.new["recall"], r.new["mrr"]) == (1.0, 0.5, 0.5)
    assert r.old_ids == ("8", "7")


def test_the_aggregate_is_the_mean_and_the_gate_speaks_in_one_sentence_each() -> None:
    qs = [parse_line(f'{{"query": "q{i}", "relevant": ["a{i}", "b{i}"], "k": 2}}', f"e.jsonl:{i}", 10)
          for i in range(1, 5)]
    old = [Answer(hits=[Hit(f"a{i}", 1), Hit(f"b{i}", 0.9)]) for i in range(1, 5)]
    new = [Answer(hits=[Hit(f"a{i}", 1), Hit("zz", 0.9)]) for i in range(1, 3)] + \
          [Answer(hits=[Hit(f"a{i}", 1), Hit(f"b{i}", 0.9)]) for i in range(3, 5)]
    report = measure(qs, old, new)
    a = report.aggregate
    assert (a["queries"], a["recall_old"], a["recall_new"], a["recall_change"]) == (4, 1.0, 0.75, -0.25)
    assert a["mrr_new"] == 1.0 and a["errors_old"] == a["errors_new"] == 0
    gate = RetrievalGate(max_recall_drop=0.05, min_ndcg=0.95)
    failures = gate.check(report, new_name="bge-small", old_name="the old model's")
    assert failures == ["recall@2 of bge-small 0.75 is 0.25 below the old model's 1.00 (max drop 0.05)",
                        "nDCG@2 of bge-small 0.81 is below min_ndcg 0.95 (the old model's 1.00)"]
    assert RetrievalGate(max_recall_drop=0.25).check(report, new_name="n", old_name="o") == []
    md = render_retrieval(report.to_json(), title="Retrieval", failures=failures, old="minilm", new="bge-small",
                          file="e.jsonl")
    assert "| metric | old model (minilm) | new model (bge-small) | change |" in md
    assert "| recall@2 | 1.000 | 0.750 | -0.250 |" in md and "**Gate: failed**" in md


def test_a_drop_equal_to_the_allowed_one_passes_despite_float_rounding() -> None:
    qs = [parse_line(json.dumps({"query": "q", "relevant": [f"r{j}" for j in range(20)], "k": 20}), "e:1", 20)]
    old = [Answer(hits=[Hit(f"r{j}", 1) for j in range(16)])]  # 0.80
    new = [Answer(hits=[Hit(f"r{j}", 1) for j in range(15)])]  # 0.75
    assert RetrievalGate(max_recall_drop=0.05).check(measure(qs, old, new), new_name="n", old_name="o") == []


def test_a_failed_query_fails_the_gate_naming_the_first_error() -> None:
    q = parse_line('{"query": "q", "relevant": ["a"]}', "e:1", 10)
    report = measure([q], [Answer(hits=[Hit("a", 1)])], [Answer(error="connection refused")])
    assert report.aggregate["recall_new"] is None and report.aggregate["errors_new"] == 1
    got = RetrievalGate(max_recall_drop=0.05).check(report, new_name="the target", old_name="the source's")
    assert got == ["1 of 1 queries failed on the target's side, so they were not measured; first: connection "
                   "refused"]


@pytest.mark.parametrize(("line", "message"), [
    ('{"query": "q"}', r"e.jsonl:3: relevant: is missing"),
    ('{"query": "q", "relevant": []}', r"e.jsonl:3: relevant: is empty"),
    ('{"query": "q", "relevant": {"a": 0}}', r"e.jsonl:3: relevant: holds no id with a grade above 0"),
    ('{"query": "q", "relevant": {"a": -1}}', r"e.jsonl:3: relevant: the grade of 'a' must be a finite number"),
    ('{"query": "q", "relevant": [true]}', r"e.jsonl:3: relevant: must list ids"),
    ('{"query": "", "relevant": ["a"]}', r"e.jsonl:3: query: the query's text is missing or empty"),
    ('{"query": "q", "relevant": ["a"], "k": 0}', r"e.jsonl:3: k: must be an integer from 1 to 1000, not 0"),
    ('{"query": "q", "relevant": ["a"], "vector": [1, NaN]}', r"e.jsonl:3: NaN is not JSON"),
    ('{"query": "q", "relevant": ["a"], "vector": [1e39]}', r"e.jsonl:3: vector: holds a value that is not a finite"),
    ('{"query": "q", "relevant": ["a"], "filter": {"x": {"$regex": "y"}}}', r"e.jsonl:3: filter: unknown operator"),
    ('{"query": "q", "relevant": ["a"], "relevant": ["b"]}', r"e.jsonl:3: key 'relevant' appears twice"),
    ('{"query": "q", "relevant": ["a"], "expected": ["b"]}', r"e.jsonl:3: expected: unknown key"),
    ('["q"]', r"e.jsonl:3: a query is a JSON object, not list"),
])
def test_a_bad_line_is_named_with_its_key(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"query": "fine", "relevant": ["a"]}\n\n' + line + "\n")
    with pytest.raises(SpecError, match=message) as e:
        load_eval(path, shown="e.jsonl", default_k=10)
    assert "\n" not in e.value.one_line()


def test_graded_ids_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"id": "pricing", "query": "price", "relevant": {"12": 2, "40": 1, "7": 0}, "k": 5, '
                    '"vector": [1, 2]}\n{"query": "other", "relevant": [3, 3]}\n')
    a, b = load_eval(path, shown="e.jsonl", default_k=10)
    assert (a.name, a.k, a.grades, a.vector) == ("pricing", 5, {"12": 2.0, "40": 1.0}, (1.0, 2.0))
    assert (b.name, b.k, b.grades, b.vector) == ("e.jsonl:2", 10, {"3": 1.0}, None)
