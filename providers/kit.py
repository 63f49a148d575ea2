"""What a store declares about itself before any of its code is imported: the provider kit.

A store is one folder under ``providers/`` and one entry point in the ``vecmig.providers``
group naming a :class:`ProviderKit`. The kit is a light module (no client library imported):
the spec loader reads its :class:`SpecRules` to check a spec's keys for this store, merges its
schema fragments into the spec schema, and learns its secrets and lint-code prefix; only
``load()`` imports the provider class itself. So the engine names no store: everything it
knows of one comes from here or from the class's ``capabilities``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vecmig.providers.base import Provider

# A check a store runs on its own part of a spec: (store mapping, JSON pointer of the store)
# -> None, or (message, pointer of the offending key, hint).
StoreCheck = Callable[[Mapping[str, Any], str], "tuple[str, str, str] | None"]


@dataclass(frozen=True)
class SpecRules:
    """What a spec may say about this store that the provider-independent schema cannot."""

    connection_keys: tuple[str, ...]  # exactly one of these, and nothing else
    connection_example: str
    # JSON-schema properties of every connection key this store reads (required and optional);
    # merged into the spec schema's ``connection``, marked as this store's.
    connection_schema: Mapping[str, Any] = field(default_factory=dict)
    # Options accepted beside the one required connection key (pinecone: host, concurrency, ...).
    optional_keys: tuple[str, ...] = ()
    # Keys of ``target.create`` only this store reads, as JSON-schema properties.
    create_schema: Mapping[str, Any] = field(default_factory=dict)
    # The price keys ``cost: {<name>: {...}}`` takes for a metered store (JSON-schema object).
    prices_schema: Mapping[str, Any] | None = None
    # Why two of ``connection_keys`` cannot be given together (the hint of that error).
    connection_exclusive_hint: str = "keep one"
    needs_collection: bool = False
    collection_hint: str = "the collection name: add `collection: <name>`"
    # A collection name the store takes, and the rule said when one does not match.
    collection_pattern: re.Pattern[str] | None = None
    collection_rule: str = ""
    collection_noun: str = "collection name"
    plain_names: bool = False  # table and column names are SQL identifiers
    # Largest target.create.dimension the store takes. File formats have no limit of their
    # own; they keep the cap the schema had before limits became per provider.
    max_dimension: int = 16_000
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
    # No aliases, and readers find the live collection through something else: blue-green
    # needs target.pointer (what readers follow) and target.alias is refused.
    pointer_only: bool = False
    # Connection keys naming a local file or directory: key -> (kind "file" | "dir", what it is,
    # said in messages; "{role}" becomes source or target). Checked before anything is read.
    paths: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Connection keys holding secrets (masked everywhere; a key no kit declares is masked too),
    # and environment variables that hold this store's secrets by convention (never passed on
    # to a pointer command).
    secret_keys: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    # Prefix of this store's lint codes (PC001 ...): policies may name them.
    lint_prefix: str | None = None
    # The store's own checks of its part of the spec, after the generic ones.
    checks: tuple[StoreCheck, ...] = ()


@dataclass(frozen=True)
class ProviderKit:
    """One store as the entry point names it: its rules, and where its class lives."""

    name: str
    rules: SpecRules
    provider: str  # "module:Class", imported on first use only
    summary: str = ""  # one line for `vecmig providers` and the guide
    # Named in hints that suggest a store to users (the in-memory test double is not).
    suggested: bool = True

    def load(self) -> type[Provider]:
        module, _, attr = self.provider.partition(":")
        cls: type[Provider] = getattr(importlib.import_module(module), attr)
        return cls
