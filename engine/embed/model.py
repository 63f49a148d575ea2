"""What every embedding backend offers, and the checks and batching they share."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from vecmig.embed.config import EmbedConfig
from vecmig.errors import TerminalError


class UnembeddableText(TerminalError):
    """A record's text the model cannot take (empty, or over its token limit without ``truncate``)."""

    def __init__(self, message: str, *, record: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.record = record


def plan_batches(lengths: Sequence[int], batch_size: int, window: int) -> list[list[int]]:
    """Positions grouped into batches: within each window of ``window`` batches the texts are
    sorted by length, so a batch holds texts of similar length and pads little; windows keep
    the input's rough order, so a caller streaming records is not held up by a global sort."""
    batches: list[list[int]] = []
    span = batch_size * window
    for start in range(0, len(lengths), span):
        order = sorted(range(start, min(start + span, len(lengths))), key=lambda i: (lengths[i], i))
        batches.extend(order[j:j + batch_size] for j in range(0, len(order), batch_size))
    return batches


def describe(record: str | None, position: int) -> str:
    return f"record {record!r}" if record is not None else f"text #{position}"


class Model(ABC):
    """An embedding model: ``embed`` returns one float32 row per text, in the order given."""

    def __init__(self, config: EmbedConfig) -> None:
        self.config = config
        self._count_lock = threading.Lock()
        # What the backend was asked to embed: batches sent and texts in them (tests and the
        # benchmark count these to prove nothing is embedded twice).
        self.calls = 0
        self.texts_embedded = 0

    @property
    def name(self) -> str:
        return self.config.model

    @property
    @abstractmethod
    def identity(self) -> str:
        """What the cache keys on: names the weights (or the endpoint and model) exactly."""

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    @abstractmethod
    def max_tokens(self) -> int | None:
        """Tokens per text the model takes, special tokens included; None when unknown."""

    @property
    @abstractmethod
    def normalised(self) -> bool:
        """Whether every vector comes out with unit length."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text with the model's own tokenizer (special tokens included)."""

    @abstractmethod
    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` at a token boundary that fits in ``max_tokens``."""

    @abstractmethod
    def _embed_batches(self, texts: Sequence[str], batches: list[list[int]],
                       ids: Sequence[str] | None) -> list[np.ndarray]:
        """One float32 array per batch, its rows in the batch's order."""

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """What batches are sorted by: token counts (a backend without a tokenizer overrides it)."""
        return self.count_tokens(texts)

    def prepare(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> tuple[list[str], list[int]]:
        """The texts as they will be sent (cut where ``truncate`` allows) and their token counts;
        refuses an empty text or one over the limit, naming the record."""
        if ids is not None and len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        for i, text in enumerate(texts):
            if not text.strip():
                raise UnembeddableText(f"{describe(ids[i] if ids else None, i)} has an empty text",
                                       record=ids[i] if ids else str(i),
                                       hint="give it a text, or filter such records out of the copy")
        counts = self.lengths(texts)
        limit = self.max_tokens
        out = list(texts)
        if limit is None:
            return out, counts
        for i, n in enumerate(counts):
            if n <= limit:
                continue
            who = describe(ids[i] if ids else None, i)
            if not self.config.truncate:
                raise UnembeddableText(f"{who} has {n} tokens, over {self.name}'s limit of {limit}",
                                       record=ids[i] if ids else str(i),
                                       hint="shorten the text, or set truncate: true to cut it at the limit")
            out[i] = self.truncate(texts[i], limit)
            counts[i] = self.count_tokens([out[i]])[0]
        return out, counts

    def embed(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """float32 array of shape (len(texts), dimension), row i for texts[i]."""
        prepared, lengths = self.prepare(texts, ids)
        return self.embed_prepared(prepared, lengths, ids)

    def embed_prepared(self, texts: Sequence[str], lengths: Sequence[int],
                       ids: Sequence[str] | None = None) -> np.ndarray:
        """``embed`` for texts that :meth:`prepare` already checked (``lengths`` from it)."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        batches = plan_batches(lengths, self.config.batch_size, self.config.sort_window)
        results = self._embed_batches(texts, batches, ids)
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        for batch, vectors in zip(batches, results, strict=True):
            out[batch] = vectors
        return out

    def _counted(self, n_texts: int) -> None:
        with self._count_lock:
            self.calls += 1
            self.texts_embedded += n_texts
