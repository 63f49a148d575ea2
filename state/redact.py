"""Secrets must never leave vecmig: not in a message, a log, a plan, the state or an export.

Masking only the exact strings vecmig resolved is not enough: a driver parses a DSN its own
way (a password holding an unescaped ``/`` becomes part of a "host" or "database" name) and
prints the pieces it got. So a :class:`Redactor` knows the *shapes* secrets take:

* URL userinfo, ``scheme://user:password@host``, found by the last ``@`` of the authority so a
  password holding ``/ @ : # ?`` is still taken whole; the userinfo, the password and every
  piece of it split on those characters (at least :data:`MIN_FRAGMENT` long) are masked;
* key=value connection strings, ``password=...`` (quoted or not) and ``?password=`` style
  query parameters;
* and, in any text whatever, anything still looking like ``scheme://userinfo@`` or
  ``password=value`` is masked by shape, known or not.

A redactor also puts ``${env:NAME}`` back where a *non-secret* value came from the
environment (a path, a collection name): those are shown as written, never resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
# Pieces of a password shorter than this are not masked on their own (masking "a" or "12"
# everywhere would wreck every message); the whole password and userinfo always are.
MIN_FRAGMENT = 4

_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://")
# Characters a URL or a conninfo string uses as separators: a password is cut at them by
# whatever parses it, so each piece is a secret of its own.
_SEPARATORS = re.compile(r"[/@:#?%&=;,\s'\"\\]+")
_SECRET_KEYS = r"password|passwd|pwd|pass|sslpassword|api[_-]?key|apikey|token|secret|access[_-]?token"
_KV_SECRET = re.compile(
    rf"(?i)(?<![A-Za-z0-9_])({_SECRET_KEYS})\s*=\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;#]*)")
_QUERY_SECRET = re.compile(rf"(?i)[?&]({_SECRET_KEYS})=([^&#]*)")
# In free text: the userinfo of anything URL-shaped (up to the last '@' before a space).
_TEXT_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s\"'<>@]*(?:@[^\s\"'<>@]*)*@")
# In free text: an HTTP-style header or JSON key carrying a key ("Api-Key: ...", "api_key": "...").
# A `${env:NAME}` placeholder names where a key comes from, never the key itself: left as written.
_TEXT_HEADER = re.compile(
    r"(?i)([\"']?(?:api[_-]?key|password|sslpassword)[\"']?\s*:\s*)([\"']?)(?!\$\{env:)[^\s\"',}]+")


def _fragments(secret: str) -> set[str]:
    out = {secret}
    for variant in {secret, unquote(secret)}:
        out.add(variant)
        out.update(p for p in _SEPARATORS.split(variant) if len(p) >= MIN_FRAGMENT)
    return {s for s in out if s}


def _unquote_kv(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def secret_parts(value: str, *, whole: bool = True) -> set[str]:
    """Everything to mask for one configured value: the value and what a parser may print of it.

    ``whole``: the value is a secret as such (a DSN, an API key, a state URL), so it is masked
    whole, and when it has no recognisable shape, piece by piece. Otherwise (a path, a host)
    only the userinfo it may carry counts.
    """
    value = str(value)
    parts: set[str] = set()
    components: list[str] = []
    shaped = False
    if _SCHEME.match(value):
        rest = value.split("://", 1)[1]
        if "@" in rest:
            shaped = True
            # The last '@' ends the userinfo, wherever the first '/' is: libpq would cut a
            # password holding '/' there, but the user meant all of it.
            # The user name alone is not secret (and masking it would mask "vecmig" or
            # "postgres" everywhere); user:password as a unit and the password's pieces are.
            for info in {rest[: rest.rindex("@")], rest[: rest.index("@")]}:
                if ":" in info:
                    parts.add(info)
                    components.append(info.split(":", 1)[1])
        for m in _QUERY_SECRET.finditer(value):
            shaped = True
            components.append(m.group(2))
    for m in _KV_SECRET.finditer(value):
        shaped = True
        components.append(_unquote_kv(m.group(2)))
    if whole:
        parts.add(value)
        if not shaped:
            components.append(value)
    for c in components:
        if c:
            parts |= _fragments(c)
    return {p for p in parts if p}


# A short value ("docs", "blue") is put back only where it stands alone, not inside "docs_v2"
# or "blue-green"; a long one (a path) wherever it is.
_SHORT = 8
_WORD = r"A-Za-z0-9_.\-"


def _standalone(value: str) -> str:
    if len(value) >= _SHORT:
        return re.escape(value)
    return rf"(?<![{_WORD}]){re.escape(value)}(?![{_WORD}])"


_HEX = frozenset("0123456789abcdefABCDEF")
# Digests (audit hashes, checksums, before-image digests) are hex runs this long or longer.
_DIGEST_RUN = 16


def _mask(text: str, secret: str) -> str:
    """``text`` with ``secret`` masked, except where an all-hex piece of a password merely
    happens to occur inside a longer hex digest: masking it there would corrupt a hash the
    audit chain or a checksum comparison relies on, and reveals nothing of the secret."""
    if not set(secret) <= _HEX:
        return text.replace(secret, MASK)
    out: list[str] = []
    pos = 0
    start = text.find(secret)
    while start != -1:
        a, b = start, start + len(secret)
        while a > 0 and text[a - 1] in _HEX:
            a -= 1
        while b < len(text) and text[b] in _HEX:
            b += 1
        inside_digest = b - a >= _DIGEST_RUN and b - a > len(secret)
        if not inside_digest:
            out.append(text[pos:start])
            out.append(MASK)
            pos = start + len(secret)
        start = text.find(secret, start + len(secret))
    out.append(text[pos:])
    return "".join(out)


def mask_shapes(text: str) -> str:
    """Mask whatever looks like a credential in ``text``, whether or not it is known."""
    text = _TEXT_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _KV_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)
    return _TEXT_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class Redactor:
    """Masks secrets (and their pieces) and restores ``${env:...}`` placeholders in text.

    ``secrets``: configured secret values (DSNs, API keys, state URLs), each expanded by
    :func:`secret_parts`. ``public``: resolved non-secret value -> the text it was written
    as (``/data/in.jsonl`` -> ``${env:DATA}/in.jsonl``).
    """

    def __init__(self, secrets: Iterable[str] = (), public: Mapping[str, str] | None = None) -> None:
        parts: set[str] = set()
        for s in secrets:
            if s:
                parts |= secret_parts(s)
        # Longest first so a secret containing another is masked whole.
        self._secrets = sorted(parts, key=lambda s: (-len(s), s))
        self._public = sorted(((k, v) for k, v in (public or {}).items() if k and k != v),
                              key=lambda kv: (-len(kv[0]), kv[0]))
        self._pattern: re.Pattern[str] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for s in self._secrets:
            if s in text:
                text = _mask(text, s)
        text = mask_shapes(text)
        return self.publicize(text)

    def publicize(self, text: str) -> str:
        """Non-secret values from the environment shown as written (``${env:NAME}``)."""
        if not self._public or not text:
            return text
        # One pass, longest match first, so a replacement is never replaced again.
        if self._pattern is None:
            self._pattern = re.compile("|".join(_standalone(k) for k, _ in self._public))
        table = dict(self._public)
        return self._pattern.sub(lambda m: table[m.group(0)], text)

    def walk(self, value: Any) -> Any:
        """:meth:`__call__` on every string value (not the keys) of a JSON-like structure."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.walk(v) for v in value]
        return value
