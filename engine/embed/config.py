"""The frozen settings a model is built from; checked here so a bad value fails before any load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vecmig.errors import VecmigError

Device = Literal["cpu", "cuda", "auto"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda", "auto")


class EmbedConfigError(VecmigError):
    """The embedding settings are unusable (unknown model, bad device, missing tokenizer...)."""


@dataclass(frozen=True)
class ApiConfig:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint.

    ``api_key`` is held only in memory and kept out of ``repr`` so it cannot reach a log or an
    error. ``tokenizer`` names a local model (packaged name or path) whose tokenizer is the served
    model's, for exact token counts; without it, counts are estimated (see ``api.py``).
    """

    base_url: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 1
    tokens_per_minute: int | None = None
    tokenizer: str | None = None
    max_tokens: int | None = None
    dimension: int | None = None
    timeout: float = 60.0
    retry_budget: float = 120.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise EmbedConfigError(f"api.base_url {self.base_url!r} is not an http(s) URL",
                                   hint="give the endpoint's base, e.g. https://api.openai.com/v1")
        if self.concurrency < 1:
            raise EmbedConfigError(f"api.concurrency is {self.concurrency}", hint="use 1 or more")
        if self.tokens_per_minute is not None and self.tokens_per_minute < 1:
            raise EmbedConfigError(f"api.tokens_per_minute is {self.tokens_per_minute}",
                                   hint="use a positive limit or leave it out")


@dataclass(frozen=True)
class EmbedConfig:
    """``model`` is a packaged name (``all-MiniLM-L6-v2``), a local model directory, or, with
    ``api``, the model name the endpoint serves. ``truncate: false`` refuses texts over the
    model's token limit instead of cutting them."""

    model: str
    device: Device = "cpu"
    batch_size: int = 32
    truncate: bool = False
    api: ApiConfig | None = None
    # Texts are sorted by length within a window of this many batches, so a batch pads little.
    sort_window: int = 8

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise EmbedConfigError("model is empty", hint="name a model, e.g. all-MiniLM-L6-v2")
        if self.device not in DEVICES:
            raise EmbedConfigError(f"device {self.device!r} is not one of cpu, cuda, auto",
                                   hint="use device: cpu, cuda or auto")
        if self.batch_size < 1:
            raise EmbedConfigError(f"batch_size is {self.batch_size}", hint="use 1 or more")
        if self.sort_window < 1:
            raise EmbedConfigError(f"sort_window is {self.sort_window}", hint="use 1 or more")
