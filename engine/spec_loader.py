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
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vecmig import safe_paths
from vecmig.errors import SpecError
from vecmig.providers import available
from vecmig.schemas import load as load_schema
from vecmig.spec import (
    IMPLEMENTED_STRATEGIES,
    CostSpec,
    CreateSpec,
    Fields,
    IndexSpec,
    Locations,
    MappingSpec,
    PointerSpec,
    Spec,
    StoreSpec,
    StrategySpec,
    ValidateSpec,
)

__all__ = ["load_public", "load_spec", "load_spec_text", "public_hash", "public_of_file"]

SCHEMA_NAME = "spec.v1"
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PLAIN_NAME_RULE = "use letters, digits and _, starting with a letter or _, at most 63 characters"
# Any ``${...}``; what is inside is checked separately so `${SOURCE_DSN}` gets a precise error
# instead of being sent to a server as a literal DSN.
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
# A spec is a few dozen nodes; this only stops alias bombs ("billion laughs") early.
MAX_NODES = 50_000

Pos = tuple[int, int]


# ----------------------------------------------------------------------------- public API


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


# ----------------------------------------------------------------------------- YAML + positions


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[str, Pos]]:
    """Parse one YAML document; return the plain data and pointer -> (line, col) of each key."""
    loader = None
    root = None
    try:
        # Inside the try: the reader checks the first characters already (a control
        # character or a lone surrogate near the start raises here).
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
        if root is None:
            raise SpecError(
                "spec file is empty",
                where=f"{file}:1:1: /",
                hint="start with `version: 1`, `name: ...`, `source:` and `target:` (see plans/)",
            )
        positions: dict[str, Pos] = {"": _mark_pos(root.start_mark)}
        _NodeWalker(file, positions).walk(root, "", frozenset())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file) from None
    except yaml.reader.ReaderError as exc:  # unmarked: a control character, a lone surrogate
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SpecError(
            f"not valid YAML: character U+{ord(char):04X} is not allowed in YAML text",
            where=f"{file}:{line}:{col}",
            hint="remove it, or write it as an escape inside a double-quoted string",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {str(exc).splitlines()[0]}", where=f"{file}:1:1",
                        hint="fix the YAML syntax") from None
    except RecursionError:
        raise SpecError(
            "spec is nested too deeply", where=f"{file}:1:1", hint="a spec needs a few levels at most"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar its tag cannot read: `!!int x`
        line, col = _unreadable_scalar(root) if root is not None else (1, 1)
        raise SpecError(
            f"a value cannot be read as its YAML type says ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})",
            where=f"{file}:{line}:{col}",
            hint="remove the explicit tag (`!!int`, `!!float`, ...) or fix the value",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, positions


def _unreadable_scalar(root: Node) -> Pos:
    """Where the first scalar is that the safe constructor refuses (1:1 if none is found)."""
    probe = yaml.SafeLoader("")
    try:
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    probe.construct_object(node, deep=True)
                except (ValueError, TypeError, OverflowError, yaml.YAMLError):
                    return _mark_pos(node.start_mark)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(reversed(node.value))
            elif isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
    finally:
        probe.dispose()
    return 1, 1


def _mark_pos(mark: yaml.Mark) -> Pos:
    return mark.line + 1, mark.column + 1  # PyYAML marks are 0-based; editors count from 1


def _escape(key: str) -> str:
    """RFC 6901: metadata names in rename maps may contain '/' or '~'."""
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(parts: Iterable[Any]) -> str:
    return "".join(f"/{_escape(str(p))}" for p in parts)


class _NodeWalker:
    """Records key positions; rejects duplicate keys, non-string keys and recursive aliases."""

    def __init__(self, file: str, positions: dict[str, Pos]) -> None:
        self.file = file
        self.positions = positions
        self.visited = 0

    def error(self, message: str, node: Node, pointer: str, hint: str, at_key: bool = False) -> SpecError:
        # at_key: an alias node's own mark is its anchor's, elsewhere in the file.
        line, col = self.positions[pointer] if at_key else _mark_pos(node.start_mark)
        return SpecError(message, where=f"{self.file}:{line}:{col}: {pointer or '/'}", hint=hint)

    def walk(self, node: Node, pointer: str, ancestors: frozenset[int]) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise self.error(
                "spec expands to too many values (aliases nested in aliases?)",
                node,
                pointer,
                "write the spec out without nested anchors and aliases",
            )
        if id(node) in ancestors:
            raise self.error(
                f"recursive alias at {pointer or '/'}",
                node,
                pointer,
                "an alias must not contain itself",
                at_key=True,
            )
        inner = ancestors | {id(node)}
        if isinstance(node, MappingNode):
            self.walk_mapping(node, pointer, inner)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{pointer}/{i}"
                self.positions[child] = _mark_pos(item.start_mark)
                self.walk(item, child, inner)

    def walk_mapping(self, node: MappingNode, pointer: str, ancestors: frozenset[int]) -> None:
        # Merged keys (`<<: *defaults`) first, so explicit keys overriding them win the position.
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                for merged in _merge_sources(value_node):
                    self.walk_mapping(merged, pointer, ancestors)
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.key_text(key_node, pointer)
            child = f"{pointer}/{_escape(key)}"
            if key in seen:
                first_line = seen[key].start_mark.line + 1
                raise self.error(
                    f"duplicate key '{key}' {_in(pointer)}",
                    key_node,
                    child,
                    f"'{key}' is already set on line {first_line}; keep one of them",
                )
            seen[key] = key_node
            self.positions[child] = _mark_pos(key_node.start_mark)
            self.walk(value_node, child, ancestors)

    def key_text(self, key_node: Node, pointer: str) -> str:
        if isinstance(key_node, ScalarNode) and key_node.tag == STR_TAG:
            return str(key_node.value)
        if isinstance(key_node, ScalarNode):
            # YAML 1.1 reads `on:`, `yes:`, `1:` as booleans / numbers, not names.
            tag = key_node.tag.rsplit(":", 1)[-1]
            kind = {"bool": "true/false", "int": "a number", "float": "a number", "null": "empty"}.get(tag, tag)
            raise self.error(
                f"key '{key_node.value}' {_in(pointer)} is read as {kind}, not a name",
                key_node,
                pointer,
                f"quote it: '\"{key_node.value}\": ...'",
            )
        raise self.error(
            f"a key {_in(pointer)} is a list or mapping, not a name",
            key_node,
            pointer,
            "keys are plain names such as `collection`",
        )


def _merge_sources(node: Node) -> list[MappingNode]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode):
        return [n for n in node.value if isinstance(n, MappingNode)]
    return []  # invalid merge value: the constructor reports it with its own mark


# PyYAML's parser vocabulary, said the way a person editing the file thinks about it.
FRIENDLY_YAML = (
    ("expected <block end>", "this line's indentation does not match the lines above it"),
    ("found another document", "a second YAML document starts here"),
    (
        "mapping values are not allowed here",
        "unexpected ':', from a key indented too far or an unquoted ': ' in a value",
    ),
)


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = _mark_pos(mark) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    friendly = next((text for marker, text in FRIENDLY_YAML if marker in problem), None)
    details = [problem] if friendly else []
    if exc.context and exc.problem:
        at = exc.context_mark
        same_line = at is None or (mark is not None and at.line == mark.line)
        details.append(exc.context if at is None or same_line else f"{exc.context} on line {at.line + 1}")
    message = f"YAML syntax error: {friendly or problem}"
    if details:
        message += f" ({'; '.join(details)})"
    return SpecError(message, where=f"{file}:{line}:{col}", hint=_yaml_hint(exc))


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = f"{exc.context or ''} {exc.problem or ''}"
    if "'\\t'" in problem or "tab" in problem:
        return "indent with spaces, not tabs"
    if "flow sequence" in problem or "flow mapping" in problem:
        opened = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        return f"close the bracket opened{opened}, and separate items with commas"
    if "expected a single document" in problem:
        return "a spec file holds one YAML document; remove the extra '---'"
    if "constructor for the tag" in problem:
        return "YAML tags are not supported; read values from the environment with ${env:NAME}"
    if "found undefined alias" in problem:
        return "define the anchor (&name) before using the alias (*name)"
    if "quoted scalar" in problem:
        return "close the quote"
    if "mapping values are not allowed" in problem or "block end" in problem or "indent" in problem:
        return "check the indentation: keys of one mapping line up, nested keys go two spaces further in"
    return "fix the YAML syntax at this position"


# ----------------------------------------------------------------------------- error helpers


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


TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}
TYPE_HINTS = {
    "object": "write the key, then its entries on the following lines, indented two more spaces",
    "array": "write a list, e.g. [a, b], or one '- item' per line",
    "string": "write text; quote it if YAML would read it as a number, date or true/false",
    "integer": "write a whole number without quotes",
    "boolean": "write true or false",
}


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


