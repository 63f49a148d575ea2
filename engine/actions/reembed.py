"""Re-embedding inside a copy (``transform.embed``): each record's text in, the new model's
vector out, before the target sees the batch.

The model is built once per process for each setting (``make_model`` loads weights) and shared
by every shard thread; a local model embeds one batch at a time (its tokenizer is not safe to
call from two threads at once, and torch already uses every core). The cache is opened once per
run and closed with the run's other holds. The Embedder stores what it embedded in the cache
before returning, so before the batch is written: a kill between embedding and checkpoint
leaves the vectors in the cache, and the resumed batch pays for nothing again.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np

from vecmig.actions.base import RunContext
from vecmig.actions.params import EmbedParams
from vecmig.embed import EmbedConfig, Embedder, Model, loaded
from vecmig.embed.cache import Cache
from vecmig.embed.keep_old import with_old_vectors
from vecmig.embed.pgcache import open_cache
from vecmig.embed.settings import config_from_params
from vecmig.embed.texts import record_texts
from vecmig.errors import TerminalError
from vecmig.namespaces import Mapped
from vecmig.records import Batch

_lock = threading.Lock()
_serial: dict[EmbedConfig, threading.Lock | None] = {}


def shared_model(config: EmbedConfig) -> tuple[Model, threading.Lock | None]:
    """The process's model for ``config`` (``vecmig.embed.loaded``: the one planning loaded, in
    the same process), and the lock its users embed under (None: it may be called from several
    threads at once)."""
    model = loaded(config)
    with _lock:
        if config not in _serial:
            # An API model sends its own batches on its own threads: only a local one is serialised.
            _serial[config] = None if config.api is not None else threading.Lock()
        return model, _serial[config]


def _cache(ctx: RunContext, location: str | None) -> Cache | None:
    if location is None:
        return None
    key = f"embed-cache:{location}"
    with _lock:
        held = ctx.holds.get(key)
        if held is None:
            held = open_cache(location)
            assert held is not None
            ctx.holds[key] = held
        return held  # type: ignore[return-value]


def embedder(ctx: RunContext, embed: EmbedParams) -> tuple[Embedder, threading.Lock | None]:
    """The plan's model (refused if it is not the one the plan was made with) and the spec's cache."""
    live = ctx.spec.transform.embed
    api_key = live.api.api_key if live is not None and live.api is not None else ""  # the live spec's, never the plan's
    model, serial = shared_model(config_from_params(embed, api_key))
    if model.identity != embed.identity:
        raise TerminalError(f"the model changed since the plan: plan again (the plan embeds with {embed.identity}, "
                            f"{embed.model!r} is now {model.identity})",
                            hint="run `vecmig plan` again, so the plan and the cache name the model in use")
    return Embedder(model, _cache(ctx, live.cache if live is not None else None)), serial


def as_reembedded(part: Batch, vectors: np.ndarray, keep_old: str | None) -> Batch:
    """``part`` (mapped) with the new vectors, and its old ones under ``keep_old`` when set."""
    metadata = part.metadata if keep_old is None else with_old_vectors(part, keep_old)
    return Batch(ids=part.ids, vectors=vectors, metadata=metadata, texts=part.texts, cursor=part.cursor,
                 extra=part.extra)


def reembed(ctx: RunContext, embed: EmbedParams, source: Batch, mapped: list[Mapped]) -> list[Batch]:
    """The mapped parts of ``source`` with every vector replaced by the new model's embedding of
    the record's text (read from ``source``: the names are the source's, before mapping)."""
    texts = record_texts(source, embed.text, ctx.spec.source.fields.text)
    t0 = time.perf_counter()
    embedder_, serial = embedder(ctx, embed)
    with serial if serial is not None else contextlib.nullcontext():
        vectors = embedder_.embed([str(rid) for rid in source.ids], texts)
    ctx.spent("embed", time.perf_counter() - t0)
    if len(source) and vectors.shape[1] != embed.dimension:
        raise TerminalError(f"{embed.model} returned vectors of {vectors.shape[1]} dimensions, the plan "
                            f"created the target for {embed.dimension}",
                            hint="run `vecmig plan` again")
    return [as_reembedded(m.batch, vectors[list(m.positions)], embed.keep_old) for m in mapped]
