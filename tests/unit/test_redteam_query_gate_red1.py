"""Red-team findings on validate.queries (red1): query files and filters that compared nothing.

- a query file's ``NaN``/``Infinity`` (Python's json reads them; JSON has none) in a filter:
  ``{"n": {"$gt": NaN}}`` matched nothing on either side, both empty answers "agreed" (overlap
  1.0) and the gate passed having compared nothing; YAML's ``.nan`` in the spec's filter too;
- a key repeated in one query line (``{"lang": "en", "lang": "de"}``) silently kept the last;
- ``expected: [4, 4, 4]`` with 4 in the top-k scored recall 0.33 (the duplicates counted as
  missing relevant records).
"""

from __future__ import annotations

import pytest

from vecmig.errors import SpecError
from vecmig.filters import FilterError, check
from vecmig.quality import metrics
from vecmig.quality.queries import parse_query
from vecmig.search import Hit


@pytest.mark.parametrize("line", [
    '{"vector": [1, 0], "filter": {"n": {"$gt": NaN}}}',
    '{"vector": [1, 0], "filter": {"n": {"$in": [1, NaN]}}}',
    '{"vector": [1, 0], "filter": {"n": NaN}}',
    '{"vector": [1, NaN]}',
])
def test_nan_in_a_query_line_is_refused(line: str) -> None:
    with pytest.raises(SpecError, match=r"q\.jsonl:1: NaN is not JSON"):
        parse_query(line, "q.jsonl:1", 10, 2)


def test_infinity_stays_a_filter_bound() -> None:
    q = parse_query('{"vector": [1, 0], "filter": {"n": {"$lt": Infinity, "$gt": -Infinity}}}', "q:1", 10, 2)
    assert q.filter == {"n": {"$lt": float("inf"), "$gt": float("-inf")}}
    with pytest.raises(SpecError, match="finite"):
        parse_query('{"vector": [1, Infinity]}', "q:1", 10, 2)


@pytest.mark.parametrize("flt", [{"n": float("nan")}, {"n": {"$gt": float("nan")}},
                                 {"n": {"$nin": [float("nan")]}}])
def test_nan_filter_values_are_refused(flt: dict) -> None:
    with pytest.raises(FilterError):
        check(flt)


@pytest.mark.parametrize("line", [
    '{"vector": [1, 0], "filter": {"lang": "en", "lang": "de"}}',
    '{"vector": [1, 0], "k": 3, "k": 5}',
])
def test_a_key_repeated_in_a_query_line_is_refused(line: str) -> None:
    with pytest.raises(SpecError, match="appears twice"):
        parse_query(line, "q.jsonl:1", 10, 2)


def test_an_expected_id_listed_twice_counts_once() -> None:
    got = [Hit(id=4, score=1.0), Hit(id=1, score=0.9), Hit(id=6, score=0.8)]
    assert metrics.recall(got, [4, 4, 4], 3) == 1.0
    assert metrics.recall(got, [4, "4", 9, 4], 3) == 0.5


def test_the_report_names_the_k_its_queries_were_measured_at() -> None:
    """Spec k 4 and a file's queries at 3 and 5: the report said "recall@5"/"overlap@5" for all."""
    import numpy as np

    from vecmig.quality.compare import Gate, compare
    from vecmig.quality.queries import Query
    from vecmig.quality.report import render_markdown
    from vecmig.quality.runner import Answer

    qs = [Query(name=f"q{k}", vector=(1.0, 0.0), k=k) for k in (3, 4, 5)]
    hits = [Hit(id=i, score=1.0 - i / 10) for i in range(5)]
    src = [Answer(hits=hits[:q.k], seconds=0.001) for q in qs]
    tgt = [Answer(hits=list(reversed(hits))[:q.k], seconds=0.001) for q in qs]
    report = compare(qs, src, tgt, [hits[:q.k] for q in qs])
    text = render_markdown(report.to_json(), title="t", failures=[])
    assert "@5" not in text and "recall@3–5 vs exact" in text and "overlap@3–5 of" in text
    failures = Gate(min_overlap=0.99).check(report)
    assert failures and failures[0].startswith("overlap@3–5 ")
    one = compare(qs[:1], src[:1], src[:1], None)
    assert "recall@3 vs exact" in render_markdown(one.to_json(), title="t")
    none = compare([], [], [], [])
    assert "@0" not in render_markdown(none.to_json(), title="t", failures=[])
    assert np.isfinite(report.aggregate["overlap"])



