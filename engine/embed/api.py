"""Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, TEI, Ollama...) through the
``openai`` client.

Failures are sorted the house's way: 429, 5xx, 408/409 and dropped connections are
:class:`TransientError` (with the server's Retry-After) and retried by ``vecmig.retry``; any other
refusal is :class:`TerminalError`. The client's own retries are off, so exactly one policy
decides. Batches go out on ``concurrency`` threads under a tokens-per-minute bucket. The API key
lives only in the client: it is masked out of every message raised from here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from vecmig.embed.config import ApiConfig, EmbedConfig, EmbedConfigError
from vecmig.embed.local import resolve_model_dir
from vecmig.embed.model import Model
from vecmig.embed.ratelimit import TokenBucket
from vecmig.embed.tokens import TokenCounter
from vecmig.errors import TerminalError, TransientError
from vecmig.retry import with_retries

# Token limits of OpenAI's own embedding models (their documentation, 2026-12); others come from
# api.max_tokens or the tokenizer's model.
KNOWN_LIMITS = {"text-embedding-3-small": 8191, "text-embedding-3-large": 8191, "text-embedding-ada-002": 8191}
_TRANSIENT_STATUS = frozenset({408, 409, 429})


def retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            import datetime

            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def public_url(url: str) -> str:
    """The URL without any user:password part (identity and messages must hold no secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class ApiModel(Model):
    def __init__(self, config: EmbedConfig) -> None:
        super().__init__(config)
        assert config.api is not None
        self.api: ApiConfig = config.api
        try:
            import openai
        except ImportError:
            raise EmbedConfigError("API models need the openai client, which is not installed",
                                   hint="pip install 'vecmig[embed-api]'") from None
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.api.base_url, api_key=self.api.api_key or "none",
                                     max_retries=0, timeout=self.api.timeout)
        self._tokens: TokenCounter | None = None
        tokenizer_limit: int | None = None
        if self.api.tokenizer:
            model_dir = resolve_model_dir(self.api.tokenizer)
            self._tokens = TokenCounter.from_dir(model_dir)
            tokenizer_limit = _seq_limit(model_dir)
        self._max_tokens = self.api.max_tokens or KNOWN_LIMITS.get(config.model) or tokenizer_limit
        self._bucket = TokenBucket(self.api.tokens_per_minute) if self.api.tokens_per_minute else None
        self._dimension = self.api.dimension
        self._normalised: bool | None = None
        self.prompt_tokens = 0  # what the server says it counted (billed)
        self.retries = 0
        self.retry_delays: list[float] = []

    @property
    def identity(self) -> str:
        return f"api:{public_url(self.api.base_url)}|{self.config.model}"

    def _learn(self, vectors: np.ndarray) -> None:
        # The first answer tells the width and whether vectors come normalised: no extra request.
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        if self._normalised is None:
            self._normalised = bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3))

    def learn(self, vectors: np.ndarray) -> None:
        """What vectors this model made before (the embedding cache's) tell of it: its width and
        whether it normalises, so no request is spent on finding out."""
        if len(vectors):
            self._learn(vectors)

    def _probe(self) -> None:
        self._request(["dimension probe"], None)

    @property
    def dimension(self) -> int:
        """Asked before any text was embedded (and not set in api.dimension), this costs one
        short request."""
        if self._dimension is None:
            self._probe()
        assert self._dimension is not None
        return self._dimension

    @property
    def normalised(self) -> bool:
        if self._normalised is None:
            self._probe()
        assert self._normalised is not None
        return self._normalised

    @property
    def max_tokens(self) -> int | None:
        return self._max_tokens if self._tokens is not None else None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._tokens is None:
            raise EmbedConfigError(f"no tokenizer is known for the API model {self.config.model!r}",
                                   hint="set api.tokenizer to a local copy of the served model's tokenizer")
        return self._tokens.count(texts)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        # Without a tokenizer, characters order the batches as well and limits are the server's.
        return self.count_tokens(texts) if self._tokens is not None else [len(t) for t in texts]

    def truncate(self, text: str, max_tokens: int) -> str:
        assert self._tokens is not None  # max_tokens is None without one, so nothing is cut
        return self._tokens.truncate(text, max_tokens)

    def _embed_batches(self, texts: Sequence[str], batches: list[list[int]],
                       ids: Sequence[str] | None) -> list[np.ndarray]:
        def one(batch: list[int]) -> np.ndarray:
            return self._request([texts[i] for i in batch], [ids[i] for i in batch] if ids else None)

        if self.api.concurrency == 1 or len(batches) == 1:
            return [one(b) for b in batches]
        with ThreadPoolExecutor(max_workers=self.api.concurrency, thread_name_prefix="vecmig-embed") as pool:
            return list(pool.map(one, batches))

    def _request(self, texts: list[str], ids: list[str] | None) -> np.ndarray:
        reserved = sum(self.lengths(texts)) if self._tokens else sum(math.ceil(len(t) / 4) for t in texts)

        def attempt() -> np.ndarray:
            if self._bucket:
                self._bucket.acquire(reserved)
            response = self._call(texts, ids)
            used = int(getattr(response.usage, "prompt_tokens", 0) or 0)
            if self._bucket:
                self._bucket.settle(reserved, used)
            with self._count_lock:
                self.prompt_tokens += used
            rows = sorted(response.data, key=lambda d: d.index)
            if len(rows) != len(texts):
                raise TerminalError(f"{public_url(self.api.base_url)} returned {len(rows)} embeddings "
                                    f"for {len(texts)} texts")
            vectors = np.asarray([r.embedding for r in rows], dtype=np.float32)
            if self._dimension is not None and vectors.shape[1] != self._dimension:
                raise TerminalError(f"{public_url(self.api.base_url)} returned vectors of width {vectors.shape[1]}, "
                                    f"expected {self._dimension}", hint="check api.dimension and the model name")
            self._learn(vectors)
            return vectors

        def counted_retry(_e: TransientError, delay: float) -> None:
            with self._count_lock:
                self.retries += 1
                self.retry_delays.append(delay)

        vectors = with_retries(attempt, budget=self.api.retry_budget, on_retry=counted_retry)
        self._counted(len(texts))
        return vectors

    def _call(self, texts: list[str], ids: list[str] | None) -> Any:
        openai = self._openai
        where = public_url(self.api.base_url)
        try:
            return self._client.embeddings.create(model=self.config.model, input=texts)
        except openai.APIStatusError as e:
            status = e.status_code
            message = self._mask(_server_message(e))
            if status in _TRANSIENT_STATUS or status >= 500:
                raise TransientError(f"{where} answered {status}: {message}",
                                     retry_after=retry_after(e.response.headers)) from None
            records = f" (records {ids[0]!r}..{ids[-1]!r})" if ids else ""
            raise TerminalError(f"{where} refused a batch of {len(texts)} texts{records} with {status}: {message}",
                                hint=_hint(status)) from None
        except openai.APIConnectionError as e:
            raise TransientError(f"{where} could not be reached: {self._mask(str(e))}") from None

    def _mask(self, text: str) -> str:
        key = self.api.api_key
        return text.replace(key, "***") if key else text


def _server_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(e, "message", e)).splitlines()[0]


def _hint(status: int) -> str:
    if status in (401, 403):
        return "check the API key the spec passes through ${env:...}"
    if status == 404:
        return "check the model name and api.base_url"
    return "fix the texts or the model settings named above"


def _seq_limit(model_dir: Path) -> int | None:
    """sentence-transformers' ``max_seq_length``: what a server running that model accepts."""
    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
