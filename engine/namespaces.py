"""Namespaces mapped faithfully: where each record's namespace goes (``mapping.namespace``).

A store with namespaces (``Capabilities.namespaces``) read with ``namespace: "*"`` tags every
batch with the namespace it came from (``batch.extra["namespace"]``); a target written with
``namespace: "*"`` puts each batch into the namespace it carries. Between those two ends the
mapping decides, record by record:

* ``to: namespace`` (the default): the namespace stays itself, or becomes ``names[it]``;
* ``to: field``: it becomes metadata field ``name`` of a namespace-less target; with
  ``composite_ids`` the id becomes ``"<namespace>/<id>"``, so the same id in two namespaces
  stays two records in a store keyed by id alone;
* ``from: field``: the reverse: the record goes into the namespace its field ``name`` names,
  the field is removed, and with ``composite_ids`` the ``"<namespace>/"`` prefix is stripped
  (it must be there: an id that does not start with its own namespace is refused).

Nothing is overwritten or guessed: a record that already has the field, or lacks the field
it should be routed by, stops the copy with one line naming it. Copy, validation and the
record-level diff all map through :func:`map_batch`, so they agree on what the target holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vecmig.errors import TerminalError
from vecmig.records import Batch, RecordId
from vecmig.spec import NamespaceMapping, Spec

ALL = "*"
SEPARATOR = "/"
FIELD_HINT = "mapping: {namespace: {to: field, name: tenant, composite_ids: true}}"


@dataclass(frozen=True)
class Mapped:
    """Target-shaped records, and where each came from in the source batch."""

    batch: Batch
    positions: tuple[int, ...]


def rule(spec: Spec) -> NamespaceMapping | None:
    ns = spec.mapping.namespace
    return None if ns is None or ns.is_identity else ns


def reads_namespaces(spec: Spec) -> bool:
    """The source is read namespace by namespace (a namespaced store with ``namespace: "*"``)."""
    from vecmig.providers import provider_class  # providers import this package's records

    return spec.source.namespace == ALL and provider_class(spec.source.provider).capabilities.namespaces


def target_by_namespace(spec: Spec) -> bool:
    """The target keeps every record in a namespace of its own choosing: a record is known by
    (namespace, id) there, and the diff and validation key it so."""
    return spec.target.namespace == ALL


def composite(spec: Spec) -> bool:
    """Source ids are unique within a namespace and become ``"<namespace>/<id>"``: unique in the target."""
    ns = rule(spec)
    return ns is not None and ns.to == "field" and ns.composite_ids and reads_namespaces(spec)


def rename(spec: Spec, namespace: str) -> str:
    """The target namespace of source namespace ``namespace`` (``to: namespace``)."""
    ns = spec.mapping.namespace
    return dict(ns.names).get(namespace, namespace) if ns is not None else namespace


def map_batch(spec: Spec, batch: Batch) -> list[Mapped]:
    """``batch`` as the target receives it: metadata renamed and dropped, namespaces mapped.

    One batch in the source's order, except ``from: field``, which groups the records by the
    namespace they go to (one upsert per namespace), in order of first appearance."""
    mapping = spec.mapping
    ns = rule(spec)
    if ns is None or (ns.to == "namespace" and not ns.from_field):
        extra = dict(batch.extra)
        if ns is not None and isinstance(extra.get("namespace"), str):
            extra["namespace"] = rename(spec, extra["namespace"])
        out = Batch(ids=batch.ids, vectors=batch.vectors, metadata=[mapping.apply(m) for m in batch.metadata],
                    texts=batch.texts, cursor=batch.cursor, extra=extra)
        return [Mapped(out, tuple(range(len(batch))))]
    if ns.to == "field":
        return [Mapped(_to_field(spec, ns, batch), tuple(range(len(batch))))]
    return _from_field(spec, ns, batch)


def _to_field(spec: Spec, ns: NamespaceMapping, batch: Batch) -> Batch:
    assert ns.name is not None
    space = batch.extra.get("namespace")
    metadata: list[dict[str, Any]] = []
    ids: list[RecordId] = []
    for rid, meta in zip(batch.ids, batch.metadata, strict=True):
        if not isinstance(space, str):
            raise TerminalError(f"record {rid!r} came without a source namespace, so mapping.namespace.to: field "
                                f"has nothing to write into '{ns.name}'",
                                hint='read the source with namespace: "*" on a store with namespaces')
        mapped = spec.mapping.apply(meta)
        if ns.name in mapped:
            raise TerminalError(f"record {rid!r} in namespace {space!r} already has metadata field '{ns.name}' "
                                f"({mapped[ns.name]!r}); mapping.namespace would overwrite it with the namespace",
                                hint="name the namespace field something the records do not use "
                                     "(mapping.namespace.name), or rename theirs (mapping.metadata.rename)")
        metadata.append({**mapped, ns.name: space})
        ids.append(f"{space}{SEPARATOR}{rid}" if ns.composite_ids else rid)
    extra = {k: v for k, v in batch.extra.items() if k != "namespace"}
    return Batch(ids=ids, vectors=batch.vectors, metadata=metadata, texts=batch.texts, cursor=batch.cursor,
                 extra=extra)


def _from_field(spec: Spec, ns: NamespaceMapping, batch: Batch) -> list[Mapped]:
    assert ns.name is not None
    groups: dict[str, list[int]] = {}
    ids: list[RecordId] = []
    metadata: list[dict[str, Any]] = []
    for pos, (rid, meta) in enumerate(zip(batch.ids, batch.metadata, strict=True)):
        rest = dict(meta)
        if ns.name not in rest:
            raise TerminalError(f"record {rid!r} has no metadata field '{ns.name}' to name its namespace "
                                "(mapping.namespace.from: field)",
                                hint=f"give every source record a '{ns.name}' field, or remove mapping.namespace")
        space = rest.pop(ns.name)
        if not isinstance(space, str):
            raise TerminalError(f"record {rid!r}: metadata field '{ns.name}' is {space!r}, not a namespace name "
                                "(a string)", hint=f"make '{ns.name}' a string in every source record")
        if ns.composite_ids:
            prefix = f"{space}{SEPARATOR}"
            if not isinstance(rid, str) or not rid.startswith(prefix) or len(rid) == len(prefix):
                raise TerminalError(f"record {rid!r} is in namespace {space!r} by its '{ns.name}' field, but its id "
                                    f"does not start with {prefix!r} (mapping.namespace.composite_ids)",
                                    hint="composite ids are \"<namespace>/<id>\", as `to: field` with composite_ids "
                                         "writes them; remove composite_ids to keep ids as they are")
            rid = rid[len(prefix):]
        groups.setdefault(space, []).append(pos)
        ids.append(rid)
        metadata.append(spec.mapping.apply(rest))
    out: list[Mapped] = []
    for space, positions in groups.items():
        part = batch.take(positions)
        part.ids = [ids[p] for p in positions]
        part.metadata = [metadata[p] for p in positions]
        part.extra["namespace"] = space
        part.cursor = batch.cursor
        out.append(Mapped(part, tuple(positions)))
    return out


def mapped_fields(spec: Spec, fields: dict[str, str]) -> dict[str, str]:
    """The source's metadata fields (name -> logical type) as the target holds them."""
    ns = rule(spec)
    renames = dict(spec.mapping.rename)
    source = {k: v for k, v in fields.items() if not (ns is not None and ns.from_field and k == ns.name)}
    out = {renames.get(k, k): v for k, v in source.items() if k not in spec.mapping.drop}
    if ns is not None and ns.to == "field" and ns.name is not None:
        out[ns.name] = "text"
    return out


