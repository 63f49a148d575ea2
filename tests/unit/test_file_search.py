"""Exact search over the file stores (``providers/files/search.py``): batch by batch, the same
answer as one numpy pass over every record; a metric declared in the spec (the files record
none), or refused in one line that says how to declare it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecmig.errors import TerminalError, VecmigError
from vecmig.filters import matches
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.providers.files import search
from vecmig.records import Batch
from vecmig.search import similarities, top_k
from vecmig.spec import StoreSpec
from vecmig.spec_loader import load_spec_text

N = 700


def batch(n: int = N, dim: int = 6) -> Batch:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors[5] = vectors[4]  # a tie: the earlier record wins, as in exact search
    return Batch(ids=[f"r{i:04d}" for i in range(n)], vectors=vectors,
                 metadata=[{"g": i % 3, "s": "ab"[i % 2]} for i in range(n)], texts=None)


def written(tmp_path: Path, provider: str, records: Batch, metric: str | None) -> StoreSpec:
    connection: dict[str, str] = {"path": str(tmp_path / ("vdf" if provider == "vdf" else f"f.{provider}"))}
    if metric is not None:
        connection["metric"] = metric
    spec = StoreSpec(provider=provider, connection=connection, collection="idx" if provider == "vdf" else None,
                     pointer="/source", base_dir=tmp_path)
    p = provider_class(provider)(spec)
    p.create_collection(CollectionSchema(dimension=6, metric="euclidean", id_type="text", metadata={"g": "int",
                                                                                                   "s": "text"}))
    p.upsert(records)
    p.finalize()
    return spec


@pytest.mark.parametrize("provider", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_batches_find_what_one_pass_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str,
                                          metric: str) -> None:
    monkeypatch.setattr(search, "BATCH", 64)  # many batches: the merge is what is tested
    records = batch()
    p = provider_class(provider)(written(tmp_path, provider, records, metric))
    assert p.inventory().metric == metric, "the declared metric is the file's, in the inventory too"
    for flt in (None, {"g": 1}, {"$or": [{"s": "a"}, {"g": {"$gte": 2}}]}):
        keep = [i for i, m in enumerate(records.metadata) if matches(m, flt)]
        sub = records.take(keep)
        for q in (records.vectors[4], records.vectors[100] * 2, np.ones(6, np.float32)):
            want = top_k(similarities(metric, sub.vectors, q)[0], sub.ids, 25)
            got = p.query(q, 25, flt)
            assert [h.id for h in got] == [h.id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want])
    assert p.search_settings() == {"type": "exact", "metric": metric}


@pytest.mark.parametrize("provider", ["jsonl", "csv", "parquet"])
def test_a_file_without_a_declared_metric_is_refused_in_one_line(tmp_path: Path, provider: str) -> None:
    p = provider_class(provider)(written(tmp_path, provider, batch(10), None))
    assert p.inventory().metric is None
    with pytest.raises(TerminalError) as err:
        p.query(np.ones(6, np.float32), 3)
    line = err.value.one_line()
    assert "\n" not in line and "records no metric" in line and "source.connection.metric: cosine" in line


def test_vdf_searches_by_the_metric_its_meta_records(tmp_path: Path) -> None:
    records = batch(50)
    spec = written(tmp_path, "vdf", records, None)
    p = provider_class("vdf")(spec)
    want = top_k(similarities("euclidean", records.vectors, records.vectors[9])[0], records.ids, 5)
    assert [h.id for h in p.query(records.vectors[9], 5)] == [h.id for h in want]
    clash = provider_class("vdf")(StoreSpec(provider="vdf", connection={**spec.connection, "metric": "cosine"},
                                            collection="idx", pointer="/source", base_dir=tmp_path))
    with pytest.raises(TerminalError, match=r"records metric euclidean, but connection\.metric says cosine"):
        clash.query(records.vectors[9], 5)


def test_the_spec_declares_a_file_metric_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    text = ("version: 1\nname: m\nsource: {provider: jsonl, connection: {path: in.jsonl, metric: %s}}\n"
            "target: {provider: memory, connection: {name: t}, collection: c}\n")
    assert load_spec_text(text % "dotproduct", base_dir=tmp_path).source.connection["metric"] == "dotproduct"
    with pytest.raises(VecmigError) as err:
        load_spec_text(text % "manhattan", base_dir=tmp_path)
    assert "/source/connection/metric must be one of cosine, euclidean, dotproduct" in str(err.value)
