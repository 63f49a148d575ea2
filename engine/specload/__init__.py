"""Load a YAML migration spec into :class:`vecmig.spec.Spec`, or say exactly what is wrong.

The pipeline, and why it is shaped this way:

1. ``yaml.compose`` (SafeLoader) gives a node tree with line/column marks. We walk it once to
   record where every JSON pointer lives, to reject duplicate and non-string keys (PyYAML
   silently keeps the last duplicate), and only then construct plain Python data. That data,
   untouched, is ``Spec.public``: placeholders intact and defaults not filled in, so the spec
   hash only changes when a person edits the file.
2. ``${env:NAME}`` placeholders are resolved into a separate copy. An unset variable is not
   raised at once: it competes with schema errors by position, so a typo near the top of the
   file is reported first even in a shell without the secrets.
3. The resolved copy is checked against ``schemas/spec.v1.json`` (provider-independent
   structure), then against rules the schema cannot express (registered providers, what one
   provider needs, strategies not implemented yet, cross-key constraints).
4. Every problem becomes one :class:`SpecError` with ``where = FILE:LINE:COL: /pointer`` and a
   hint. Messages quote values from the *public* copy only, so a resolved secret can never
   reach an error message, a log or a CI transcript.

The stages, in the order ``_build`` below runs them, each in its own module:
:mod:`~vecmig.specload.positions` (1), :mod:`~vecmig.specload.interpolation` (2, and which
values are secret), :mod:`~vecmig.specload.schema_errors` and :mod:`~vecmig.specload.rules`
with :mod:`~vecmig.specload.store_rules` (3), :mod:`~vecmig.specload.assembly` (the Spec);
:mod:`~vecmig.specload.context` holds the JSON pointers and located errors of 4 they share.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vecmig import safe_paths
from vecmig.errors import SpecError
from vecmig.spec import Locations, Spec
from vecmig.specload.assembly import _assemble
from vecmig.specload.context import _Context
from vecmig.specload.interpolation import _Interpolation, _sensitivity
from vecmig.specload.literal_secrets import check_literal_secrets
from vecmig.specload.positions import _parse_yaml
from vecmig.specload.rules import _check_rules
from vecmig.specload.schema_errors import _first_problem

__all__ = ["load_public", "load_spec", "load_spec_text", "public_hash", "public_of_file"]


def load_spec(path: str | Path, env: Mapping[str, str] | None = None) -> Spec:
    """Read and validate the spec at ``path``; ``env`` defaults to ``os.environ``."""
    p = Path(path)
    text = _read(p)
    return load_spec_text(text, file=str(path), base_dir=p.absolute().parent, env=env)


def load_spec_text(
    text: str,
    file: str = "<string>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Spec:
    """Validate spec ``text``; ``file`` names it in errors, ``base_dir`` anchors relative paths."""
    public, positions = _parse_yaml(text, file)
    return _build(public, Locations(file, positions), _abs_dir(base_dir), env)


def load_public(public: dict[str, Any], file: str, base_dir: Path, env: Mapping[str, str] | None = None) -> Spec:
    """Rebuild a Spec from the public dict a saved plan embeds, resolving ``${env:...}`` anew.

    There is no YAML here, so errors point at ``file:1:1`` plus the exact JSON pointer.
    """
    return _build(copy.deepcopy(public), Locations(file, {}), _abs_dir(base_dir), env)


def public_hash(public: Any) -> str:
    """The spec hash of a spec as written; identical to ``Spec.spec_hash``."""
    blob = json.dumps(public, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def public_of_file(path: Path) -> tuple[Any, str]:
    """A spec file as written and its hash, without resolving ``${env:...}`` or validating.

    A saved plan compares this with its own spec hash: a changed secret leaves the file, and
    so the hash, as it was.
    """
    public, _ = _parse_yaml(_read(path), str(path))
    return public, public_hash(public)


def _abs_dir(base_dir: Path | None) -> Path:
    return Path(base_dir).absolute() if base_dir is not None else Path.cwd()


def _read(path: Path) -> str:
    shown = str(path)
    if not os.path.lexists(path):
        raise SpecError(
            f"spec file not found: {shown}",
            where=shown,
            hint=f"check the path (looked for {path.absolute()})",
        )
    if path.is_dir():
        raise SpecError(f"spec path is a directory: {shown}", where=shown, hint="pass the YAML file itself")
    try:
        data = safe_paths.read_bytes(path, "spec file", safe_paths.SPEC_MAX_BYTES, where=shown, error=SpecError,
                                     hint="a spec is a YAML file of a few kilobytes: pass the spec itself")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {shown}", where=shown,
                        hint=f"check the path (looked for {path.absolute()})") from None
    except OSError as exc:
        raise SpecError(
            f"cannot read spec file: {exc.strerror}", where=shown, hint="check the file's permissions"
        ) from None
    try:
        # utf-8-sig: editors on Windows like to prepend a BOM; it is not part of the YAML.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec file is not UTF-8 text (bad byte at offset {exc.start})",
            where=shown,
            hint="save the file as UTF-8",
        ) from None


def _build(public: Any, locations: Locations, base_dir: Path, env: Mapping[str, str] | None) -> Spec:
    ctx = _Context(public, locations)
    if not isinstance(public, dict):
        got = "nothing" if public is None else ctx.shown("")
        raise ctx.error(
            f"the spec must be a mapping of keys (version, name, source, target, ...), got {got}",
            "",
            "start the file with `version: 1` on its own line, then `name:`, `source:` and `target:`",
        )
    environ = os.environ if env is None else env
    check_literal_secrets(ctx, public)
    interp = _Interpolation(ctx, environ)
    resolved = interp.resolve(public, "")
    problem = _first_problem(ctx, resolved, interp)
    if problem is not None:
        raise problem
    _check_rules(ctx, resolved, base_dir)
    secrets, shown, env_values, env_vars = _sensitivity(public, resolved, interp)
    spec = _assemble(resolved, public, locations, base_dir, secrets, shown)
    return dataclasses.replace(spec, env_values=env_values, env_vars=env_vars)
