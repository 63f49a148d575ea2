"""One entry point from settings to a model, so callers never import a backend themselves."""

from __future__ import annotations

from vecmig.embed.config import EmbedConfig
from vecmig.embed.model import Model


def make_model(config: EmbedConfig) -> Model:
    """An API model when ``config.api`` is set, else a local one (loads the weights now)."""
    if config.api is not None:
        from vecmig.embed.api import ApiModel

        return ApiModel(config)
    from vecmig.embed.local import LocalModel

    return LocalModel(config)
