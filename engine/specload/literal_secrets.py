"""Credentials written into the spec itself are refused: plans and state keep the spec as
written (a saved plan is applied from it), so only a `${env:NAME}` placeholder may stand where
a key, token or password goes."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vecmig.specload.context import _Context, _escape
from vecmig.specload.interpolation import _is_secret_pointer

ENV_PLACEHOLDER = re.compile(r"\$\{env:[^}]*\}")
# Keys whose whole value is a credential (a DSN or URL may also be a plain address).
CREDENTIAL_KEY = re.compile(r"(?i)password|passwd|secret|token|api_?key|credential")
CREDENTIAL_PARAM = re.compile(r"(?i)^(password|passwd|secret|token|api_?key|key|credential|sslpassword)$")
KV_PASSWORD = re.compile(r"(?i)(?:^|\s)(password|sslpassword)\s*=\s*('[^']+'|[^\s']+)")


def _credential_in(text: str) -> str | None:
    """What kind of credential ``text`` (placeholders removed) carries literally, if any."""
    if "://" in text:
        parts = urlsplit(text)
        if parts.password:
            return "a password in the URL"
        for name, value in parse_qsl(parts.query):
            if value and CREDENTIAL_PARAM.match(name):
                return f"a {name} in the URL"
        return None
    found = KV_PASSWORD.search(text)
    return f"a {found.group(1)}" if found else None


# Keys outside a connection that hold a credential, or a URL that may carry one.
EMBED_KEYS = (("api", "api_key"), ("api", "base_url"), ("cache",))


def _settings(public: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(pointer, key, value) of every value the rule looks at."""
    out: list[tuple[str, str, Any]] = []
    for role in ("source", "target"):
        store = public.get(role)
        conn = store.get("connection") if isinstance(store, dict) else None
        if isinstance(conn, dict):
            out.extend((f"/{role}/connection/{_escape(str(k))}", str(k), v) for k, v in conn.items())
    transform = public.get("transform")
    embed = transform.get("embed") if isinstance(transform, dict) else None
    for path in EMBED_KEYS if isinstance(embed, dict) else ():
        value: Any = embed
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out.append(("/transform/embed/" + "/".join(path), path[-1], value))
    return out


def check_literal_secrets(ctx: _Context, public: dict[str, Any]) -> None:
    for pointer, key, value in _settings(public):
        if not isinstance(value, str) or not value:
            continue
        secret_key = _is_secret_pointer(pointer)
        if not secret_key and not pointer.startswith("/transform/"):
            continue
        literal = ENV_PLACEHOLDER.sub("", value)
        what = ("the value itself" if literal == value and secret_key and CREDENTIAL_KEY.search(key)
                else _credential_in(literal))
        if what:
            raise ctx.error(
                f"{pointer} holds a credential written in the spec ({what}); plans and the state keep "
                "the spec as written",
                pointer,
                "put it in an environment variable and write `${env:NAME}` in its place",
            )
