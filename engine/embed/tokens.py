"""Token counts and truncation with a model's real tokenizer (Hugging Face ``tokenizers``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer


class TokenCounter:
    """A private copy of a tokenizer with no truncation or padding: the copy matters because
    ``transformers`` reconfigures the tokenizer it wraps on every call."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_truncation()
        self._tok.no_padding()
        self._lock = threading.Lock()  # encode_batch is safe, but truncate reconfigures a copy

    @classmethod
    def from_dir(cls, model_dir: Path) -> TokenCounter:
        return cls(Tokenizer.from_file(str(model_dir / "tokenizer.json")))

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=True)]

    def truncate(self, text: str, max_tokens: int) -> str:
        enc = self._tok.encode(text, add_special_tokens=True)
        if len(enc.ids) <= max_tokens:
            return text
        # Keep the tokens that fit beside the special ones, and cut the text where the last
        # kept token ends: the prefix re-tokenises to the same tokens.
        specials = sum(enc.special_tokens_mask)
        keep = max(0, max_tokens - specials)
        ends = [end for (_, end), special in zip(enc.offsets, enc.special_tokens_mask, strict=True) if not special]
        return text[:ends[keep - 1]] if keep else ""
