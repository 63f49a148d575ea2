"""Stage 4, stores: what each store needs that the provider-independent schema cannot say.

Each store declares its connection keys, naming rules and limits in its kit
(``providers/<store>/kit.py``, :class:`~vecmig.providers.kit.SpecRules`); the checks here
apply them to one store (connection, collection, plain names, distinct columns, dimension
and create keys) and refuse keys that would be accepted and then ignored for this provider,
role or index type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from vecmig.providers import available, kits, rules_of
from vecmig.providers.kit import SpecRules
from vecmig.spec import Fields, IndexSpec
from vecmig.specload.context import _Context, _did_you_mean

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PLAIN_NAME_RULE = "use letters, digits and _, starting with a letter or _, at most 63 characters"


def _rules(provider: str) -> SpecRules | None:
    return rules_of(provider) if provider in available() else None


def _check_store(ctx: _Context, store: dict[str, Any], pointer: str) -> None:
    provider = store["provider"]
    names = sorted(available())
    if provider not in names:
        guess = _did_you_mean(provider, names)
        message = f"unknown provider {ctx.quoted(pointer + '/provider')} in {pointer}"
        message += f" (did you mean '{guess}'?)" if guess else ""
        hint = f"registered providers: {', '.join(names)}" if names else "no providers are registered: reinstall vecmig"
        raise ctx.error(message, f"{pointer}/provider", hint)
    rule = _rules(provider)
    if rule is None:
        return  # a plugin without rules: only the schema's structure applies
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


def _check_connection(ctx: _Context, store: dict[str, Any], pointer: str, provider: str, rule: SpecRules) -> None:
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
            rule.connection_exclusive_hint,
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


def _check_provider_limits(ctx: _Context, store: dict[str, Any], pointer: str, provider: str,
                           rule: SpecRules) -> None:
    """Limits that differ by store: collection names, dimensions, create keys of other stores."""
    if rule.collection_pattern is not None and "collection" in store \
            and not rule.collection_pattern.match(store["collection"]):
        at = f"{pointer}/collection"
        raise ctx.error(f"{ctx.quoted(at)} is not a valid {rule.collection_noun}", at, rule.collection_rule)
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
    for key in create:
        if key in rule.create_schema or key in GENERIC_CREATE_KEYS:
            continue
        owners = [name for name, other in kits().items() if key in other.create_schema]
        if owners:
            raise ctx.error(
                f"{pointer}/create/{key} applies to {' and '.join(owners)}, not {provider}",
                f"{pointer}/create/{key}",
                f"remove {key}: {provider} has no such setting",
            )
    for check in rule.checks:
        found = check(store, pointer)
        if found is not None:
            raise ctx.error(*found)


# target.create keys every store reads (the rest come from the stores' kits).
GENERIC_CREATE_KEYS = ("dimension", "metric", "id_type", "index")

# Index options and the index types that read them.
INDEX_OPTIONS = {"m": ("hnsw",), "ef_construction": ("hnsw",), "ef_search": ("hnsw",), "lists": ("ivfflat",),
                 "probes": ("ivfflat",)}


def _check_honoured(ctx: _Context, spec: dict[str, Any]) -> None:
    """Every key a spec sets must change what happens: one that would be accepted and then
    ignored (for this provider, role or index type) is refused, saying why."""
    for role in ("source", "target"):
        store, at = spec[role], f"/{role}"
        rule = _rules(store["provider"])
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
    rule = _rules(provider)
    create = target.get("create") or {}
    if rule is not None and "index" in create and not rule.indexes:
        raise ctx.error(f"target.create.index is ignored: vecmig builds no index in a {provider} target",
                        "/target/create/index",
                        f"remove index (it applies to {_and_names(n for n, r in kits().items() if r.indexes)} targets)")
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
    metered = [p for p in stores if getattr(_rules(p), "metered", True)]
    if "transition_days" in cost and not metered:
        raise ctx.error("cost.transition_days is ignored: neither store is metered, so no storage is priced",
                        "/cost/transition_days", "remove transition_days")
    if "embedding" in cost and not (spec.get("transform") or {}).get("embed"):
        raise ctx.error("cost.embedding is ignored: the spec re-embeds nothing", "/cost/embedding",
                        "remove cost.embedding, or add `transform: {embed: {...}}`")
    for key in cost:
        if key not in ("transition_days", "embedding") and key not in stores:
            raise ctx.error(f"cost.{key} is ignored: neither the source nor the target is {key}", f"/cost/{key}",
                            f"remove the {key} prices")


def _and_names(names: Iterable[str]) -> str:
    listed = list(names)
    return " and ".join([", ".join(listed[:-1]), listed[-1]] if len(listed) > 1 else listed) or "no"
