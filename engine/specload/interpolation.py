"""Stage 2, interpolation: ``${env:NAME}`` resolved into a copy; what is secret and how values are shown.

The public data keeps its placeholders as written; only the resolved copy is validated and
built. An unset variable is remembered, not raised, so it competes with schema errors by
position. Afterwards :func:`_sensitivity` says which resolved values must be masked
everywhere and how non-secret values from the environment are shown (as written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from vecmig.specload.context import _Context, _escape, _unescape

# Any ``${...}``; what is inside is checked separately so `${SOURCE_DSN}` gets a precise error
# instead of being sent to a server as a literal DSN.
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")


class _Interpolation:
    """Resolves ``${env:NAME}`` in every string value; remembers what was missing."""

    def __init__(self, ctx: _Context, env: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.env = env
        self.missing: list[tuple[str, str]] = []  # (pointer, variable name)

    def resolve(self, value: Any, pointer: str) -> Any:
        if isinstance(value, str):
            return self.resolve_string(value, pointer)
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{pointer}/{_escape(str(k))}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    def resolve_string(self, text: str, pointer: str) -> str:
        if "${" not in text:
            return text
        out = PLACEHOLDER.sub(lambda m: self.substitute(m, pointer), text)
        if "${" in PLACEHOLDER.sub("", text):
            raise self.ctx.error(
                f"unclosed placeholder in {pointer}",
                pointer,
                "write ${env:NAME} with the closing brace",
            )
        return out

    def substitute(self, match: re.Match[str], pointer: str) -> str:
        ref = ENV_REF.fullmatch(match.group(1))
        if ref is None:
            raise self.ctx.error(
                f"unsupported placeholder '{match.group(0)}' in {pointer}",
                pointer,
                "write ${env:NAME} to read the environment variable NAME",
            )
        name = ref.group(1)
        if name not in self.env:
            self.missing.append((pointer, name))
            return ""
        return str(self.env[name])


# Connection keys whose values are not secret as such (they may still carry a URL's userinfo,
# which is): keys some store's kit declares, that no kit lists among its secrets and whose name
# does not say secret. Every other connection key, state.url and any key naming a password, key
# or token is a secret: a third-party provider's unknown key is masked rather than shown.
@cache
def not_secret_connection_keys() -> frozenset[str]:
    from vecmig.providers import kits

    declared = {key for rules in kits().values() for key in rules.connection_schema}
    secret = {key for rules in kits().values() for key in rules.secret_keys}
    return frozenset(k for k in declared - secret if not SECRET_KEY.search(k))


# "token" but not "tokenizer" (transform.embed.api.tokenizer names a model, which masking would
# turn into "***" in the plan the copy runs from).
SECRET_KEY = re.compile(r"(?i)password|passwd|secret|token(?!izer)|api_?key|dsn|credential")


def _is_secret_pointer(pointer: str) -> bool:
    parts = [_unescape(p) for p in pointer.split("/")[1:]]
    if parts[:2] == ["state", "url"]:
        return True
    if len(parts) >= 3 and parts[0] in ("source", "target") and parts[1] == "connection":
        return parts[2] not in not_secret_connection_keys()
    return bool(parts) and bool(SECRET_KEY.search(parts[-1]))


def _sensitivity(public: Any, resolved: Any, interp: _Interpolation) -> tuple[
        frozenset[str], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """What must be masked, and how resolved non-secret values are shown (as written).

    Secrets: every value at a secret key (written in the spec or from the environment), and
    the userinfo of any URL-shaped value. Shown: a non-secret value that came from the
    environment maps back to its text as written (``${env:DATA}/in.jsonl``), and so does each
    such variable's own value (at least eight characters), wherever it turns up.
    """
    from vecmig.state.redact import MIN_FRAGMENT, secret_parts

    secrets: set[str] = set()
    shown: dict[str, str] = {}
    secret_vars: set[str] = set()
    public_vars: set[str] = set()
    env_values: dict[str, str] = {}  # pointer -> resolved non-secret value from the environment

    def walk(pub: Any, res: Any, pointer: str) -> None:
        if isinstance(pub, dict) and isinstance(res, dict):
            for k in pub:
                if k in res:
                    walk(pub[k], res[k], f"{pointer}/{_escape(str(k))}")
            return
        if isinstance(pub, list) and isinstance(res, list):
            for i, (p, r) in enumerate(zip(pub, res, strict=False)):
                walk(p, r, f"{pointer}/{i}")
            return
        if not isinstance(res, str) or not res:
            return
        names = ENV_REF.findall(pub) if isinstance(pub, str) else []
        if _is_secret_pointer(pointer):
            secrets.add(res)
            secret_vars.update(names)
            return
        secrets.update(secret_parts(res, whole=False))
        if names and isinstance(pub, str):
            env_values[pointer] = res
            public_vars.update(names)
            if pub != res:
                shown[res] = pub

    walk(public, resolved, "")
    for name in sorted(public_vars - secret_vars):
        value = interp.env.get(name, "")
        if len(value) >= 2 * MIN_FRAGMENT and value not in shown:
            shown[value] = f"${{env:{name}}}"
    for name in secret_vars:
        if interp.env.get(name):
            secrets.add(interp.env[name])
    shown = {k: v for k, v in shown.items() if k not in secrets}
    env_vars = {n: str(interp.env[n]) for n in public_vars - secret_vars if n in interp.env}
    return (frozenset(secrets), tuple(sorted(shown.items())), tuple(sorted(env_values.items())),
            tuple(sorted(env_vars.items())))
