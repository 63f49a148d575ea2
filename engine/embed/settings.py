"""From the spec's ``transform.embed`` (or the plan's frozen copy of it) to the settings a model
is built from. Planning and apply both go through here, so they build the same model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vecmig.embed.config import ApiConfig, EmbedConfig

if TYPE_CHECKING:
    from vecmig.actions.params import EmbedParams
    from vecmig.spec import EmbedSpec


def _api(api: dict[str, Any] | None, api_key: str) -> ApiConfig | None:
    if api is None:
        return None
    return ApiConfig(base_url=str(api["base_url"]), api_key=api_key,
                     concurrency=int(api.get("concurrency") or 1),
                     tokens_per_minute=api.get("tokens_per_minute"), tokenizer=api.get("tokenizer"),
                     max_tokens=api.get("max_tokens"), dimension=api.get("dimension"),
                     timeout=float(api.get("timeout") or 60.0))


def config_from_params(params: EmbedParams, api_key: str = "") -> EmbedConfig:
    """The model the plan names. ``api_key`` comes from the live spec: plans hold no secret."""
    return EmbedConfig(model=params.model, device=params.device,  # type: ignore[arg-type]
                       batch_size=params.batch_size, truncate=params.truncate, api=_api(params.api, api_key))


def config_from_spec(spec: EmbedSpec) -> EmbedConfig:
    api = None
    if spec.api is not None:
        a = spec.api
        api = ApiConfig(base_url=a.base_url, api_key=a.api_key, concurrency=a.concurrency,
                        tokens_per_minute=a.tokens_per_minute, tokenizer=a.tokenizer, max_tokens=a.max_tokens,
                        dimension=a.dimension, timeout=a.timeout)
    return EmbedConfig(model=spec.model, device=spec.device, batch_size=spec.batch_size, truncate=spec.truncate,
                       api=api)
