"""Chroma search: the where translation on random metadata and filters against
vecmig.filters.matches, against a real ``chroma run`` server; what Chroma cannot say is refused
by operator; scores and settings as Chroma's HNSW collection has them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.chroma import ChromaServer, chroma_server
from tests.support.random_filters import Shape, check_store, records, write
from vecmig.providers.chroma.provider import ChromaProvider
from vecmig.spec import CreateSpec, StoreSpec

pytestmark = pytest.mark.integration
SHAPE = Shape(exists=False, string_ranges=False, empty_lists=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as srv:
        yield srv


def provider(srv: ChromaServer, name: str, metric: str = "euclidean") -> ChromaProvider:
    return ChromaProvider(StoreSpec("chroma", {"host": srv.host, "port": srv.port}, collection=name,
                                    create=CreateSpec(metric=metric), pointer="/target", base_dir=Path(".")))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1])
def test_random_filters_match_the_reference(server: ChromaServer, seed: int) -> None:
    batch = records(150, seed, SHAPE)
    p = provider(server, f"rnd-{seed}")
    p.connect()
    try:
        write(p, batch)
        assert check_store(p, batch, seed, SHAPE) > 20, "most filters select a proper subset"
    finally:
        p.drop_collection()
        p.close()




def test_scores_settings_and_k_above_the_count(server: ChromaServer) -> None:
    for metric in ("cosine", "euclidean", "dotproduct"):
        batch = records(20, 5, SHAPE)
        p = provider(server, f"sc-{metric}", metric)
        p.connect()
        try:
            write(p, batch, metric)
            hits = p.query(batch.vectors[3], 100)
            assert len(hits) == 20
            v, q = batch.vectors.astype(np.float64), batch.vectors[3].astype(np.float64)
            want = {"cosine": v @ q / np.linalg.norm(v, axis=1) / np.linalg.norm(q), "dotproduct": v @ q,
                    "euclidean": -np.linalg.norm(v - q, axis=1)}[metric]
            got = {str(h.id): h.score for h in hits}
            assert np.allclose([got[str(i)] for i in batch.ids], want, atol=1e-4)
            settings = p.search_settings()
            assert settings["index_type"] == "hnsw" and settings["space"] == {"cosine": "cosine", "euclidean": "l2",
                                                                              "dotproduct": "ip"}[metric]
            assert isinstance(settings["ef_search"], int) and isinstance(settings["m"], int)
        finally:
            p.drop_collection()
            p.close()


def test_int_ids_come_back_as_ints(server: ChromaServer) -> None:
    batch = records(12, 9, SHAPE)
    batch.ids = list(range(100, 112))
    p = provider(server, "int-ids")
    p.connect()
    try:
        write(p, batch)
        hits = p.query(batch.vectors[0], 3)
        assert hits[0].id == 100 and all(type(h.id) is int for h in hits)
    finally:
        p.drop_collection()
        p.close()