def test_a_source_whose_every_query_failed_fails_the_gate() -> None:
    """JSONL source without connection.metric: every source query failed ("records no metric"),
    overlap and the recall drop were None, and the gate passed (apply switched)."""
    from vecmig.actions.validate_queries import gate_failures
    from vecmig.quality.compare import Gate, compare
    from vecmig.quality.queries import Query
    from vecmig.quality.runner import Answer

    qs = [Query(name=f"q{i}", vector=(1.0, 0.0), k=2) for i in range(3)]
    hits = [Hit(id=1, score=1.0), Hit(id=2, score=0.5)]
    src = [Answer(error="/source/connection: records no metric, so it cannot be searched") for _ in qs]
    tgt = [Answer(hits=[Hit(id=2, score=0.5), Hit(id=9, score=0.1)], seconds=0.001) for _ in qs]
    report = compare(qs, src, tgt, [hits for _ in qs])
    failures = gate_failures(Gate(min_overlap=0.9, max_recall_drop=0.05, max_error_rate=0.0), report, {})
    assert any("source queries failed" in f and "records no metric" in f for f in failures)
    # not gating errors does not make an unmeasured overlap pass either
    failures = gate_failures(Gate(min_overlap=0.9), report, {})
    assert failures and failures[0].startswith("min_overlap could not be measured")
    # an empty comparison (a source holding no records) still passes: nothing to compare
    assert gate_failures(Gate(min_overlap=0.9, max_recall_drop=0.05, max_error_rate=0.0),
                         compare([], [], [], []), {}) == []


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_file_store_without_a_metric_is_refused_by_the_plan(tmp_path, side: str) -> None:
    """Before: planned and copied, then every query of the metric-less file failed (and the gate,
    not looking at source errors, passed)."""
    import json as _json

    from tests.support.cli import vecmig

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in range(5):
            f.write(_json.dumps({"id": i, "vector": [1.0, float(i)], "metadata": {}}) + "\n")
    src = "{path: src.jsonl}" if side == "source" else "{path: src.jsonl, metric: cosine}"
    tgt = "{path: out.csv}" if side == "target" else "{path: out.csv, metric: cosine}"
    (tmp_path / "s.yaml").write_text(
        f"version: 1\nname: s\nstate: {{path: s.db}}\nsource: {{provider: jsonl, connection: {src}}}\n"
        f"target: {{provider: csv, connection: {tgt}}}\nstrategy: {{type: big-bang}}\n"
        "validate: {queries: {sample: 3}}\n")
    r = vecmig("plan", str(tmp_path / "s.yaml"))
    assert r.returncode != 0 and f"{side}.connection.metric: cosine" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_sample_larger_than_the_source_is_planned_as_every_record(tmp_path) -> None:
    """Before: "100,000 sampled queries" planned (and timed) for a 5-record source; 5 ran."""
    import json as _json

    from tests.support.cli import vecmig

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in range(5):
            f.write(_json.dumps({"id": i, "vector": [1.0, float(i)], "metadata": {}}) + "\n")
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\nstate: {path: s.db}\n"
        "source: {provider: jsonl, connection: {path: src.jsonl, metric: cosine}}\n"
        "target: {provider: csv, connection: {path: out.csv, metric: cosine}}\nstrategy: {type: big-bang}\n"
        "validate: {queries: {sample: 100000}}\n")
    r = vecmig("plan", str(tmp_path / "s.yaml"))
    assert r.returncode == 0, r.stderr
    assert "100,000 sampled" not in r.stdout and "5 sampled queries" in r.stdout, r.stdout


