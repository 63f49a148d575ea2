"""The search contract: every store answers top-k queries as :mod:`vecmig.search` defines them.

A small collection (a few hundred records) is searched: on it every store's own search (an HNSW
graph with its default ef, an IVF with few lists, a scan) finds the exact answer, so the cases
compare ids and scores with numpy's exact search over the same records, for every metric the
store keeps, with and without filters. A store whose index is approximate even at this size
would fail here, which is what the query-parity gate relies on: the reference is exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.contract.harness import Store, records, store_block, vectors
from vecmig.errors import VecmigError
from vecmig.executor import apply_plan
from vecmig.filters import fields, matches
from vecmig.planner import make_plan
from vecmig.providers import rules_of
from vecmig.providers.base import Provider
from vecmig.providers.memory import store as memory
from vecmig.records import Batch
from vecmig.refresh import refresh
from vecmig.search import similarities, top_k
from vecmig.spec import StoreSpec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

N = 240
K = 10

FILTERS = [
    {"lang": "de"},
    {"year": {"$gte": 2010}},
    {"year": {"$lt": 2000}, "lang": {"$ne": "en"}},
    {"lang": {"$in": ["en", "日本語"]}},
    {"lang": {"$nin": ["en"]}},
    {"$or": [{"lang": "de"}, {"year": {"$gt": 2020}}]},
    {"$and": [{"score": {"$gte": 3.0}}, {"score": {"$lte": 20.0}}]},
    {"ok": True},
]


def _exact(batch: Batch, query: np.ndarray, metric: str, k: int, flt: dict | None = None) -> list:
    keep = [i for i, m in enumerate(batch.metadata) if matches(m, flt)]
    sub = batch.take(keep)
    return top_k(similarities(metric, sub.vectors, query)[0], sub.ids, k)


@contextlib.contextmanager
def _searching(store: Store, name: str, metric: str | None = None) -> Iterator[Provider]:
    """Collection ``name`` opened as a source. A store that may record no metric (a JSONL, CSV or
    Parquet file; a LanceDB table made with lancedb's own API, without an index) is told it in
    ``connection.metric`` (its kit's optional key), as a spec must: nothing else says which
    metric its readers use. Where the store records one, the two must agree."""
    spec = store.spec(name, "source")
    rules = rules_of(store.sut.provider)
    if rules is not None and "metric" in rules.optional_keys:
        spec = replace(spec, connection={**spec.connection, "metric": metric or store.metric(name)})
    provider = store.cls(spec)
    provider.connect()
    try:
        yield provider
    finally:
        provider.close()


def _searchable(store: Store) -> None:
    if store.caps.search == "none":
        pytest.fail(f"{store.sut.provider} declares no search: every store must answer queries "
                    "(a file store by an exact scan)")


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_query_finds_the_exact_top_k(store: Store, metric: str) -> None:
    _searchable(store)
    want = records(store, N, seed=21)
    name = store.fresh(f"q{metric[:3]}")
    try:
        try:
            store.create(name, want, metric=metric)
        except VecmigError as e:  # a store that does not offer this metric says so, by name
            assert metric in str(e) or "metric" in str(e), f"an unsupported metric is refused by name: {e}"
            store.leave_out(f"query {metric}", str(e))
            return
        store.write(name, want)
        with _searching(store, name, metric) as p:
            got_metric = p.inventory().metric or metric
            if got_metric != metric:
                store.leave_out(f"query {metric}", f"collections are created with {got_metric}")
                return
            for qi, q in enumerate(vectors(5, seed=900)):
                hits = p.query(q, K)
                exact = _exact(want, q, metric, K)
                assert [str(h.id) for h in hits] == [str(h.id) for h in exact], f"query {qi}: ids differ"
                assert all(type(h.id) is type(e.id) for h, e in zip(hits, exact, strict=True)), "id types kept"
                got = np.array([h.score for h in hits])
                ref = np.array([h.score for h in exact])
                assert np.allclose(got, ref, rtol=1e-4, atol=1e-4), f"query {qi} ({metric}): scores {got} != {ref}"
    finally:
        store.drop(name)


def test_query_of_a_stored_vector_finds_itself_first(store: Store) -> None:
    _searchable(store)
    want = records(store, 60, seed=22)
    name = store.seeded("qself", want)
    try:
        with _searching(store, name) as p:
            metric = p.inventory().metric or store.metric(name)
            for i in (0, 17, 59):
                hits = p.query(want.vectors[i], 3)
                # Under dotproduct a longer vector can outscore the query's own: the first hit
                # is then the exact search's first, not necessarily the record itself.
                first = want.ids[i] if metric != "dotproduct" else _exact(want, want.vectors[i], metric, 1)[0].id
                assert hits and str(hits[0].id) == str(first)
                assert len(hits) == 3
            assert len(p.query(want.vectors[0], 500)) == 60, "k above the count returns every record"
    finally:
        store.drop(name)


@pytest.mark.parametrize("flt", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filtered_query_matches_the_reference(store: Store, flt: dict) -> None:
    _searchable(store)
    if not store.caps.search_filters:
        pytest.fail(f"{store.sut.provider} cannot filter queries; every store must (translate vecmig.filters)")
    want = records(store, N, seed=23)
    if any(f not in m for f in fields(flt) for m in want.metadata):
        store.leave_out(f"filter {flt}", "the store does not keep a field it reads")
        return
    name = store.seeded("qflt", want)
    try:
        with _searching(store, name) as p:
            metric = p.inventory().metric or store.metric(name)
            q = vectors(1, seed=77)[0]
            hits = p.query(q, K, flt)
            exact = _exact(want, q, metric, K, flt)
            assert [str(h.id) for h in hits] == [str(h.id) for h in exact], f"filter {flt}"
    finally:
        store.drop(name)


def test_a_filter_matching_nothing_returns_nothing(store: Store) -> None:
    _searchable(store)
    want = records(store, 30, seed=24)
    name = store.seeded("qnone", want)
    try:
        with _searching(store, name) as p:
            assert p.query(want.vectors[0], K, {"year": {"$gt": 99999}}) == []
    finally:
        store.drop(name)


def test_query_of_an_empty_collection_is_empty(store: Store) -> None:
    _searchable(store)
    want = records(store, 3, seed=25)
    name = store.fresh("qempty")
    store.create(name, want)
    try:
        store.write(name, want)
        store.delete(name, want.ids)
        with _searching(store, name) as p:
            assert p.query(want.vectors[0], K) == []
    except VecmigError as e:
        if store.lacks("delete"):
            store.leave_out("query of an empty collection", store.lacks("delete") or str(e))
            return
        raise
    finally:
        store.drop(name)


# ---- the query-parity gate through the engine, with the store on each side of a pair ------------


def _with_metric(store: Store, spec: StoreSpec, metric: str) -> StoreSpec:
    rules = rules_of(store.sut.provider)
    if rules is not None and "metric" in rules.optional_keys:
        return replace(spec, connection={**spec.connection, "metric": metric})
    return spec


def _gated_apply(tmp: Path, source: dict[str, Any], target: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    text = json.dumps({
        "version": 1, "name": "gate", "state": {"path": "state.db"}, "source": source, "target": target,
        "strategy": {"type": "big-bang", "batch_size": 40, "concurrency": 2},
        "validate": {"queries": {"sample": 8, "k": 5, "seed": 3, "min_overlap": 0.9, "max_error_rate": 0.0}},
    })
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp, env={**os.environ, **env})
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
    assert state is not None
    try:
        apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve")
        row = next(r for r in state.actions(1) if r["kind"] == "validate_queries")
        assert row["status"] == "done"
        return dict(json.loads(row["result_json"]))
    finally:
        state.close()


def test_query_parity_gate_passes_a_faithful_copy_both_ways(store: Store, tmp_path: Path) -> None:
    """memory → this store, then this store → memory, each apply gated by validate.queries: the
    store answers the gate's queries as a target and as a source, and a faithful copy passes."""
    _searchable(store)
    want = records(store, 60, seed=31)
    name = store.fresh("gate")
    metric = store.metric(name)
    source = f"gate-src-{uuid.uuid4().hex[:8]}"
    back = f"gate-back-{uuid.uuid4().hex[:8]}"
    memory.get(source).seed("docs", want, metric=metric)
    try:
        env: dict[str, str] = {}
        into = _gated_apply(tmp_path / "into", {"provider": "memory", "connection": {"name": source},
                                                "collection": "docs"},
                            store_block(_with_metric(store, store.spec(name), metric), env), env)
        assert into["ok"] and into["report"]["aggregate"]["overlap"] >= 0.9, into["failures"]
        assert into["report"]["aggregate"]["error_rate_target"] == 0.0
        as_source = store_block(_with_metric(store, store.spec(name, "source"), metric), env)
        as_source.pop("create", None)  # a source is read as it is
        out_of = _gated_apply(tmp_path / "out", as_source,
                              {"provider": "memory", "connection": {"name": back}, "collection": "docs"}, env)
        assert out_of["ok"] and out_of["report"]["aggregate"]["overlap"] >= 0.9, out_of["failures"]
        assert out_of["report"]["aggregate"]["recall_source"] >= 0.9
    finally:
        store.drop(name)
        memory.get(source).collections.clear()
        memory.get(back).collections.clear()

