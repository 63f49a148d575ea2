"""Stage 4, ``mapping.namespace``: which way a record's namespace goes, checked against the
stores the spec names (whether each has namespaces comes from its kit, never from its name).

Each combination that would be accepted and then do something else than written is refused
here, naming the key: a namespace mapped to a field of a target that keeps namespaces, a
field read into namespaces of a target that takes one namespace, and so on.
"""

from __future__ import annotations

from typing import Any

from vecmig.specload.context import _Context
from vecmig.specload.store_rules import _rules

AT = "/mapping/namespace"
ALL = "*"
FIELD_EXAMPLE = "`mapping: {namespace: {to: field, name: tenant}}`"


def _has_namespaces(store: dict[str, Any]) -> bool:
    rule = _rules(store["provider"])
    return bool(rule is not None and rule.namespaces)


def _check_namespace_mapping(ctx: _Context, spec: dict[str, Any]) -> None:
    ns = (spec.get("mapping") or {}).get("namespace")
    source, target = spec["source"], spec["target"]
    if ns is None:
        if target.get("namespace") == ALL and not (_has_namespaces(source) and source.get("namespace") == ALL):
            # Otherwise refused only at the first batch of apply, after the plan looked fine.
            raise ctx.error("target.namespace \"*\" writes each record into the namespace it comes from, but "
                            "the source gives its records no namespace", "/target/namespace",
                            "name one target namespace, or route each record by a metadata field: "
                            "`mapping: {namespace: {from: field, name: tenant}}`")
        return
    if ns.get("to") == "collection":
        raise ctx.error("mapping.namespace.to: collection is not supported yet", f"{AT}/to",
                        "copy one namespace per spec (source.namespace: <name>) into its own target collection, "
                        f"or map the namespace to a field: {FIELD_EXAMPLE}")
    if "template" in ns:
        raise ctx.error("mapping.namespace.template is ignored: it names collections of `to: collection`, which "
                        "is not supported yet", f"{AT}/template", "remove template")
    if "to" in ns and "from" in ns:
        raise ctx.error("mapping.namespace takes `to` or `from`, not both", f"{AT}/from",
                        "`to: field` writes the source namespace into a field; `from: field` reads the target "
                        "namespace from one")
    direction = "from" if "from" in ns else "to"
    kind = ns.get(direction, "namespace")
    if spec.get("strategy", {}).get("type") == "cdc":
        raise ctx.error("mapping.namespace with strategy cdc is not supported yet", AT,
                        "use strategy big-bang or blue-green, or remove mapping.namespace")
    if kind == "field":
        _check_field(ctx, ns, direction, source, target, (spec.get("mapping") or {}).get("metadata") or {})
    else:
        _check_namespace(ctx, ns, source, target)


def _check_field(ctx: _Context, ns: dict[str, Any], direction: str, source: dict[str, Any],
                 target: dict[str, Any], metadata: dict[str, Any]) -> None:
    if "name" not in ns:
        raise ctx.error(f"mapping.namespace.{direction}: field needs `name`, the metadata field", AT,
                        f"write e.g. `mapping: {{namespace: {{{direction}: field, name: tenant}}}}`")
    if "names" in ns:
        raise ctx.error("mapping.namespace.names is ignored with a field: it renames namespaces between two "
                        "namespaced stores (`to: namespace`)", f"{AT}/names", "remove names")
    name = ns["name"]
    if name in (metadata.get("drop") or []) or name in (metadata.get("rename") or {}).values():
        raise ctx.error(f"mapping.namespace.name '{name}' is also a field mapping.metadata renames or drops",
                        f"{AT}/name", "name the namespace field something no metadata mapping touches")
    if direction == "to":
        if not _has_namespaces(source) or source.get("namespace") != ALL:
            raise ctx.error("mapping.namespace.to: field needs a source that reads every namespace "
                            "(source.namespace: \"*\")", f"{AT}/to",
                            'set source.namespace: "*" on a store with namespaces, or remove mapping.namespace')
        if target.get("namespace") == ALL:
            raise ctx.error("mapping.namespace.to: field puts the namespace into a field, but target.namespace "
                            "\"*\" writes each record into its namespace", f"{AT}/to",
                            "remove target.namespace (or name one), or use `to: namespace` to keep namespaces")
        return
    if not _has_namespaces(target) or target.get("namespace") != ALL:
        raise ctx.error("mapping.namespace.from: field needs a target that writes each record into the namespace "
                        "its field names (target.namespace: \"*\")", f"{AT}/from",
                        'set target.namespace: "*" on a store with namespaces, or remove mapping.namespace')
    if source.get("namespace") == ALL:
        raise ctx.error("mapping.namespace.from: field reads the namespace from a field, but source.namespace "
                        "\"*\" already gives each record its namespace", f"{AT}/from",
                        "remove mapping.namespace (namespaces are kept as they are), or read one source namespace")


def _check_namespace(ctx: _Context, ns: dict[str, Any], source: dict[str, Any], target: dict[str, Any]) -> None:
    for key in ("name", "composite_ids"):
        if key in ns:
            raise ctx.error(f"mapping.namespace.{key} is ignored with `to: namespace`: it belongs to a field "
                            "mapping", f"{AT}/{key}", f"remove {key}, or write {FIELD_EXAMPLE}")
    if not (_has_namespaces(source) and _has_namespaces(target)
            and source.get("namespace") == ALL and target.get("namespace") == ALL):
        raise ctx.error("mapping.namespace.to: namespace keeps each record in its namespace, which needs "
                        "source.namespace: \"*\" and target.namespace: \"*\" on stores with namespaces", f"{AT}/to",
                        f"set both namespaces to \"*\", or map the namespace to a field: {FIELD_EXAMPLE}")
    names = ns.get("names") or {}
    seen: dict[str, str] = {}
    for old, new in names.items():
        if new in seen:
            raise ctx.error(f"mapping.namespace.names maps both '{seen[new]}' and '{old}' to '{new}': their records "
                            "would share one namespace, where the same id would overwrite its namesake",
                            f"{AT}/names", "give every namespace its own new name")
        seen[new] = old
