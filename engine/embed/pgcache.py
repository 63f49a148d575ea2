"""The embedding cache in a PostgreSQL table, for runs on several machines (or a team) that
should share what was paid for: same keys and bytes as the SQLite cache (``cache.py``).

``transform.embed.cache: postgresql://...`` selects it. Writes are ``ON CONFLICT DO NOTHING``:
two workers that embedded the same text store the same bytes, so the first one in wins.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from vecmig.embed.cache import Cache, CacheStats, EmbeddingCache
from vecmig.errors import TerminalError, TransientError

TABLE = "vecmig_embeddings"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    model text NOT NULL,
    text_sha256 bytea NOT NULL,
    dim integer NOT NULL,
    vector bytea NOT NULL,
    PRIMARY KEY (model, text_sha256)
)
"""
_CHUNK = 1000


class PgEmbeddingCache:
    """Thread-safe (one connection behind a lock); ``hits`` and ``misses`` as in the SQLite cache."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self._where = _shown(url)
        try:
            self._db: Any = psycopg.connect(url, autocommit=True)
            self._db.execute(_SCHEMA)
        except psycopg.OperationalError as e:
            raise TransientError(f"the embedding cache {self._where} could not be reached: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        except psycopg.Error as e:
            raise TerminalError(f"the embedding cache {self._where} could not be opened: {type(e).__name__}",
                                hint="check transform.embed.cache (a PostgreSQL URL the user may create a table in)"
                                ) from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stored = 0

    @property
    def where(self) -> str:
        return self._where

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.stored)

    def get_many(self, model: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        wanted = list(dict.fromkeys(keys))
        with self._lock, self._errors():
            for start in range(0, len(wanted), _CHUNK):
                rows = self._db.execute(
                    f"SELECT text_sha256, dim, vector FROM {TABLE} WHERE model = %s AND text_sha256 = ANY(%s)",
                    (model, wanted[start:start + _CHUNK])).fetchall()
                for key, dim, blob in rows:
                    if len(blob) == 4 * dim:
                        found[bytes(key)] = np.frombuffer(bytes(blob), dtype=np.float32)
            hit_count = sum(1 for k in keys if k in found)
            self.hits += hit_count
            self.misses += len(keys) - hit_count
        return found

    def put_many(self, model: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        rows = [(model, key, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for key, v in items]
        with self._lock, self._errors(), self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
            self.stored += len(rows)

    def count(self, model: str | None = None) -> int:
        with self._lock, self._errors():
            if model is None:
                return int(self._db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
            return int(self._db.execute(f"SELECT count(*) FROM {TABLE} WHERE model = %s", (model,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _errors(self) -> _Errors:
        return _Errors(self._psycopg, self._where)


class _Errors:
    """A dropped connection is transient (the copy reconnects and redoes the batch); anything
    else the server refuses is terminal. Messages name the cache without its password."""

    def __init__(self, psycopg: Any, where: str) -> None:
        self._psycopg = psycopg
        self._where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, self._psycopg.Error):
            return
        if isinstance(exc, self._psycopg.OperationalError):
            raise TransientError(f"the embedding cache {self._where} failed: {type(exc).__name__}") from None
        raise TerminalError(f"the embedding cache {self._where} refused a query: {type(exc).__name__}",
                            hint="check that the user may read and write the table " + TABLE) from None


def _shown(url: str) -> str:
    """The cache's URL without user or password (a socket directory stands for the host)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL fails to connect just after, with the driver's reason
        return "postgresql://(unparsable URL)"
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{host}{port}/{parts.get('dbname') or ''}"


def open_cache(location: str | None) -> Cache | None:
    """The cache ``transform.embed.cache`` names: a ``postgresql://`` URL, a file path, or none."""
    if location is None:
        return None
    if location.startswith(("postgresql://", "postgres://")):
        return PgEmbeddingCache(location)
    return EmbeddingCache(location)
