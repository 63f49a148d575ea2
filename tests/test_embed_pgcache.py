"""The embedding cache in PostgreSQL (``transform.embed.cache: postgresql://...``): same keys and
bytes as the SQLite cache, shared by every process that opens the same URL, and no password in
what it says about itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from vecmig.embed.cache import EmbeddingCache, text_key
from vecmig.embed.pgcache import TABLE, PgEmbeddingCache, open_cache
from vecmig.errors import TransientError


def test_vectors_round_trip_bit_for_bit_and_are_shared_between_openers(pg_db: str) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5, 384)).astype(np.float32)
    keys = [text_key(f"text {i}") for i in range(5)]
    first = open_cache(pg_db)
    assert isinstance(first, PgEmbeddingCache)
    first.put_many("local:m@1", zip(keys, vectors, strict=True))
    first.put_many("local:m@1", [(keys[0], np.zeros(384, dtype=np.float32))])  # the first one in wins
    second = PgEmbeddingCache(pg_db)
    found = second.get_many("local:m@1", [*keys, text_key("never stored"), keys[1]])
    assert set(found) == set(keys)
    for key, vector in zip(keys, vectors, strict=True):
        assert found[key].tobytes() == vector.tobytes()
    assert (second.hits, second.misses) == (6, 1)
    assert second.get_many("local:other@2", keys) == {}  # keyed by model identity too
    assert second.count() == 5 and second.count("local:m@1") == 5
    first.close()
    second.close()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 5


def test_an_unreachable_cache_is_transient_and_its_password_never_shown(pg_db: str, tmp_path: Path) -> None:
    with pytest.raises(TransientError) as caught:
        PgEmbeddingCache("postgresql://vecmig:hunter2-secret@127.0.0.1:1/cache?connect_timeout=2")
    assert "hunter2" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    cache = open_cache(pg_db)
    assert cache is not None and cache.where.startswith("postgresql://")
    cache.close()
    sqlite = open_cache(str(tmp_path / "emb.db"))
    assert isinstance(sqlite, EmbeddingCache)
    sqlite.close()
    assert open_cache(None) is None