def collision(spec: Spec, repeated: str) -> tuple[str, str, str] | None:
    """The plan error for ids repeated across source namespaces that land in one place.

    ``repeated`` says which ids and where (vecmig.ids). None when the source is not read
    namespace by namespace (a repeated id is then the source's own problem, VM107)."""
    if not reads_namespaces(spec):
        return None
    ns = rule(spec)
    if ns is not None and ns.to == "field":
        why = (f"mapping.namespace.to: field writes the namespace into '{ns.name}', but {spec.target.provider} "
               "keys records by id alone, so one would overwrite the other")
    else:
        why = (f"every namespace lands in one place in the {spec.target.provider} target, where one would "
               "overwrite the other")
    return (COLLISION, f"ids collide across source namespaces: {repeated}; {why}",
            f"keep them apart with composite ids (`{FIELD_HINT}` makes ids \"<namespace>/<id>\"), or migrate one "
            "namespace at a time (source.namespace: <name>)")


# Lint code: the same id in two source namespaces would land as one record (a plan error).
COLLISION = "VM110"
# Lint code: a sampled record the namespace mapping cannot map (a field missing, already set).
UNMAPPABLE = "VM111"
# Lint code: several source namespaces merged into one namespace-less collection (a warning).
DROPPED = "VM112"
