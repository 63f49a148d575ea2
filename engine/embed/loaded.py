"""One loaded model per settings per process: planning builds a model to learn its identity and
dimension (the planner for the copy, ``validate.retrieval`` for its queries), and apply builds it
again to embed; loading the weights (and hashing them for the identity) costs seconds, so every
caller asking for the same :class:`EmbedConfig` shares one :class:`Model`."""

from __future__ import annotations

import threading

from vecmig.embed.config import EmbedConfig
from vecmig.embed.factory import make_model
from vecmig.embed.model import Model

_LOCK = threading.Lock()
_MODELS: dict[EmbedConfig, Model] = {}


def loaded(config: EmbedConfig) -> Model:
    """The model ``config`` describes, built on first use (one load even when threads race)."""
    with _LOCK:
        model = _MODELS.get(config)
        if model is None:
            model = make_model(config)
            _MODELS[config] = model
        return model


def forget() -> None:
    """Drop every loaded model (tests that count a fresh model's calls)."""
    with _LOCK:
        _MODELS.clear()