def test_apply_after_success_on_a_small_lancedb_table_changes_nothing(tmp_path) -> None:
    """Before: every plan of a LanceDB target under 200 rows held build_index.target (which builds
    nothing there, LD001), so apply after success ran again and plan never said "No changes"."""
    import json as _json

    pytest.importorskip("lancedb")
    from tests.support.cli import vecmig

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in range(12):
            f.write(_json.dumps({"id": i, "vector": [1.0, float(i)], "metadata": {"n": i}}) + "\n")
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\nstate: {path: s.db}\n"
        "source: {provider: jsonl, connection: {path: src.jsonl, metric: cosine}}\n"
        "target: {provider: lancedb, connection: {path: ld}, collection: docs,\n"
        "         create: {metric: cosine, index: {type: hnsw, m: 16, ef_construction: 64}}}\n"
        "strategy: {type: big-bang}\nvalidate: {queries: {sample: 4, k: 3}}\n")
    spec = str(tmp_path / "s.yaml")
    r = vecmig("apply", spec, "--auto-approve")
    assert r.returncode == 0, r.stderr
    r = vecmig("plan", spec)
    assert r.returncode == 0 and "build_index" not in r.stdout and "No changes" in r.stdout, r.stdout


@pytest.mark.parametrize("key", ["min_overlap", "min_recall", "max_recall_drop", "max_score_diff",
                                 "max_error_rate", "max_latency_ratio"])
def test_a_nan_threshold_is_refused(tmp_path, key: str) -> None:
    """Before: `min_overlap: .nan` passed the schema's bounds and then never failed (x < nan is
    false): the gate was silently off."""
    from vecmig.spec_loader import load_spec_text

    text = ("version: 1\nname: s\nstate: {path: s.db}\n"
            "source: {provider: jsonl, connection: {path: src.jsonl, metric: cosine}}\n"
            "target: {provider: csv, connection: {path: out.csv, metric: cosine}}\nstrategy: {type: big-bang}\n"
            f"validate: {{queries: {{sample: 3, {key}: .nan}}}}\n")
    with pytest.raises(SpecError, match=f"validate.queries.{key} is .nan"):
        load_spec_text(text, file="s.yaml", base_dir=tmp_path)


@pytest.mark.parametrize("extra", [
    "strategy: {type: parallel-run, replay: {file: q.jsonl, queries: 10}, gate: {min_overlap: .nan}}\n",
    "strategy: {type: parallel-run, replay: {file: q.jsonl, queries: 10}, gate: {min_overlap: 0.5}}\n"
    "rollback_on: {min_overlap: .nan, queries: {sample: 5}, interval: 30s}\n",
])
def test_a_nan_parallel_run_gate_or_trigger_is_refused(tmp_path, extra: str) -> None:
    """Before: `gate: {min_overlap: .nan}` was planned as "gated on min_overlap nan" and never failed."""
    from vecmig.spec_loader import load_spec_text

    (tmp_path / "q.jsonl").write_text('{"vector": [1, 0]}\n')
    text = ("version: 1\nname: s\nstate: {path: s.db}\n"
            "source: {provider: jsonl, connection: {path: src.jsonl, metric: cosine}}\n"
            "target: {provider: lancedb, connection: {path: ld}, collection: docs, pointer: {file: p.json}}\n"
            + extra)
    with pytest.raises(SpecError, match=r"min_overlap (is \.nan|must be a finite number, not nan)"):
        load_spec_text(text, file="s.yaml", base_dir=tmp_path)


def test_queries_that_all_find_nothing_on_both_sides_fail_the_gate() -> None:
    """Before: a filter on a field no record holds made every answer empty on both sides; empty
    answers agree (overlap 1.0), and the gate passed having compared nothing."""
    from vecmig.actions.validate_queries import all_empty
    from vecmig.quality.queries import Query
    from vecmig.quality.runner import Answer

    qs = [Query(name=f"q{i}", vector=(1.0, 0.0), k=2, filter={"lang": "de"}) for i in range(3)]
    empty = [Answer(seconds=0.001) for _ in qs]
    assert all_empty(qs, empty, empty) and "nothing was compared" in all_empty(qs, empty, empty)[0]
    one = [Answer(seconds=0.001), Answer(hits=[Hit(id=1, score=1.0)]), Answer()]
    assert all_empty(qs, empty, one) == [] and all_empty(qs, one, one) == []
    assert all_empty([], [], []) == []
