"""LanceDB search: the SQL ``where`` a filter becomes selects exactly the records
``vecmig.filters.matches`` passes (random filters over typed columns with the values where SQL
and Python part ways), what SQL cannot say goes through ``matches`` as an id prefilter, and a
table's metric comes from its index, vecmig's mark, or the spec, or is refused in one line."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from tests.support.filters import BOOLS, FLOATS, INTS, STRINGS, random_filter
from vecmig.errors import TerminalError
from vecmig.filters import check, matches
from vecmig.providers.lancedb import search
from vecmig.providers.lancedb.provider import LanceDBProvider
from vecmig.search import similarities, top_k
from vecmig.spec import StoreSpec

N = 300
DIM = 8
TEXTS = [*STRINGS, "it's", "back\\slash", "ZZ", "~", "\u00ff", "\U0001f642"]


def table(root: Path, name: str, rng: random.Random, *, metric: str | None = "euclidean") -> np.ndarray:
    vectors = np.random.default_rng(rng.randrange(1000)).standard_normal((N, DIM)).astype(np.float32)

    def maybe(values: list[Any]) -> Any:
        return None if rng.random() < 0.2 else rng.choice(values)

    in_range = [i for i in INTS if -(2**63) <= i < 2**63]
    data = pa.table({
        "id": pa.array(range(N), pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIM),
        "i": pa.array([maybe(in_range) for _ in range(N)], pa.int64()),
        "i32": pa.array([maybe([0, 1, -1, 5, 7, 2**31 - 1]) for _ in range(N)], pa.int32()),
        "f": pa.array([maybe([*FLOATS, math.nan, -math.inf, 2.5000000000000004]) for _ in range(N)], pa.float64()),
        "f32": pa.array([maybe([0.0, 0.1, 0.5, 2.5]) for _ in range(N)], pa.float32()),
        "b": pa.array([maybe(BOOLS) for _ in range(N)], pa.bool_()),
        "s": pa.array([maybe(TEXTS) for _ in range(N)], pa.string()),
        "tags": pa.array([None if rng.random() < 0.2 else [rng.choice(TEXTS) for _ in range(rng.randint(0, 3))]
                          for _ in range(N)], pa.list_(pa.string())),
    })
    if metric is not None:
        data = data.replace_schema_metadata({b"vecmig.metric": metric.encode()})
    lancedb.connect(str(root)).create_table(name, data=data)
    return vectors


def provider(root: Path, name: str, metric: str | None = None) -> LanceDBProvider:
    connection: dict[str, Any] = {"path": str(root)}
    if metric is not None:
        connection["metric"] = metric
    return LanceDBProvider(StoreSpec(provider="lancedb", connection=connection, collection=name, pointer="/source"))


def test_filters_as_sql_select_what_matches_passes(tmp_path: Path) -> None:
    rng = random.Random(11)
    table(tmp_path, "typed", rng)
    p = provider(tmp_path, "typed")
    t = p._need()
    layout = p._layout_of(t)
    rows = t.search().select(["id", *layout.meta_columns]).limit(None).to_arrow().to_batches()
    metadata = {rid: m for rb in rows for rid, m in zip(rb.column("id").to_pylist(), layout.metadata(rb, 0),
                                                         strict=True)}
    names = {"i": INTS, "i32": INTS, "f": FLOATS, "b": BOOLS, "s": TEXTS, "missing": STRINGS}
    translated = 0
    for _ in range(500):
        flt = random_filter(rng, names)
        check(flt)
        want = {rid for rid, m in metadata.items() if matches(m, flt)}
        try:
            condition = search.where(layout, flt)
        except search.Untranslatable:
            continue  # an infinite argument: the id prefilter's case, tested below
        translated += 1
        got = set(t.search().where(condition).select(["id"]).limit(None).to_arrow().column("id").to_pylist())
        assert got == want, f"{json.dumps(flt)} -> {condition}: extra {sorted(got - want)[:5]}, " \
                            f"missing {sorted(want - got)[:5]}"
    assert translated > 400, "nearly every filter over these columns becomes SQL"
    # Through query itself, the SQL and the id-prefilter paths alike (k = every record).
    q = np.ones(DIM, np.float32)
    for flt in ({"s": {"$gte": "b"}}, {"f": {"$lt": math.inf}}, {"f32": 0.1}, {"tags": {"$in": ["a", "it's"]}},
                {"$or": [{"tags": "ZZ"}, {"i": {"$gt": 2**53}}]}):
        with pytest.raises(search.Untranslatable) if not _translatable(layout, flt) else _nothing():
            search.where(layout, flt)
        want = {rid for rid, m in metadata.items() if matches(m, flt)}
        assert {h.id for h in p.query(q, N, flt)} == want, json.dumps(flt)


def _translatable(layout: Any, flt: dict[str, Any]) -> bool:
    try:
        search.where(layout, flt)
    except search.Untranslatable:
        return False
    return True


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_an_index_decides_the_metric_and_settings_show_it(tmp_path: Path, metric: str) -> None:
    vectors = table(tmp_path, "indexed", random.Random(3), metric=None)
    t = lancedb.connect(str(tmp_path)).open_table("indexed")
    from lancedb.index import IvfFlat

    t.create_index("vector", config=IvfFlat(distance_type=search.indexing.distance(metric), num_partitions=4))
    p = provider(tmp_path, "indexed")
    settings = p.search_settings()
    assert settings == {"type": "ivfflat", "name": "vector_idx", "metric": metric, "num_indexed_rows": N,
                        "num_unindexed_rows": 0, "nprobes": None, "refine_factor": None, "ef": None}
    q = vectors[10]
    hits = p.query(q, 5)
    assert hits[0].id == 10 or metric == "dotproduct", "a stored vector finds itself first"
    want = similarities(metric, vectors[[h.id for h in hits]], q)[0]
    assert np.allclose([h.score for h in hits], want, atol=1e-4), "_distance converted to the similarity"
    exact = top_k(similarities(metric, vectors, q)[0], list(range(N)), 5)
    assert {h.id for h in hits} & {h.id for h in exact}, "the index finds neighbours"
    clash = "cosine" if metric != "cosine" else "euclidean"
    with pytest.raises(TerminalError, match=f"is searched by {metric}, but connection.metric says {clash}"):
        provider(tmp_path, "indexed", clash).query(q, 5)


def test_a_table_without_metric_needs_one_declared(tmp_path: Path) -> None:
    vectors = table(tmp_path, "bare", random.Random(4), metric=None)
    with pytest.raises(TerminalError) as err:
        provider(tmp_path, "bare").query(vectors[0], 3)
    line = err.value.one_line()
    assert "\n" not in line and "records no metric" in line and "source.connection.metric: cosine" in line
    hits = provider(tmp_path, "bare", "dotproduct").query(vectors[0], 3)
    want = top_k(similarities("dotproduct", vectors, vectors[0])[0], list(range(N)), 3)
    assert [h.id for h in hits] == [h.id for h in want]
    assert np.allclose([h.score for h in hits], [h.score for h in want], atol=1e-4)
