"""An embedding cache in one SQLite file: (model identity, sha256 of the text) -> float32 bytes.

A re-run, a rollback and re-apply, or a second target finds every text it has embedded before
and pays for none of them again. Vectors are stored as the model's float32 bytes, so a hit is
bit-identical to the miss that filled it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    text_sha256 BLOB NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text_sha256)
) WITHOUT ROWID
"""
# SQLite's default limit on bound parameters is 32766 since 3.32; stay well under it.
_CHUNK = 500


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    stored: int


class Cache(Protocol):
    """What the :class:`~vecmig.embed.Embedder` needs of a cache (SQLite here, PostgreSQL in
    ``pgcache.py``): ``where`` names it in messages and never holds a secret."""

    hits: int
    misses: int
    stored: int

    @property
    def where(self) -> str: ...
    def stats(self) -> CacheStats: ...
    def get_many(self, model: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]: ...
    def put_many(self, model: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None: ...
    def count(self, model: str | None = None) -> int: ...
    def close(self) -> None: ...


class EmbeddingCache:
    """Thread-safe; ``hits`` and ``misses`` count texts looked up since it was opened."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stored = 0

    @property
    def where(self) -> str:
        return str(self.path)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.stored)

    def get_many(self, model: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start:start + _CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT text_sha256, dim, vector FROM embeddings WHERE model = ? AND text_sha256 IN ({marks})",
                    [model, *part]).fetchall()
                for key, dim, blob in rows:
                    if len(blob) == 4 * dim:  # a torn row (it cannot be, but never hand one out) is a miss
                        found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
            hit_count = sum(1 for k in keys if k in found)
            self.hits += hit_count
            self.misses += len(keys) - hit_count
        return found

    def put_many(self, model: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        rows = [(model, key, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for key, v in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.stored += len(rows)

    def count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                return int(self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0])
            return int(self._db.execute("SELECT count(*) FROM embeddings WHERE model = ?", [model]).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