# ----------------------------------------------------------------------------- build


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
    interp = _Interpolation(ctx, environ)
    resolved = interp.resolve(public, "")
    problem = _first_problem(ctx, resolved, interp)
    if problem is not None:
        raise problem
    _check_rules(ctx, resolved, base_dir)
    secrets, shown, env_values, env_vars = _sensitivity(public, resolved, interp)
    spec = _assemble(resolved, public, locations, base_dir, secrets, shown)
    return dataclasses.replace(spec, env_values=env_values, env_vars=env_vars)


# Connection keys whose values are not secret as such (they may still carry a URL's userinfo,
# which is). Every other connection key, state.url and any key naming a password, key or token
# is a secret: a third-party provider's unknown key is masked rather than shown.
NOT_SECRET_CONNECTION_KEYS = frozenset({"path", "embedded", "host", "concurrency", "timeout", "ready_timeout",
                                        "nested_metadata", "name", "terminal_on_id"})  # name, terminal_on_id: memory
SECRET_KEY = re.compile(r"(?i)password|passwd|secret|token|api_?key|dsn|credential")


def _is_secret_pointer(pointer: str) -> bool:
    parts = [_unescape(p) for p in pointer.split("/")[1:]]
    if parts[:2] == ["state", "url"]:
        return True
    if len(parts) >= 3 and parts[0] in ("source", "target") and parts[1] == "connection":
        return parts[2] not in NOT_SECRET_CONNECTION_KEYS
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


# ----------------------------------------------------------------------------- schema errors


@cache
def _schema_root() -> dict[str, Any]:
    return load_schema(SCHEMA_NAME)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema_root())


# Among errors at the same place, the most basic one explains the others.
PRIORITY = {"type": 0, "additionalProperties": 1, "unevaluatedProperties": 1, "required": 2}


def _first_problem(ctx: _Context, resolved: dict[str, Any], interp: _Interpolation) -> SpecError | None:
    """The earliest problem in the file: a schema violation or an unset environment variable."""
    missing_at = {p for p, _ in interp.missing}
    candidates: list[tuple[tuple[Any, ...], Callable[[], SpecError | None]]] = []
    for err in _validator().iter_errors(resolved):
        pointer = _pointer(list(err.absolute_path))
        if pointer in missing_at:
            continue  # the value is unknown, so judging it would only add noise
        key = (ctx.position(pointer), PRIORITY.get(str(err.validator), 3), pointer)
        candidates.append((key, partial(_translate, ctx, err)))
    for pointer, name in interp.missing:
        key = (ctx.position(pointer), 3, pointer)
        candidates.append((key, partial(_unset_env, ctx, pointer, name)))
    for _, make in sorted(candidates, key=lambda c: c[0]):
        problem = make()
        if problem is not None:
            return problem
    return None


