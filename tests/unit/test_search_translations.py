"""The search filter translations and the Pinecone query cost, without a server: the shapes
each store is sent, and what each refuses by operator (the per-store tests in tests/ run random
filters against the real or local servers)."""

from __future__ import annotations

import pytest

from vecmig.errors import TerminalError
from vecmig.providers.chroma.search import where
from vecmig.providers.milvus.layout import Layout
from vecmig.providers.milvus.search import expression
from vecmig.providers.pinecone import PineconeProvider, pricing
from vecmig.providers.pinecone.search import pinecone_filter
from vecmig.providers.qdrant.search import build as qdrant_build
from vecmig.spec import StoreSpec

API_KEY = "unit-key"
LAYOUT = Layout(pk="id", pk_int=False, vector="vector", dimension=4, text=None, metadata="metadata", scalars={},
                dynamic=False)


def test_chroma_refuses_what_it_cannot_say_by_operator() -> None:
    with pytest.raises(TerminalError, match=r"\$exists"):
        where({"a": {"$exists": True}})
    with pytest.raises(TerminalError, match=r"\$gt"):
        where({"a": {"$gt": "m"}})


def test_chroma_translation_shapes() -> None:
    assert where({"a": 1, "b": "x"}) == {"$and": [
        {"$or": [{"a": {"$eq": 1}}, {"a": {"$contains": 1}}, {"a": {"$contains": 1.0}}]},
        {"$or": [{"b": {"$eq": "x"}}, {"b": {"$contains": "x"}}]}]}
    assert where({"a": {"$in": []}}) is False
    assert where({"a": {"$nin": []}}) is True
    assert where({"$or": [{"a": {"$nin": []}}, {"b": True}]}) is True


def test_qdrant_refused_filters() -> None:
    with pytest.raises(TerminalError, match=r"\$gt"):
        qdrant_build({"a": {"$gt": "m"}})
    with pytest.raises(TerminalError, match="path"):
        qdrant_build({"a.b": 1})
    with pytest.raises(TerminalError, match="text"):
        qdrant_build({"text": "x"}, ("text", "_vecmig_id"))
    assert qdrant_build({"a": {"$in": []}}) is False


def test_milvus_expression_escapes_and_supersets() -> None:
    assert expression({'k"\\': 'a"b\nc'}, LAYOUT) == (
        '(metadata["k\\"\\\\"] == "a\\"b\\nc" or json_contains_any(metadata["k\\"\\\\"], ["a\\"b\\nc"]))')
    # booleans are 0/1 to Milvus: a $ne of one is left to the check of each hit
    assert expression({"k": {"$ne": True}}, LAYOUT) is True
    assert expression({"k": {"$in": []}}, LAYOUT) is False
    with pytest.raises(TerminalError, match="'id'"):
        expression({"id": 1}, LAYOUT)


def test_query_cost_grows_with_the_namespace() -> None:
    assert pricing.query_usage(1000, 1_000_000).read_units == 250.0  # a tiny namespace: 0.25 RU each
    assert pricing.query_usage(1000, int(7.14e9)).read_units == pytest.approx(7140.0)  # the guide's 1M x 1536
    p = PineconeProvider(StoreSpec(provider="pinecone", connection={"api_key": API_KEY}, collection="c",
                                   pointer="/target"))
    # 1000 queries on 1M records of 7.14 KB at the standard plan's $16 per million RU
    assert p.cost("query", 1000, int(7.14e9), {}) == {"pinecone_read_units": round(7140 / 1e6 * 16.0, 4)}


def test_pinecone_refused_filters() -> None:
    with pytest.raises(TerminalError, match=r"\$gte"):
        pinecone_filter({"a": {"$gte": "m"}}, text_key="text", selected=None)
    with pytest.raises(TerminalError, match="record text"):
        pinecone_filter({"text": "x"}, text_key="text", selected=None)
    with pytest.raises(TerminalError, match=r"fields\.metadata"):
        pinecone_filter({"b": 1}, text_key="text", selected=("a",))
    assert pinecone_filter({"$or": [{"a": 1}, {"b": {"$lt": 2}}]}, text_key="text", selected=None) == {
        "$or": [{"a": 1}, {"b": {"$lt": 2}}]}
