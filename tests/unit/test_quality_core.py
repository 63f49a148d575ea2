"""The query-parity core on the memory store: sampling, exact answers, measures and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vecmig.errors import SpecError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.memory import store as registry
from vecmig.providers.memory.provider import MemoryProvider
from vecmig.quality import Gate, Query, compare, load_queries, run_queries, sample_queries
from vecmig.quality.exact import exact_answers
from vecmig.quality.metrics import overlap, percentile, rank_correlation, recall
from vecmig.quality.report import render_markdown
from vecmig.quality.runner import Call
from vecmig.records import Batch
from vecmig.search import Hit, similarities, top_k
from vecmig.spec import StoreSpec

DIM = 12


def _store(name: str, n: int = 600, **knobs: object) -> callable:
    registry.reset()
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    batch = Batch(ids=list(range(n)), vectors=vectors, metadata=[{"g": i % 3, "tag": f"t{i % 5}"} for i in range(n)])
    for coll in ("src", "dst"):
        p = MemoryProvider(StoreSpec("memory", {"name": name}, collection=coll))
        p.create_collection(CollectionSchema(DIM, "euclidean", "int"))
        p.upsert(batch)

    def open_(coll: str, **kn: object):
        return lambda: MemoryProvider(StoreSpec("memory", {"name": name, **kn}, collection=coll))
    return open_


def test_sample_is_deterministic_and_independent_of_scan_order() -> None:
    rng = np.random.default_rng(1)
    b = Batch(ids=list(range(100)), vectors=rng.standard_normal((100, 4)).astype(np.float32), metadata=[{}] * 100)
    one = sample_queries([b], 7, seed=5, k=3)
    rev = sample_queries([b.take(range(99, -1, -1))], 7, seed=5, k=3)
    assert [q.name for q in one] == [q.name for q in rev]
    assert [q.name for q in sample_queries([b], 7, seed=6, k=3)] != [q.name for q in one]
    assert all(np.array_equal(q.array(), b.vectors[q.source_id]) for q in one)


def test_exact_answers_match_a_direct_scoring_with_filters() -> None:
    rng = np.random.default_rng(2)
    v = rng.standard_normal((500, 6)).astype(np.float32)
    b = Batch(ids=list(range(500)), vectors=v, metadata=[{"g": i % 4} for i in range(500)])
    qs = [Query("a", tuple(v[1].tolist()), 8), Query("b", tuple(v[2].tolist()), 5, {"g": {"$in": [1, 2]}})]
    chunks = [b.take(range(i, min(i + 64, 500))) for i in range(0, 500, 64)]
    got = exact_answers(chunks, qs, "cosine")
    want = top_k(similarities("cosine", v, v[1])[0], list(range(500)), 8)
    assert [h.id for h in got[0]] == [h.id for h in want]
    assert [h.score for h in got[0]] == pytest.approx([h.score for h in want], abs=1e-12)
    keep = [i for i in range(500) if i % 4 in (1, 2)]
    assert [h.id for h in got[1]] == [keep[j] for j in np.argsort(-similarities("cosine", v[keep], v[2])[0],
                                                                   kind="stable")[:5]]


def test_measures() -> None:
    a = [Hit(i, 1.0 - i / 10) for i in range(5)]
    b = [Hit(i, 1.0 - i / 10) for i in (0, 1, 2, 9, 8)]
    assert overlap(a, b, 5) == pytest.approx(0.6)
    assert overlap([], [], 5) == 1.0
    assert recall(b, a, 5) == pytest.approx(0.6)
    assert recall(a, ["0", 1], 5) == 1.0  # ids compare by text: 1 and "1" are one record
    assert rank_correlation(a, list(reversed(a)), 5) == pytest.approx(-1.0)
    assert percentile([1, 2, 3, 4, 100], 95) == 100 and percentile([], 50) is None


def test_gate_catches_a_poor_index_and_names_why(tmp_path: Path) -> None:
    open_ = _store("gate")
    src = open_("src")
    qs = sample_queries(src().scan(None, None, 200), 25, seed=0, k=10)
    calls = [Call(q.array(), q.k, q.filter) for q in qs]
    exact = exact_answers(src().scan(None, None, 200), qs, "euclidean")
    good = compare(qs, run_queries(src, calls, concurrency=3), run_queries(open_("dst"), calls, concurrency=2), exact)
    gate = Gate(min_overlap=0.95, min_recall=0.9, max_error_rate=0.0)
    assert gate.check(good) == []
    assert good.aggregate["overlap"] == 1.0 and good.aggregate["recall_target"] == 1.0
    poor = compare(qs, run_queries(src, calls, concurrency=2),
                   run_queries(open_("dst", search_noise=0.4), calls, concurrency=2), exact)
    failures = gate.check(poor, {"type": "ivfflat", "lists": 1000, "probes": 1})
    assert len(failures) == 2
    assert failures[1].startswith("recall@10 0.60 < 0.9 on target: ivfflat lists=1000 probes=1; raise probes")
    md = render_markdown(poor.to_json(per_query=5), title="Query parity", failures=failures)
    assert "**Gate: failed**" in md and "| recall@10 vs exact | 1.000 | 0.600 |" in md
    assert json.loads(json.dumps(poor.to_json()))["queries_total"] == 25


def test_query_file_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"vector": [1, 2, 3], "k": 2, "expected": [1, "a"]}\n\n{"vector": [1, 2], "k": 2}\n')
    with pytest.raises(SpecError, match=r"q.jsonl:3: vector has 2 dimensions; the collection has 3"):
        load_queries(f, shown="q.jsonl", default_k=10, dimension=3)
    f.write_text('{"vector": [1, 2, 3], "filter": {"a": {"$regex": "x"}}}\n')
    with pytest.raises(SpecError, match=r"q.jsonl:1: filter: unknown operator \$regex"):
        load_queries(f, shown="q.jsonl", default_k=10, dimension=3)
    f.write_text('{"vector": [1, 2, 3], "vektor": 1}\n')
    with pytest.raises(SpecError, match="unknown key 'vektor'"):
        load_queries(f, shown="q.jsonl", default_k=10, dimension=3)
    f.write_text('{"vector": [1, 2, 1e39]}\n')
    with pytest.raises(SpecError, match="not a finite float32"):
        load_queries(f, shown="q.jsonl", default_k=10, dimension=3)
    f.write_text('{"vector": [1, 2, 3], "id": "q1", "expected": [7]}\n')
    (q,) = load_queries(f, shown="q.jsonl", default_k=4, dimension=3)
    assert (q.name, q.k, q.expected) == ("q1", 4, (7,))