def _unset_env(ctx: _Context, pointer: str, name: str) -> SpecError:
    return ctx.error(
        f"environment variable '{name}' is not set (used at {pointer})",
        pointer,
        f"export {name}=... in the shell that runs vecmig, or write the value in the spec",
    )


def _annotations(err: ValidationError) -> dict[str, Any]:
    """The x-* annotations of the schemas that apply to the failing value.

    jsonschema's schema path skips ``$ref`` hops, so each step is looked up along the ref
    chain. Annotations reset whenever the path descends into a child value: the parent's
    hint is about the parent.
    """
    root = _schema_root()
    path = list(err.absolute_schema_path)[:-1]  # the last step is the failing keyword
    node: Any = root
    found: dict[str, Any] = {}
    i = 0
    while True:
        chain = _ref_chain(node)
        for schema in reversed(chain):  # a property's own x-hint beats its $ref target's
            found.update({k: v for k, v in schema.items() if str(k).startswith("x-")})
        if i >= len(path):
            return found
        step = path[i]
        i += 1
        if step in ("properties", "patternProperties"):
            key = path[i]
            i += 1
            node = next(s[step][key] for s in chain if key in s.get(step, {}))
            found = {}
        else:
            node = next(s[step] for s in chain if step in s)
            if step in ("items", "additionalProperties", "unevaluatedProperties"):
                found = {}


def _ref_chain(node: Any) -> list[dict[str, Any]]:
    """``node`` and every schema its ``$ref`` leads to (local refs only)."""
    chain: list[dict[str, Any]] = []
    while isinstance(node, dict):
        chain.append(node)
        node = _resolve_ref(_schema_root(), node["$ref"]) if "$ref" in node else None
    return chain


