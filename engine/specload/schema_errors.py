"""Stage 3, schema errors: the resolved spec against ``schemas/spec.v1.json``, each error reworded.

jsonschema's own messages embed resolved values and speak in schema keywords; here every
error is rewritten from the public copy, with the schema's ``x-hint``, ``x-messages``,
``x-sensitive`` and ``x-providers`` annotations, and the earliest problem in the file (a
schema violation or an unset environment variable) is the one reported.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from vecmig.errors import SpecError
from vecmig.specload.context import _and, _Context, _did_you_mean, _display, _escape, _in, _pointer, _unescape
from vecmig.specload.interpolation import _Interpolation
from vecmig.specload.provider_schema import spec_schema

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


def _schema_root() -> dict[str, Any]:
    return spec_schema()


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
    bound = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most",
             "exclusiveMaximum": "below"}.get(str(err.validator), "at most")
    low, high = _schema(err).get("minimum"), _schema(err).get("maximum")
    hint = (
        f"use a {'whole number' if _schema(err).get('type') == 'integer' else 'number'} from {low} to {high}"
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
