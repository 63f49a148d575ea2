"""The API backend through the real ``openai`` client against tests/openai_local, which serves
the same real model: vectors equal the local path's, 429s and 500s are retried with the server's
Retry-After and no text is embedded twice, bad input is refused as OpenAI refuses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.openai_local import Faults, OpenAILocal
from tests.openai_local.server import DEFAULT_API_KEY
from tests.support.embed import MODEL, TEXTS, local_model
from vecmig.embed import ApiConfig, EmbedConfig, Embedder, EmbeddingCache, UnembeddableText, make_model
from vecmig.embed.api import ApiModel
from vecmig.errors import TerminalError, TransientError

pytestmark = pytest.mark.integration  # a real model behind a real HTTP server


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAILocal]:
    with OpenAILocal(local_model(batch_size=64), model_name=MODEL) as srv:
        yield srv


@pytest.fixture
def srv(server: OpenAILocal) -> Iterator[OpenAILocal]:
    server.reset()
    yield server
    server.reset()


def api_model(srv: OpenAILocal, **api: object) -> ApiModel:
    settings: dict[str, object] = {"base_url": srv.url, "api_key": DEFAULT_API_KEY, "tokenizer": MODEL, **api}
    model = make_model(EmbedConfig(model=MODEL, batch_size=3, api=ApiConfig(**settings)))  # type: ignore[arg-type]
    assert isinstance(model, ApiModel)
    return model


def ids_for(texts: list[str]) -> list[str]:
    return [f"doc-{i}" for i in range(len(texts))]


def test_the_server_answers_the_real_client_in_openais_shape(srv: OpenAILocal) -> None:
    client = openai.OpenAI(base_url=srv.url, api_key=DEFAULT_API_KEY, max_retries=0)
    one = client.embeddings.create(model=MODEL, input="hello there", encoding_format="float")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    assert one.usage.prompt_tokens == local_model().count_tokens(["hello there"])[0]
    many = client.embeddings.create(model=MODEL, input=["a", "b c"])  # the client's default: base64
    assert [d.index for d in many.data] == [0, 1]
    # Batched with "b c", "a" is padded: equal up to float noise.
    assert np.allclose(np.asarray(many.data[0].embedding, dtype=np.float32), local_model().embed(["a"])[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="input"):
        client.embeddings.create(model=MODEL, input=[""])
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256 tokens"):
        client.embeddings.create(model=MODEL, input="word " * 300)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.embeddings.create(model="text-embedding-9", input="x")
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        openai.OpenAI(base_url=srv.url, api_key="sk-wrong", max_retries=0).embeddings.create(model=MODEL, input="x")


def test_vectors_and_token_counts_equal_the_local_models(srv: OpenAILocal) -> None:
    model = api_model(srv)
    got = Embedder(model).embed(ids_for(TEXTS), TEXTS)
    want = local_model().embed(TEXTS)
    cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert float(cos.min()) >= 0.9999
    assert model.count_tokens(TEXTS) == local_model().count_tokens(TEXTS)
    assert model.prompt_tokens == srv.stats.prompt_tokens == sum(local_model().count_tokens(list(set(TEXTS))))
    assert model.max_tokens == 256 and model.dimension == 384 and model.normalised


def test_429s_are_retried_after_the_servers_retry_after_and_nothing_is_embedded_twice(srv: OpenAILocal) -> None:
    srv.faults = Faults(rate_limit_every=2, retry_after=0.01)
    model = api_model(srv)
    texts = [f"text number {i} about vectors" for i in range(10)]
    got = Embedder(model).embed(ids_for(texts), texts)
    assert got.shape == (10, 384)
    assert srv.stats.rate_limited >= 3 and model.retries == srv.stats.rate_limited
    assert model.retry_delays == [0.01] * model.retries  # the server's Retry-After, not our backoff
    assert srv.stats.texts == dict.fromkeys(texts, 1)  # every text embedded exactly once
    assert model.texts_embedded == 10


def test_500s_are_retried_and_a_dead_end_is_a_transient_error_in_one_line(srv: OpenAILocal) -> None:
    srv.faults = Faults(error_every=2)
    model = api_model(srv)
    texts = [f"five hundred {i}" for i in range(6)]
    model.embed(texts)
    assert srv.stats.errors >= 1 and srv.stats.texts == dict.fromkeys(texts, 1)
    srv.faults = Faults(error_every=1, error_status=503)
    with pytest.raises(TransientError) as err:
        api_model(srv, retry_budget=0.0).embed(["never"])
    assert "answered 503" in err.value.one_line() and "\n" not in err.value.one_line()


def test_concurrent_requests_under_a_token_limit_keep_the_order(srv: OpenAILocal) -> None:
    model = api_model(srv, concurrency=3, tokens_per_minute=100_000)
    texts = [f"concurrent text {i} " + "word " * (i % 5) for i in range(14)]
    got = model.embed(texts)
    want = local_model().embed(texts)
    assert np.allclose(got, want, atol=1e-5)
    assert srv.stats.texts == dict.fromkeys(texts, 1) and model.calls == 5  # ceil(14 / 3)


def test_bad_texts_are_refused_before_any_request_naming_the_record(srv: OpenAILocal) -> None:
    model = api_model(srv)
    with pytest.raises(UnembeddableText, match="record 'doc-1' has an empty text"):
        Embedder(model).embed(["doc-0", "doc-1"], ["fine", ""])
    with pytest.raises(UnembeddableText, match="record 'doc-1' has 302 tokens, over"):
        Embedder(model).embed(["doc-0", "doc-1"], ["fine", "word " * 300])
    assert srv.stats.requests == 0


def test_without_a_tokenizer_the_servers_refusal_names_the_batch_and_hides_the_key(srv: OpenAILocal) -> None:
    model = api_model(srv, tokenizer=None, dimension=384)
    with pytest.raises(TerminalError) as err:
        model.embed(["fine", "word " * 300], ["doc-a", "doc-b"])
    line = err.value.one_line()
    assert "refused a batch of 2 texts (records 'doc-a'..'doc-b') with 400" in line
    assert "maximum context length" in line and DEFAULT_API_KEY not in line
    bad_key = api_model(srv, api_key="sk-MARKER-secret-123", tokenizer=None, dimension=384)
    with pytest.raises(TerminalError) as err:
        bad_key.embed(["x"])
    assert "401" in err.value.one_line() and "sk-MARKER-secret-123" not in err.value.one_line()
    assert "API key" in (err.value.hint or "")


def test_the_cache_spares_a_second_run_every_request(srv: OpenAILocal, tmp_path: Path) -> None:
    texts = [f"cached {i}" for i in range(7)]
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        first = Embedder(api_model(srv), cache).embed(ids_for(texts), texts)
    served = srv.stats.served
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        second = Embedder(api_model(srv), cache).embed(ids_for(texts), texts)
        assert cache.stats().hits == 7
    assert srv.stats.served == served and first.tobytes() == second.tobytes()