def _resolve_ref(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for token in ref.removeprefix("#/").split("/"):
        node = node[_unescape(token)]
    return node


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    return [key for link in _ref_chain(schema) for key in link.get("properties", {})]


def _schema(err: ValidationError) -> dict[str, Any]:
    """The schema holding the keyword that failed; {} for a boolean schema (it has no keywords)."""
    return err.schema if isinstance(err.schema, dict) else {}


def _translate(ctx: _Context, err: ValidationError) -> SpecError | None:
    pointer = _pointer(list(err.absolute_path))
    notes = _annotations(err)
    handler = TRANSLATORS.get(str(err.validator), _generic)
    return handler(ctx, err, pointer, notes)


def _custom(notes: dict[str, Any], keyword: str, **values: str) -> str | None:
    template = notes.get("x-messages", {}).get(keyword)
    return template.format(**values) if template else None


# Keys people put one level off; the did-you-mean cannot catch these.
MISPLACED = {
    ("/source", "create"): "'create' belongs under target: the source is only read",
    ("/source", "alias"): "'alias' belongs under target: readers switch to the target",
    ("/source", "pointer"): "'pointer' belongs under target: readers switch to the target",
    ("/mapping", "rename"): "rename goes under mapping.metadata: `mapping: {metadata: {rename: {old: new}}}`",
    ("/mapping", "drop"): "drop goes under mapping.metadata: `mapping: {metadata: {drop: [field]}}`",
    ("", "batch_size"): "batch_size goes under strategy",
    ("", "concurrency"): "concurrency goes under strategy",
    ("", "provider"): "provider goes under source or target",
}


def _unknown_key(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError | None:
    allowed = _allowed_keys(_schema(err))
    instance = err.instance if isinstance(err.instance, dict) else {}
    unknown = [k for k in instance if k not in allowed]
    if not unknown:
        return None  # unevaluatedProperties also fires for known keys with bad values
    key = min(unknown, key=lambda k: ctx.position(f"{pointer}/{_escape(k)}"))
    guess = _did_you_mean(key, allowed)
    message = f"unknown key '{key}' {_in(pointer)}"
    if guess:
        message += f" (did you mean '{guess}'?)"
    listed = _listed_keys(ctx, _schema(err), pointer)
    hint = MISPLACED.get((pointer, key)) or f"allowed keys {_in(pointer)}: {', '.join(sorted(listed))}"
    return ctx.error(message, f"{pointer}/{_escape(key)}", hint)


def _listed_keys(ctx: _Context, schema: dict[str, Any], pointer: str) -> list[str]:
    """Keys worth naming in a hint: those marked ``x-providers`` only in that provider's store,
    so a jsonl target's hint does not list Pinecone's options."""
    parts = pointer.split("/")
    provider_at = f"/{parts[1]}/provider" if len(parts) > 2 else ""
    provider = ctx.public_value(provider_at) if provider_at and ctx.has(provider_at) else None
    return [key for link in _ref_chain(schema) for key, sub in link.get("properties", {}).items()
            if not isinstance(sub, dict) or provider in sub.get("x-providers", (provider,))]


def _missing(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    present = err.instance if isinstance(err.instance, dict) else {}
    assert isinstance(err.validator_value, list)  # "required" lists the keys
    missing = [k for k in err.validator_value if k not in present]
    names = _and([f"'{k}'" for k in missing])
    noun = "key" if len(missing) == 1 else "keys"
    props = _property_schema(_schema(err), missing[0])
    keys = _and([f"`{k}:`" for k in missing])
    hint = props.get("x-hint") or f"add {keys} {'under ' + pointer if pointer else 'at the top level'}"
    return ctx.error(f"missing required {noun} {names} {_in(pointer)}", pointer, hint)


def _property_schema(schema: dict[str, Any], key: str) -> dict[str, Any]:
    for link in _ref_chain(schema):
        if key in link.get("properties", {}):
            prop: dict[str, Any] = link["properties"][key]
            return prop
    return {}


def _wrong_type(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    value = err.validator_value  # "type": one type name or a list of them
    types: list[str] = value if isinstance(value, list) else [str(value)]
    expected = " or ".join(TYPE_NAMES.get(t, t) for t in types)
    got = ctx.shown(pointer, sensitive=bool(notes.get("x-sensitive")))
    hint = notes.get("x-hint") or TYPE_HINTS.get(types[0], "fix the value's type")
    return ctx.error(f"{pointer} must be {expected}, got {got}", pointer, hint)


def _enum(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    assert isinstance(err.validator_value, list)  # "enum" lists the choices
    choices = [str(c) for c in err.validator_value]
    message = f"{pointer} must be one of {', '.join(choices)}, got {ctx.shown(pointer)}"
    guess = _did_you_mean(str(err.instance), choices) if isinstance(err.instance, str) else None
    key = _unescape(pointer.rsplit("/", 1)[-1])
    if guess:
        message += f" (did you mean '{guess}'?)"
        hint = f"write `{key}: {guess}`"
    else:
        hint = f"write `{key}:` followed by one of {', '.join(choices)}"
    return ctx.error(message, pointer, hint)


def _const(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    value = ctx.quoted(pointer) if isinstance(err.instance, str) else str(err.instance)
    message = _custom(notes, "const", value=value, pointer=pointer) or (
        f"{pointer} must be {err.validator_value}, got {value}"
    )
    hint = notes.get("x-hint") or f"write {err.validator_value}"
    return ctx.error(message, pointer, hint)


def _pattern(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    value = "a value" if notes.get("x-sensitive") else ctx.quoted(pointer)
    message = _custom(notes, "pattern", value=value, pointer=pointer) or (
        f"{pointer}: {value} does not have the expected form"
    )
    return ctx.error(message, pointer, notes.get("x-hint") or f"match the pattern {err.validator_value}")


def _range(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    bound = "at least" if err.validator in ("minimum", "exclusiveMinimum") else "at most"
    low, high = _schema(err).get("minimum"), _schema(err).get("maximum")
    hint = (
        f"use a whole number from {low} to {high}"
        if low is not None and high is not None
        else (f"use a value {bound} {err.validator_value}")
    )
    return ctx.error(f"{pointer} must be {bound} {err.validator_value}, got {ctx.shown(pointer)}", pointer, hint)


def _size(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    custom = _custom(notes, str(err.validator), pointer=pointer)
    if custom:
        return ctx.error(custom, pointer, notes.get("x-hint") or "see the spec reference")
    if err.validator == "minLength":
        return ctx.error(f"{pointer} must not be empty", pointer, notes.get("x-hint") or "write a value")
    return _generic(ctx, err, pointer, notes)


def _unique(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    seen: set[str] = set()
    assert isinstance(err.instance, list)  # "uniqueItems" fires only on an array
    for i, item in enumerate(err.instance):
        marker = repr(item)
        if marker in seen:
            item_pointer = f"{pointer}/{i}"
            return ctx.error(
                f"{pointer} lists {ctx.quoted(item_pointer)} more than once", item_pointer, "remove the repeat"
            )
        seen.add(marker)
    return _generic(ctx, err, pointer, notes)


def _generic(ctx: _Context, err: ValidationError, pointer: str, notes: dict[str, Any]) -> SpecError:
    # jsonschema's own message embeds the (resolved) value, so it is never used here.
    return ctx.error(
        f"{_display(pointer)} is invalid (schema rule '{err.validator}')",
        pointer,
        notes.get("x-hint") or "see schemas/spec.v1.json for the expected form",
    )


TRANSLATORS: dict[str, Callable[[_Context, ValidationError, str, dict[str, Any]], SpecError | None]] = {
    "additionalProperties": _unknown_key,
    "unevaluatedProperties": _unknown_key,
    "required": _missing,
    "type": _wrong_type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minimum": _range,
    "maximum": _range,
    "exclusiveMinimum": _range,
    "exclusiveMaximum": _range,
    "minLength": _size,
    "maxLength": _size,
    "minProperties": _size,
    "maxProperties": _size,
    "uniqueItems": _unique,
}


# ----------------------------------------------------------------------------- rules beyond the schema


@dataclass(frozen=True)
class _ProviderRule:
    """What a built-in provider needs that the provider-independent schema cannot say."""

    connection_keys: tuple[str, ...]  # exactly one of these, and nothing else
    connection_example: str
    needs_collection: bool = False
    plain_names: bool = False  # table and column names are SQL identifiers
    # Options accepted beside the one required connection key (pinecone: host, concurrency, ...).
    optional_keys: tuple[str, ...] = ()
    collection_hint: str = "the table name: add `collection: <table>`"
    # Largest target.create.dimension the store takes. File formats have no limit of their
    # own; they keep the cap the schema had before limits became per provider.
    max_dimension: int = 16_000
    managed_create: bool = False  # target.create takes cloud, region, deletion_protection, tags, sparse
    namespaces: bool = False  # the store has namespaces (source/target.namespace means something)
    indexes: bool = False  # vecmig builds a vector index in it (target.create.index)
    keeps_metric: bool = True  # a created collection records its metric (files do not)
    # Connection options that only a target uses (a source would accept and ignore them).
    target_only_keys: tuple[str, ...] = ()
    shards_by_size: bool = True  # strategy.shard_size cuts this store as a source
    fixed_fields: tuple[str, ...] = ()  # fields.* keys the store's record shape fixes (Pinecone: id, values)
    metadata_columns: bool = True  # fields.metadata may name one column holding all metadata
    id_types: tuple[str, ...] = ("int", "text")  # what target.create.id_type can choose
    metered: bool = False  # cost lines (and so cost.transition_days) apply to it


PROVIDER_RULES: dict[str, _ProviderRule] = {
    "pgvector": _ProviderRule(
        ("dsn", "embedded"),
        'connection: {dsn: "${env:PG_DSN}"} or connection: {embedded: .vecmig/pg}',
        needs_collection=True,
        plain_names=True,
        indexes=True,
    ),
    "jsonl": _ProviderRule(("path",), "connection: {path: data.jsonl}", keeps_metric=False),
    "parquet": _ProviderRule(("path",), "connection: {path: data.parquet}", keeps_metric=False),
    "pinecone": _ProviderRule(
        ("api_key",),
        'connection: {api_key: "${env:PINECONE_API_KEY}"} (optionally host, concurrency, timeout, '
        "ready_timeout, nested_metadata)",
        needs_collection=True,
        optional_keys=("host", "concurrency", "timeout", "ready_timeout", "nested_metadata"),
        collection_hint="the index name: add `collection: <index>`",
        max_dimension=20_000,
        managed_create=True,
        namespaces=True,
        target_only_keys=("nested_metadata", "ready_timeout"),
        shards_by_size=False,
        fixed_fields=("id", "vector"),
        metadata_columns=False,
        id_types=(),
        metered=True,
    ),
    # The in-memory test double (providers/memory): faults act on writes, so they are target keys.
    "memory": _ProviderRule(
        ("name",),
        "connection: {name: src} (optionally fail_after_batches, transient_every, terminal_on_id, retry_after)",
        needs_collection=True,
        optional_keys=("fail_after_batches", "transient_every", "terminal_on_id", "retry_after"),
        collection_hint="the collection name: add `collection: <name>`",
        target_only_keys=("fail_after_batches", "transient_every", "terminal_on_id", "retry_after"),
    ),
}
MANAGED_CREATE_KEYS = ("cloud", "region", "deletion_protection", "tags", "sparse")
PINECONE_INDEX_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")


def _check_rules(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    for role in ("source", "target"):
        _check_store(ctx, spec[role], f"/{role}")
    _check_strategy(ctx, spec)
    _check_alias(ctx, spec)
    _check_not_same(ctx, spec, base_dir)
    _check_paths(ctx, spec, base_dir)
    _check_policy(ctx, spec, base_dir)
    _check_pointer(ctx, spec)
    _check_honoured(ctx, spec)


def _spec_path(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base_dir / p))


def _check_paths(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    """Every file a spec names must be a regular file or absent (safe_paths): refused here, before
    anything is read, planned or written, with the key that names it."""
    files: list[tuple[str, str, str, bool]] = []  # (pointer, what, kind, must exist)
    for role in ("source", "target"):
        conn = spec[role].get("connection") or {}
        rule = PROVIDER_RULES.get(spec[role]["provider"])
        if rule is not None and "path" in rule.connection_keys and isinstance(conn.get("path"), str):
            files.append((f"/{role}/connection/path", f"{role} file", "file", False))
        if isinstance(conn.get("embedded"), str):
            files.append((f"/{role}/connection/embedded", "embedded PostgreSQL directory", "dir", False))
    pointer = spec["target"].get("pointer") or {}
    if isinstance(pointer.get("file"), str):
        files.append(("/target/pointer/file", "pointer file", "file", False))
    state = spec.get("state") or {}
    if isinstance(state.get("path"), str) and "url" not in state:
        files.append(("/state/path", "state file", "file", False))
    policy = spec.get("policy") or {}
    if isinstance(policy.get("file"), str):
        files.append(("/policy/file", "policy file", "file", True))
    for at, what, want, must_exist in files:
        full = _spec_path(_resolved_value(spec, at), base_dir)
        if want == "dir":
            problem = safe_paths.dir_problem(full)
            hint = f"point {at[1:].replace('/', '.')} at a directory (or a path that does not exist yet)"
        else:
            problem = safe_paths.file_problem(full, must_exist=must_exist)
            hint = (f"point {at[1:].replace('/', '.')} at a regular file (or a path that does not exist yet); "
                    f"{safe_paths.REGULAR_ONLY}")
        if problem is None or problem == "does not exist":
            continue  # a missing policy file gets its own message below
        raise ctx.error(f"{what} {ctx.quoted(at)} ({full}) {problem}", at, hint)


def _resolved_value(spec: dict[str, Any], at: str) -> str:
    """The resolved value at a JSON pointer of the resolved spec."""
    value: Any = spec
    for token in at.split("/")[1:]:
        value = value[_unescape(token)]
    return str(value)


def _check_store(ctx: _Context, store: dict[str, Any], pointer: str) -> None:
    provider = store["provider"]
    names = sorted(available())
    if provider not in names:
        guess = _did_you_mean(provider, names)
        message = f"unknown provider {ctx.quoted(pointer + '/provider')} in {pointer}"
        message += f" (did you mean '{guess}'?)" if guess else ""
        hint = f"registered providers: {', '.join(names)}" if names else "no providers are registered: reinstall vecmig"
        raise ctx.error(message, f"{pointer}/provider", hint)
    rule = PROVIDER_RULES.get(provider)
    if rule is None:
        return  # a third-party provider: only the schema's structure applies
    _check_connection(ctx, store, pointer, provider, rule)
    if rule.needs_collection and "collection" not in store:
        raise ctx.error(
            f"missing required key 'collection' in {pointer}",
            pointer,
            f"{provider} needs {rule.collection_hint} under {pointer[1:]}",
        )
    if rule.plain_names:
        _check_plain_names(ctx, store, pointer, provider)
    _check_distinct_fields(ctx, store, pointer)
    _check_provider_limits(ctx, store, pointer, provider, rule)


def _check_connection(ctx: _Context, store: dict[str, Any], pointer: str, provider: str, rule: _ProviderRule) -> None:
    conn, where = store["connection"], f"{pointer}/connection"
    for key in conn:
        if key not in rule.connection_keys + rule.optional_keys:
            raise ctx.error(
                f"'{key}' is not a {provider} connection key", f"{where}/{key}", f"write {rule.connection_example}"
            )
    given = [k for k in rule.connection_keys if k in conn]
    options = " or ".join(f"'{k}'" for k in rule.connection_keys)
    if not given:
        need = f"one of {options}" if len(rule.connection_keys) > 1 else options
        raise ctx.error(f"{provider} connection in {pointer} needs {need}", where, f"write {rule.connection_example}")
    if len(given) > 1:
        raise ctx.error(
            f"{provider} connection in {pointer} takes exactly one of {options}, not both",
            f"{where}/{given[1]}",
            "dsn connects to a running server; embedded starts a local one: keep one",
        )


def _field_names(store: dict[str, Any], pointer: str) -> list[tuple[str, str]]:
    """(pointer, name) of every column the fields mapping names."""
    fields = store.get("fields", {})
    out = [(f"{pointer}/fields/{k}", fields[k]) for k in ("id", "vector", "text") if k in fields]
    metadata = fields.get("metadata")
    if isinstance(metadata, str):
        out.append((f"{pointer}/fields/metadata", metadata))
    elif isinstance(metadata, list):
        out += [(f"{pointer}/fields/metadata/{i}", name) for i, name in enumerate(metadata)]
    return out


def _check_plain_names(ctx: _Context, store: dict[str, Any], pointer: str, provider: str) -> None:
    names = [(f"{pointer}/collection", store["collection"])] if "collection" in store else []
    names += _field_names(store, pointer)
    for at, name in names:
        if not PLAIN_NAME.match(name):
            raise ctx.error(
                f"{ctx.quoted(at)} is not a plain name: {PLAIN_NAME_RULE}",
                at,
                f"{provider} table and column names must be plain identifiers, so vecmig never quotes them",
            )


def _check_distinct_fields(ctx: _Context, store: dict[str, Any], pointer: str) -> None:
    fields = store.get("fields", {})
    # Defaults take part: `text: id` clashes with the default id column.
    columns = [
        ("id", f"{pointer}/fields/id", fields.get("id", Fields.id)),
        ("vector", f"{pointer}/fields/vector", fields.get("vector", Fields.vector)),
    ]
    columns += [
        (at.split("/fields/")[1].split("/")[0], at, name)
        for at, name in _field_names(store, pointer)
        if not at.endswith(("/fields/id", "/fields/vector"))
    ]
    owners: dict[str, tuple[str, str]] = {}
    for role, at, name in columns:
        if name not in owners:
            owners[name] = (role, at)
            continue
        other_role, other_at = owners[name]
        if not ctx.has(at):  # a defaulted vector column: point at the key the user wrote
            role, at, other_role = other_role, other_at, role
        raise ctx.error(
            f"{at} names column {ctx.quoted(at)}, which is already the {other_role} column",
            at,
            "id, vector, text and metadata each need their own column",
        )


def _check_strategy(ctx: _Context, spec: dict[str, Any]) -> None:
    strategy = spec.get("strategy", {})
    kind = strategy.get("type", StrategySpec.type)
    if kind not in IMPLEMENTED_STRATEGIES:
        raise ctx.error(
            f"strategy '{kind}' is not implemented yet",
            "/strategy/type",
            f"use {' or '.join(IMPLEMENTED_STRATEGIES)}",
        )
    if kind == "blue-green" and "alias" not in spec["target"] and "pointer" not in spec["target"]:
        if spec["target"]["provider"] == "pinecone":
            raise ctx.error(
                "blue-green on pinecone needs target.pointer, what readers follow (Pinecone has no aliases)",
                "/strategy/type",
                "add `pointer: {file: live-index.json}` and/or `pointer: {command: ./repoint.sh}` under target: "
                "cutover repoints it to the new index, rollback back",
            )
        raise ctx.error(
            "blue-green needs target.alias, the live name readers use",
            "/strategy/type",
            "add `alias: <live name>` under target: cutover swaps that alias to the new collection "
            "(stores without aliases: `pointer: {file: ...}`)",
        )
    if strategy.get("decommission") and kind != "blue-green":
        raise ctx.error(
            f"strategy.decommission applies only to blue-green, not {kind}",
            "/strategy/decommission",
            "remove decommission, or use `type: blue-green`",
        )


def _check_alias(ctx: _Context, spec: dict[str, Any]) -> None:
    target = spec["target"]
    if "alias" in target and target["alias"] == target.get("collection"):
        raise ctx.error(
            "target.alias must differ from target.collection",
            "/target/alias",
            "the alias is the stable name readers use; the collection behind it changes",
        )


def _store_identity(store: dict[str, Any], base_dir: Path) -> tuple[Any, ...]:
    # Paths are compared as files, so `out.jsonl` and `./out.jsonl` are the same store.
    conn = {
        k: os.path.normpath(base_dir / os.path.expanduser(v)) if k in ("path", "embedded") else v
        for k, v in store["connection"].items()
    }
    return (store["provider"], sorted(conn.items()), store.get("collection"), store.get("namespace"))


def _check_not_same(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    if _store_identity(spec["source"], base_dir) != _store_identity(spec["target"], base_dir):
        return
    if ctx.has("/target/collection"):
        what = f"collection {ctx.quoted('/target/collection')}"
    elif ctx.has("/target/connection/path"):
        what = f"file {ctx.quoted('/target/connection/path')}"
    else:
        what = "store"
    raise ctx.error(
        f"source and target are the same {what} on the same connection",
        "/target",
        "point the target at a new collection (or file); a migration cannot copy a collection onto itself",
    )


def _check_policy(ctx: _Context, spec: dict[str, Any], base_dir: Path) -> None:
    """A code listed under two levels is ambiguous; a policy file must exist and be valid."""
    from vecmig.policy import LEVELS, MANDATORY, read_file

    policy = spec.get("policy")
    if not policy:
        return
    seen: dict[str, str] = {}
    for level in LEVELS:
        for i, code in enumerate(policy.get(level, [])):
            if code in seen:
                raise ctx.error(
                    f"lint code {code} is listed under both policy.{seen[code]} and policy.{level}",
                    f"/policy/{level}/{i}",
                    f"keep {code} in one of them",
                )
            seen[code] = level
            if code in MANDATORY and LEVELS[level] != "error":
                raise ctx.error(
                    f"lint code {code} cannot be lowered by policy.{level}: it stops vecmig from destroying a file "
                    "that is not its own",
                    f"/policy/{level}/{i}",
                    f"remove {code} from policy.{level}, and fix its cause instead",
                )
    if "file" in policy:
        path = Path(policy["file"]).expanduser()
        full = path if path.is_absolute() else base_dir / path
        if not os.path.lexists(full):
            raise ctx.error(
                f"policy file not found: {ctx.quoted('/policy/file')} (looked for {full})",
                "/policy/file",
                "the path is relative to the spec file; create it, or remove policy.file",
            )
        read_file(full)  # raises a SpecError naming the file when it is not a valid policy


def _check_provider_limits(ctx: _Context, store: dict[str, Any], pointer: str, provider: str,
                           rule: _ProviderRule) -> None:
    """Limits that differ by provider: index names, dimensions, create keys of managed stores."""
    if provider == "pinecone" and "collection" in store and not PINECONE_INDEX_NAME.match(store["collection"]):
        at = f"{pointer}/collection"
        raise ctx.error(
            f"{ctx.quoted(at)} is not a valid Pinecone index name",
            at,
            "use 1-45 lowercase letters, digits and '-', starting and ending with a letter or digit",
        )
    create = store.get("create") or {}
    dimension = create.get("dimension")
    if isinstance(dimension, int | float) and dimension > rule.max_dimension:
        at = f"{pointer}/create/dimension"
        # Worded like the schema's own range errors, which this check replaced.
        raise ctx.error(
            f"{at} must be at most {rule.max_dimension}, got {ctx.shown(at)}",
            at,
            f"use a whole number from 1 to {rule.max_dimension} ({provider}'s limit)",
        )
    if not rule.managed_create:
        for key in MANAGED_CREATE_KEYS:
            if key in create:
                raise ctx.error(
                    f"{pointer}/create/{key} applies to managed stores (pinecone), not {provider}",
                    f"{pointer}/create/{key}",
                    f"remove {key}: {provider} has no such setting",
                )
    if create.get("sparse") and create.get("metric", "dotproduct") != "dotproduct":
        raise ctx.error(
            f"{pointer}/create/sparse needs metric dotproduct, not {create['metric']}",
            f"{pointer}/create/sparse",
            "set `metric: dotproduct` (Pinecone scores sparse-dense records by dot product), or drop sparse",
        )


# Index options and the index types that read them.
INDEX_OPTIONS = {"m": ("hnsw",), "ef_construction": ("hnsw",), "lists": ("ivfflat",)}


def _check_honoured(ctx: _Context, spec: dict[str, Any]) -> None:
    """Every key a spec sets must change what happens: one that would be accepted and then
    ignored (for this provider, role or index type) is refused, saying why."""
    for role in ("source", "target"):
        store, at = spec[role], f"/{role}"
        rule = PROVIDER_RULES.get(store["provider"])
        if rule is None:
            continue
        provider = store["provider"]
        if "namespace" in store and not rule.namespaces:
            raise ctx.error(f"{at}/namespace is ignored: {provider} has no namespaces", f"{at}/namespace",
                            f"remove namespace (a {provider} collection is one table or file)")
        fields = store.get("fields") or {}
        for key in rule.fixed_fields:
            if key in fields:
                raise ctx.error(f"{at}/fields/{key} is ignored: {provider} records keep the {key} in a fixed place",
                                f"{at}/fields/{key}", f"remove fields.{key}")
        if not rule.metadata_columns and isinstance(fields.get("metadata"), str):
            raise ctx.error(f"{at}/fields/metadata is ignored: {provider} keeps metadata as fields of each record, "
                            "not in one named column", f"{at}/fields/metadata",
                            "list the metadata fields to read ([a, b]), or remove fields.metadata")
        if role == "source":
            for key in rule.target_only_keys:
                if key in store["connection"]:
                    raise ctx.error(f"{at}/connection/{key} is ignored: it applies to a {provider} target, "
                                    "not a source", f"{at}/connection/{key}", f"remove {key} from the source")
            if not rule.shards_by_size and "shard_size" in spec.get("strategy", {}):
                raise ctx.error(f"strategy.shard_size is ignored: a {provider} source is read one shard per "
                                "namespace", "/strategy/shard_size",
                                'remove shard_size (`namespace: "*"` reads every namespace as its own shard)')
    target = spec["target"]
    provider = target["provider"]
    rule = PROVIDER_RULES.get(provider)
    create = target.get("create") or {}
    if rule is not None and "index" in create and not rule.indexes:
        raise ctx.error(f"target.create.index is ignored: vecmig builds no index in a {provider} target",
                        "/target/create/index", "remove index (it applies to pgvector targets)")
    if rule is not None and "metric" in create and not rule.keeps_metric:
        raise ctx.error(f"target.create.metric is ignored: a {provider} file records no metric",
                        "/target/create/metric", "remove metric (the store that reads the file decides it)")
    if rule is not None and "id_type" in create and create["id_type"] not in rule.id_types:
        raise ctx.error(f"target.create.id_type is ignored: {provider} keeps every id as a string",
                        "/target/create/id_type", "remove id_type")
    index = create.get("index") or {}
    kind = index.get("type", IndexSpec.type)
    for key, kinds in INDEX_OPTIONS.items():
        if key in index and kind not in kinds:
            raise ctx.error(f"target.create.index.{key} is ignored: it applies to {' and '.join(kinds)} "
                            f"indexes, not {kind}", f"/target/create/index/{key}",
                            f"remove {key}, or set index.type to {kinds[0]}")
    pointer = target.get("pointer") or {}
    if "timeout" in pointer and "command" not in pointer:
        raise ctx.error("target.pointer.timeout is ignored: it limits pointer.command, and no command is set",
                        "/target/pointer/timeout", "remove timeout, or add the command it limits")
    completeness = (spec.get("validate") or {}).get("completeness")
    if isinstance(completeness, dict) and completeness.get("checksums") is False:
        raise ctx.error("validate.completeness.checksums: false is not supported: completeness validation "
                        "always compares checksums (counts and ids alone miss changed values)",
                        "/validate/completeness/checksums",
                        "remove checksums, or set `validate: {completeness: false}` to skip validation")
    cost = spec.get("cost") or {}
    stores = {spec["source"]["provider"], provider}
    metered = [p for p in stores if PROVIDER_RULES.get(p, _ProviderRule((), "", metered=True)).metered]
    if "transition_days" in cost and not metered:
        raise ctx.error("cost.transition_days is ignored: neither store is metered, so no storage is priced",
                        "/cost/transition_days", "remove transition_days")
    for key in cost:
        if key != "transition_days" and key not in stores:
            raise ctx.error(f"cost.{key} is ignored: neither the source nor the target is {key}", f"/cost/{key}",
                            f"remove the {key} prices")


def _check_pointer(ctx: _Context, spec: dict[str, Any]) -> None:
    """Aliases where the store has them, a pointer (file and/or command) where it does not."""
    target = spec["target"]
    if target["provider"] == "pinecone" and "alias" in target:
        raise ctx.error(
            "pinecone has no aliases, so target.alias cannot be switched",
            "/target/alias",
            "replace it with `pointer: {file: live-index.json}` and/or `pointer: {command: ./repoint.sh}`",
        )
    if "alias" in target and "pointer" in target:
        raise ctx.error(
            "target takes either alias or pointer, not both",
            "/target/pointer",
            "stores with aliases (pgvector views) swap the alias; use pointer only for stores without them",
        )


# ----------------------------------------------------------------------------- assemble


def _assemble(
    spec: dict[str, Any], public: dict[str, Any], locations: Locations, base_dir: Path, secrets: frozenset[str],
    shown: tuple[tuple[str, str], ...] = (),
) -> Spec:
    state = spec.get("state", {})
    state_url = state.get("url")
    state_path = None
    if state_url is None:
        raw = Path(state.get("path", f".vecmig/{spec['name']}.db")).expanduser()
        state_path = Path(os.path.normpath(raw if raw.is_absolute() else base_dir / raw))
    return Spec(
        version=spec["version"],
        name=spec["name"],
        source=_store(spec["source"], "/source", base_dir),
        target=_store(spec["target"], "/target", base_dir),
        strategy=_strategy(spec.get("strategy", {})),
        mapping=_mapping(spec.get("mapping", {})),
        validate=_validate(spec.get("validate", {})),
        state_path=state_path,
        state_url=state_url,
        public=public,
        locations=locations,
        secrets=secrets,
        shown=shown,
        cost=_cost(spec.get("cost", {})),
    )


def _store(data: dict[str, Any], pointer: str, base_dir: Path) -> StoreSpec:
    return StoreSpec(
        provider=data["provider"],
        connection=dict(data["connection"]),
        collection=data.get("collection"),
        namespace=data.get("namespace"),
        fields=_fields(data.get("fields", {})),
        create=_create(data["create"]) if "create" in data else None,
        alias=data.get("alias"),
        live_pointer=_live_pointer(data["pointer"]) if "pointer" in data else None,
        pointer=pointer,
        base_dir=base_dir,
    )


def _live_pointer(data: dict[str, Any]) -> PointerSpec:
    return PointerSpec(file=data.get("file"), command=data.get("command"),
                       timeout=float(data.get("timeout", PointerSpec.timeout)))


def _cost(data: dict[str, Any]) -> CostSpec:
    prices = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in data.items() if isinstance(v, dict)))
    return CostSpec(prices=prices, transition_days=float(data.get("transition_days", CostSpec.transition_days)))


def _fields(data: dict[str, Any]) -> Fields:
    metadata = data.get("metadata")
    return Fields(
        id=data.get("id", Fields.id),
        vector=data.get("vector", Fields.vector),
        text=data.get("text"),
        metadata=tuple(metadata) if isinstance(metadata, list) else metadata,
    )


def _create(data: dict[str, Any]) -> CreateSpec:
    index = data.get("index", {})
    # int(): JSON Schema counts 384.0 as an integer; the engine wants a real int.
    return CreateSpec(
        dimension=int(data["dimension"]) if "dimension" in data else None,
        metric=data.get("metric"),
        index=IndexSpec(
            type=index.get("type", IndexSpec.type),
            m=int(index.get("m", IndexSpec.m)),
            ef_construction=int(index.get("ef_construction", IndexSpec.ef_construction)),
            lists=int(index.get("lists", IndexSpec.lists)),
        ),
        id_type=data.get("id_type"),
        cloud=data.get("cloud"),
        region=data.get("region"),
        deletion_protection=data.get("deletion_protection"),
        tags=tuple(sorted((str(k), str(v)) for k, v in (data.get("tags") or {}).items())),
        sparse=bool(data.get("sparse", False)),
    )


def _strategy(data: dict[str, Any]) -> StrategySpec:
    return StrategySpec(
        type=data.get("type", StrategySpec.type),
        batch_size=int(data.get("batch_size", StrategySpec.batch_size)),
        concurrency=int(data.get("concurrency", StrategySpec.concurrency)),
        shard_size=int(data.get("shard_size", StrategySpec.shard_size)),
        decommission=bool(data.get("decommission", StrategySpec.decommission)),
    )


def _mapping(data: dict[str, Any]) -> MappingSpec:
    metadata = data.get("metadata", {})
    return MappingSpec(
        rename=tuple(metadata.get("rename", {}).items()),
        drop=tuple(metadata.get("drop", [])),
    )


def _validate(data: dict[str, Any]) -> ValidateSpec:
    completeness = data.get("completeness", True)
    if completeness is False:
        return ValidateSpec(completeness=False, checksums=False)
    if completeness is True:
        return ValidateSpec()
    return ValidateSpec(completeness=True, checksums=bool(completeness.get("checksums", True)))
