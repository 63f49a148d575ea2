"""Each store's names for an index, to and from vecmig.indexes' neutral shape (pure functions), and
what a pgvector index comment may SET (only its own two settings, integer values)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from vecmig.providers.chroma import indexinfo as chroma
from vecmig.providers.lancedb import indexsettings as lance
from vecmig.providers.milvus import indexsettings as milvus
from vecmig.providers.pgvector import indexsettings as pg
from vecmig.providers.qdrant import indexinfo as qdrant
from vecmig.spec import IndexSpec


def test_pgvector_comment_round_trips_and_sets_nothing_else() -> None:
    assert pg.comment_text(IndexSpec(ef_search=40)) == "vecmig: hnsw.ef_search=40"
    assert pg.comment_text(IndexSpec(type="ivfflat", probes=3)) == "vecmig: ivfflat.probes=3"
    assert pg.comment_text(IndexSpec()) is None, "no setting asked: no comment"
    assert pg.parse_comment("vecmig: hnsw.ef_search=40") == {"hnsw.ef_search": 40}
    for hostile in ("vecmig: statement_timeout=0", "vecmig: hnsw.ef_search=40; DROP TABLE x",
                    "vecmig: hnsw.ef_search=-1", "someone's comment", None):
        assert pg.parse_comment(hostile) == {}, hostile
    said = pg.reader_settings(IndexSpec(ef_search=64))
    assert said is not None and "SET hnsw.ef_search = 64" in said and "ALTER DATABASE" in said
    assert pg.reader_settings(IndexSpec()) is None


def test_milvus_names_and_the_recorded_index() -> None:
    record = milvus.to_record(IndexSpec(m=12, ef_construction=48, ef_search=90))
    assert record is not None
    kept = milvus.stored({milvus.PROPERTY: record})
    assert kept == {"type": "hnsw", "m": 12, "ef_construction": 48, "ef_search": 90}
    assert milvus.search_params(kept) == {"ef": 90}
    assert milvus.search_params(milvus.stored({milvus.PROPERTY: milvus.to_record(
        IndexSpec(type="ivfflat", lists=8, probes=2))})) == {"nprobe": 2}
    # A server that describes its params wins; the record fills in what it does not say.
    assert milvus.neutral("hnsw", {"M": "16", "efConstruction": "64"}, kept) == {
        "m": 16, "ef_construction": 64, "ef_search": 90}
    assert milvus.neutral("ivfflat", {"nlist": "128"}, kept) == {"lists": 128}, "a record of another type is ignored"
    assert milvus.stored({milvus.PROPERTY: "not json"}) == {}
    assert "search_params" in (milvus.reader_settings(IndexSpec(ef_search=5)) or "")


def test_lancedb_names_and_the_recorded_index() -> None:
    config = SimpleNamespace(index_details={"hnsw": {"max_connections": 20, "construction_ef": 150}})
    assert lance.neutral(config, "hnsw", {}) == {"m": 20, "ef_construction": 150}
    assert lance.neutral(config, "hnsw", {"type": "hnsw", "ef_search": 33}) == {
        "m": 20, "ef_construction": 150, "ef_search": 33}
    assert json.loads(lance.to_record(IndexSpec(type="ivfflat", probes=4), {"lists": 7}) or "") == {
        "type": "ivfflat", "lists": 7, "probes": 4}
    assert lance.to_record(IndexSpec(type="none"), {}) is None
    assert ".nprobes(4)" in (lance.reader_settings(IndexSpec(type="ivfflat", probes=4)) or "")


def test_qdrant_hnsw_config_with_a_per_vector_override_and_m_zero() -> None:
    def info(m: int, ef: int, vectors: object) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(hnsw_config=SimpleNamespace(m=m, ef_construct=ef),
                                                      params=SimpleNamespace(vectors=vectors)))

    assert qdrant.index_of(info(16, 100, SimpleNamespace(hnsw_config=None)), None) == {
        "type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 100}
    named = {"text": SimpleNamespace(hnsw_config=SimpleNamespace(m=32, ef_construct=None))}
    assert qdrant.index_of(info(16, 100, named), "text") == {"type": "hnsw", "m": 32, "ef_construction": 100,
                                                              "ef_search": 100}
    assert qdrant.index_of(info(0, 100, SimpleNamespace(hnsw_config=None)), None) == {"type": "flat"}


def test_chroma_configuration_then_legacy_metadata_then_defaults() -> None:
    assert chroma.index_of(None, None) == {"type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 100}
    assert chroma.index_of(None, {"hnsw:M": 8, "hnsw:search_ef": 12}) == {
        "type": "hnsw", "m": 8, "ef_construction": 100, "ef_search": 12}
    assert chroma.index_of({"hnsw": {"max_neighbors": 24, "ef_search": 50}}, {"hnsw:M": 8})["m"] == 24
    assert chroma.index_of({"spann": {"space": "cosine"}}, None) == {"type": "spann"}
