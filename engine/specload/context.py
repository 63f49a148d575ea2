"""JSON pointers and the located, secret-free errors every stage raises.

A pointer is RFC 6901 (``/source/connection/dsn``); :class:`_Context` turns one into
``FILE:LINE:COL: /pointer`` through the positions the YAML stage recorded, and describes the
value there *as written* (``Spec.public``), so a resolved secret never reaches a message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from vecmig.errors import SpecError
from vecmig.spec import Locations

Pos = tuple[int, int]


def _escape(key: str) -> str:
    """RFC 6901: metadata names in rename maps may contain '/' or '~'."""
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(parts: Iterable[Any]) -> str:
    return "".join(f"/{_escape(str(p))}" for p in parts)


def _display(pointer: str) -> str:
    return pointer if pointer else "the top level"


def _in(pointer: str) -> str:
    return f"in {pointer}" if pointer else "at the top level"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def _quote(text: str) -> str:
    return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"


class _Context:
    """What every check needs to raise a located, secret-free error."""

    def __init__(self, public: Any, locations: Locations) -> None:
        self.public = public
        self.locations = locations

    def error(self, message: str, pointer: str, hint: str) -> SpecError:
        return SpecError(message, where=self.locations.where(pointer), hint=hint)

    def position(self, pointer: str) -> Pos:
        probe = pointer
        while probe and probe not in self.locations.positions:
            probe = probe.rsplit("/", 1)[0]
        return self.locations.positions.get(probe, (1, 1))

    def has(self, pointer: str) -> bool:
        try:
            self.public_value(pointer)
        except (KeyError, IndexError, TypeError, ValueError):
            return False
        return True

    def public_value(self, pointer: str) -> Any:
        value = self.public
        for token in pointer.split("/")[1:]:
            key: Any = _unescape(token)
            if isinstance(value, list):
                key = int(key)
            value = value[key]
        return value

    def shown(self, pointer: str, sensitive: bool = False) -> str:
        """Describe the value at ``pointer`` as written: never a resolved environment value."""
        value = self.public_value(pointer)
        if isinstance(value, bool):
            return f"boolean {str(value).lower()}"
        if isinstance(value, int):
            return f"integer {value}" if not sensitive else "an integer"
        if isinstance(value, float):
            return f"number {value}" if not sensitive else "a number"
        if isinstance(value, str):
            if sensitive:
                return "a string"
            suffix = " (as resolved from the environment)" if "${" in value else ""
            return f"string {_quote(value)}{suffix}"
        if value is None:
            return "nothing (an empty value)"
        if isinstance(value, dict):
            return "a mapping"
        if isinstance(value, list):
            return "a list"
        return f"{type(value).__name__} {_quote(str(value))}"

    def quoted(self, pointer: str) -> str:
        """A string value as written, quoted, flagged when it came from the environment."""
        value = self.public_value(pointer)
        text = _quote(str(value))
        return f"{text} (as resolved from the environment)" if "${" in str(value) else text
