"""What a copy calls: texts of records in, vectors out, each distinct text paid for once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vecmig.embed.cache import Cache, text_key
from vecmig.embed.model import Model
from vecmig.errors import TerminalError


class Embedder:
    """A model with an optional cache. ``embed(ids, texts)`` checks every text first (so one bad
    record fails the batch before anything is paid for), serves what the cache holds, sends each
    distinct missing text to the model once and stores the result before returning it."""

    def __init__(self, model: Model, cache: Cache | None = None) -> None:
        self.model = model
        self.cache = cache

    def embed(self, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        model = self.model
        prepared, lengths = model.prepare(texts, ids)
        keys = [text_key(t) for t in prepared]
        cached = self.cache.get_many(model.identity, keys) if self.cache else {}
        # First position of each distinct missing text: duplicates in a batch are paid for once.
        todo: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in cached and key not in todo:
                todo[key] = i
        fresh: dict[bytes, np.ndarray] = {}
        if todo:
            positions = list(todo.values())
            vectors = model.embed_prepared([prepared[i] for i in positions], [lengths[i] for i in positions],
                                           [ids[i] for i in positions])
            fresh = dict(zip(todo, vectors, strict=True))
            if self.cache:
                self.cache.put_many(model.identity, fresh.items())
        found = cached | fresh
        widths = {v.shape[0] for v in found.values()}
        if len(widths) > 1:
            raise TerminalError(f"the embedding cache {self.cache.where if self.cache else ''} holds vectors of "
                                f"widths {sorted(widths)} for {model.identity}",
                                hint="the model changed under the same name: delete the cache file")
        width = widths.pop() if widths else model.dimension
        out = np.empty((len(prepared), width), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out
