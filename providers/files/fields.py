"""Where a record's parts live in a file, and which logical type each metadata key has.

``resolve_fields`` turns the spec's ``fields`` into a :class:`FileFields`; ``TypeSampler``
infers one logical type per metadata key from the records ``inventory()`` samples.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecmig.spec import Fields

_SPEC_DEFAULT_FIELDS = Fields()
TYPE_SAMPLE = 1000  # records read by inventory() to infer metadata types


# ---- field names ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFields:
    """Where id, vector, text and metadata live in a record or a row.

    ``vector`` is a preference list: the first name is the one written. ``loose`` is true
    when the spec gave no ``fields.metadata``; then keys/columns claimed by no other role
    are metadata too, so a foreign file with top-level ``title`` keeps it.
    """

    id: str
    vector: tuple[str, ...]
    text: str
    metadata: str | tuple[str, ...]
    loose: bool

    @property
    def vector_out(self) -> str:
        return self.vector[0]

    @functools.cached_property
    def reserved(self) -> frozenset[str]:  # cached: asked once per key of every JSONL record
        names = {self.id, self.text, "sparse", *self.vector}
        if isinstance(self.metadata, str):
            names.add(self.metadata)
        return frozenset(names)


def resolve_fields(fields: Fields) -> FileFields:
    """File defaults: id "id", vector "vector", text "text", metadata "metadata" (an object).

    ``Fields.vector`` defaults to "embedding" (pgvector's habit), and a spec that omits it
    cannot be told from one that spells it out; so that default reads "vector" first and
    falls back to "embedding", and writes "vector".
    """
    if fields.vector == _SPEC_DEFAULT_FIELDS.vector:
        vector: tuple[str, ...] = ("vector", "embedding")
    else:
        vector = (fields.vector,)
    meta = fields.metadata  # the spec loader already made a listed metadata a tuple
    return FileFields(
        id=fields.id or "id",
        vector=vector,
        text=fields.text or "text",
        metadata=meta if meta is not None else "metadata",
        loose=meta is None,
    )


# ---- metadata types -------------------------------------------------------------------------


def value_kind(value: Any) -> str | None:
    """Logical type of one value; None for values that say nothing (null, empty list)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        if not value:
            return None
        return "text[]" if all(isinstance(v, str) for v in value) else "json"
    return "json"


class TypeSampler:
    """Infers one logical type per metadata key from a sample of records."""

    def __init__(self) -> None:
        self._kinds: dict[str, set[str]] = {}

    def add(self, metadata: Mapping[str, Any]) -> None:
        for key, value in metadata.items():
            kinds = self._kinds.setdefault(key, set())
            kind = value_kind(value)
            if kind is not None:
                kinds.add(kind)
            elif isinstance(value, list | tuple):
                kinds.add("[]")  # an empty list fits text[] or a document, never a scalar column

    def types(self) -> dict[str, str]:
        return {key: combine_kinds(self._kinds[key]) for key in sorted(self._kinds)}


def combine_kinds(kinds: set[str]) -> str:
    if "[]" in kinds:
        kinds = kinds - {"[]"}
        return "text[]" if kinds == {"text[]"} else "json"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds == {"int", "float"}:
        return "float"
    return "json"  # nothing seen, or a mixture only a document can hold


def dict_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per-record dicts as one list per field (None where a record lacks it), for writers
    that encode columns; a field no record has does not appear."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}


def check_record_id(value: Any) -> str | None:
    """Why ``value`` cannot be an id, or None when it can (bool is an int to Python only)."""
    if value is None:
        return "is missing"
    if isinstance(value, bool) or not isinstance(value, int | str):
        return f"must be an integer or a string, not {type(value).__name__} {value!r}"
    if isinstance(value, str) and not value:
        return "is an empty string"
    return None
