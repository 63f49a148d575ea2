"""The embedding layer for re-embedding (groundwork of issue 14; no spec key reaches it yet).

A :class:`Model` turns texts into float32 vectors and counts tokens with its real tokenizer;
:func:`make_model` builds one from a frozen :class:`EmbedConfig` (a local sentence-transformers
model with offline weights, or any OpenAI-compatible ``/v1/embeddings`` endpoint).
:class:`Embedder` is what a copy will call: it checks each record's text (naming the record),
looks it up in the :class:`EmbeddingCache` keyed by (model identity, sha256 of the text) and
sends only the misses to the model, so the same text is never paid for twice.

Heavy imports (torch, sentence-transformers, openai) happen only when a model is built.
"""

from __future__ import annotations

from vecmig.embed.cache import CacheStats, EmbeddingCache
from vecmig.embed.config import ApiConfig, EmbedConfig, EmbedConfigError
from vecmig.embed.embedder import Embedder
from vecmig.embed.factory import make_model
from vecmig.embed.loaded import loaded
from vecmig.embed.model import Model, UnembeddableText

__all__ = [
    "ApiConfig", "CacheStats", "EmbedConfig", "EmbedConfigError", "Embedder", "EmbeddingCache", "Model",
    "UnembeddableText", "loaded", "make_model",
]
