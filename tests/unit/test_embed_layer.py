"""The embedding layer's own logic, without a model: batching, checks, the cache, the Embedder's
deduplication, the token bucket, Retry-After parsing and settings validation. The real model and
the real endpoint are in tests/test_embed_local.py and tests/test_embed_api.py."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vecmig.embed import ApiConfig, EmbedConfig, EmbedConfigError, Embedder, EmbeddingCache, UnembeddableText
from vecmig.embed.api import public_url, retry_after
from vecmig.embed.model import Model, plan_batches
from vecmig.embed.ratelimit import TokenBucket
from vecmig.errors import TerminalError


class WordModel(Model):
    """Deterministic stand-in: a token is a word, plus two special tokens; vectors from sha256."""

    def __init__(self, config: EmbedConfig, dimension: int = 8) -> None:
        super().__init__(config)
        self._dim = dimension
        self.batches: list[list[str]] = []

    identity = property(lambda self: f"words:{self._dim}")
    dimension = property(lambda self: self._dim)
    max_tokens = property(lambda self: 6)
    normalised = property(lambda self: False)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens - 2])

    def _embed_batches(self, texts: Sequence[str], batches: list[list[int]],
                       ids: Sequence[str] | None) -> list[np.ndarray]:
        out = []
        for batch in batches:
            self.batches.append([texts[i] for i in batch])
            self._counted(len(batch))
            out.append(np.stack([vector(texts[i], self._dim) for i in batch]))
        return out


def vector(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:dim], dtype=np.uint8).astype(np.float32)


def model(**config: object) -> WordModel:
    return WordModel(EmbedConfig(model="words", **config))  # type: ignore[arg-type]


def test_batches_sort_by_length_within_a_window_only() -> None:
    lengths = [5, 1, 4, 2, 9, 3, 8, 7]
    assert plan_batches(lengths, 2, 2) == [[1, 3], [2, 0], [5, 7], [6, 4]]
    assert plan_batches(lengths, 3, 1) == [[1, 2, 0], [3, 5, 4], [7, 6]]
    assert sorted(i for b in plan_batches(lengths, 3, 100) for i in b) == list(range(8))


def test_embed_restores_the_callers_order() -> None:
    m = model(batch_size=2, sort_window=4)
    texts = ["a b c d", "a", "a b", "a b c", "x"]
    got = m.embed(texts)
    assert all(np.array_equal(got[i], vector(t, 8)) for i, t in enumerate(texts))
    assert [len(b) for b in m.batches] == [2, 2, 1] and m.batches[0] == ["a", "x"]


def test_checks_name_the_record_and_truncate_only_when_asked() -> None:
    with pytest.raises(UnembeddableText, match=r"^record 'r2' has 7 tokens, over words's limit of 6$"):
        model().embed(["ok", "fine", "one two three four five"], ["r0", "r1", "r2"])
    with pytest.raises(UnembeddableText, match=r"^text #1 has an empty text$"):
        model().embed(["ok", "\n\t "])
    m = model(truncate=True)
    got = m.embed(["one two three four five"], ["r0"])
    assert np.array_equal(got[0], vector("one two three four", 8))


def test_the_embedder_pays_once_per_distinct_text_and_the_cache_once_ever(tmp_path: Path) -> None:
    m = model(batch_size=3)
    texts = ["alpha", "beta", "alpha", "gamma", "beta"]
    ids = [f"r{i}" for i in range(5)]
    with EmbeddingCache(tmp_path / "e.sqlite") as cache:
        first = Embedder(m, cache).embed(ids, texts)
        assert m.texts_embedded == 3 and cache.stats().misses == 5 and cache.count() == 3
        again = Embedder(m, cache).embed(ids[:2], texts[:2])
        assert m.texts_embedded == 3 and cache.stats().hits == 2
    assert np.array_equal(first[0], first[2]) and np.array_equal(again, first[:2])
    with EmbeddingCache(tmp_path / "e.sqlite") as cache:  # reopened: exact float32 bytes
        stored = cache.get_many(m.identity, [hashlib.sha256(b"gamma").digest()])
        assert stored[hashlib.sha256(b"gamma").digest()].tobytes() == first[3].tobytes()
        assert cache.get_many("another-model", [hashlib.sha256(b"gamma").digest()]) == {}


class SameName(WordModel):
    identity = property(lambda self: "words:8")  # other weights behind the identity of the 8-wide model


def test_a_cache_of_another_width_under_the_same_identity_is_refused(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "e.sqlite") as cache:
        Embedder(WordModel(EmbedConfig(model="w"), 8), cache).embed(["a"], ["old"])
        with pytest.raises(TerminalError) as err:
            Embedder(SameName(EmbedConfig(model="w"), 16), cache).embed(["a", "b"], ["old", "new"])
    assert "holds vectors of widths [8, 16] for words:8" in err.value.one_line()
    assert "delete the cache file" in err.value.one_line()


def test_the_cache_takes_concurrent_writers(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "e.sqlite") as cache:
        def write(n: int) -> None:
            cache.put_many("m", [(hashlib.sha256(f"{n}-{i}".encode()).digest(), vector(str(i), 8)) for i in range(50)])

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert cache.count("m") == 200


def test_the_token_bucket_waits_for_what_the_minute_allows() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(600, clock=lambda: now[0], sleep=sleep)  # 10 tokens a second
    bucket.acquire(600)
    assert slept == []
    bucket.acquire(50)
    assert slept == [pytest.approx(5.0)]
    bucket.acquire(1000)  # bigger than the bucket: waits for a full one, then goes
    assert sum(slept) == pytest.approx(65.0)
    bucket.settle(reserved=100, actual=40)  # the server counted fewer: the difference comes back
    assert bucket._level == pytest.approx(-400 + 60)


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None and retry_after(None) is None


def test_settings_are_checked_in_one_line_each() -> None:
    with pytest.raises(EmbedConfigError, match="device 'tpu' is not one of cpu, cuda, auto"):
        EmbedConfig(model="m", device="tpu")  # type: ignore[arg-type]
    with pytest.raises(EmbedConfigError, match="batch_size is 0"):
        EmbedConfig(model="m", batch_size=0)
    with pytest.raises(EmbedConfigError, match="is not an http"):
        ApiConfig(base_url="localhost:8000")
    with pytest.raises(EmbedConfigError, match="concurrency is 0"):
        ApiConfig(base_url="http://x", concurrency=0)


def test_the_api_key_stays_out_of_repr_and_the_identity() -> None:
    api = ApiConfig(base_url="https://user:pw@example.invalid:8443/v1/", api_key="sk-MARKER-1")
    assert "sk-MARKER-1" not in repr(EmbedConfig(model="m", api=api))
    assert public_url(api.base_url) == "https://example.invalid:8443/v1"
