"""Queries to compare two stores with: from a file (a query log) or sampled from the source.

The file is JSON Lines, one query per line::

    {"vector": [0.1, ...], "filter": {"genre": "drama"}, "k": 10, "expected": ["id-7", "id-9"]}

``vector`` is required; ``filter`` (the language of :mod:`vecmig.filters`), ``k`` (else the
spec's) and ``expected`` (ids a relevant answer holds: labelled ground truth) are optional;
``id`` names the query in reports. Any other key, a vector of the wrong length or a bad
filter is refused with the file and line. A sample picks records of the source by a hash of
``(seed, id)``: the same seed picks the same records whatever order the store scans in.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecmig.errors import SpecError
from vecmig.filters import FilterError, check
from vecmig.records import Batch, RecordId

KEYS = ("id", "vector", "filter", "k", "expected")


@dataclass(frozen=True)
class Query:
    name: str  # "sample:<record id>" or "<file>:<line>" or the line's own "id"
    vector: tuple[float, ...]
    k: int
    filter: dict[str, Any] | None = None
    expected: tuple[RecordId, ...] | None = None
    # The sampled record the vector is (its own id is then excluded from nothing: a store
    # finding the record itself first is part of what is compared).
    source_id: RecordId | None = None

    def array(self) -> np.ndarray:
        return np.asarray(self.vector, dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "k": self.k}
        if self.filter:
            out["filter"] = self.filter
        if self.expected is not None:
            out["expected"] = list(self.expected)
        return out


def load_queries(path: Path, *, shown: str, default_k: int, dimension: int | None,
                 default_filter: dict[str, Any] | None = None) -> list[Query]:
    """Every query of a JSON Lines file; the first bad line raises a one-line SpecError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"query file {shown} does not exist", hint="check validate.queries.file (relative paths "
                        "are relative to the spec file)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"query file {shown} cannot be read: {e}") from None
    out: list[Query] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        out.append(parse_query(line, f"{shown}:{no}", default_k, dimension, default_filter))
    if not out:
        raise SpecError(f"query file {shown} holds no query", hint="write one JSON object per line: "
                        '{"vector": [...], "k": 10}')
    return out


def parse_query(line: str, where: str, default_k: int, dimension: int | None,
                default_filter: dict[str, Any] | None = None) -> Query:
    def bad(what: str, hint: str = "") -> SpecError:
        return SpecError(f"{where}: {what}", hint=hint or 'each line is {"vector": [...], "filter": {...}, "k": 10, '
                         '"expected": [ids]}')

    try:
        obj = json.loads(line, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise bad(f"not JSON ({e.msg} at column {e.colno})") from None
    except _Refused as e:
        raise bad(str(e)) from None
    if not isinstance(obj, dict):
        raise bad(f"a query is a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}", f"a query has {', '.join(KEYS)}")
    vec = obj.get("vector")
    if (not isinstance(vec, list) or not vec
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vec)):
        raise bad("vector must be a non-empty list of numbers")
    arr = np.asarray(vec, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > np.finfo(np.float32).max):
        raise bad("vector holds a value that is not a finite float32 (NaN, Infinity or too large)")
    if dimension is not None and len(vec) != dimension:
        raise bad(f"vector has {len(vec)} dimensions; the collection has {dimension}")
    k = obj.get("k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 10_000:
        raise bad(f"k must be an integer from 1 to 10000, not {k!r}")
    flt = obj.get("filter", default_filter)
    if flt is not None:
        try:
            check(flt)
        except FilterError as e:
            raise bad(f"filter: {e}", "see the filter language in the README (Queries)") from None
    expected = obj.get("expected")
    if expected is not None and (not isinstance(expected, list)
                                 or not all(isinstance(x, int | str) and not isinstance(x, bool) for x in expected)):
        raise bad("expected must be a list of ids (integers or strings)")
    name = obj.get("id")
    if name is not None and not isinstance(name, int | str):
        raise bad("id must be a string or an integer")
    vector = tuple(float(np.float32(x)) for x in vec)
    return Query(name=str(name) if name is not None else where, vector=vector, k=k, filter=flt,
                 expected=tuple(expected) if expected is not None else None)


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    # Python's json reads NaN (not JSON): a filter {"n": {"$gt": NaN}} matched nothing on either
    # side, two empty answers "agreed" and the gate passed having compared nothing. Infinity is
    # kept (a filter bound like the spec's .inf; a vector holding one is refused below).
    if name == "NaN":
        raise _Refused("NaN is not JSON, and a filter or vector holding it compares nothing")
    return float(name.replace("Infinity", "inf"))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of a repeated key: {"lang": "en", "lang": "de"} silently filtered by "de".
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def sample_key(seed: int, rid: RecordId) -> bytes:
    """Where a record falls in the sample order: a hash of the seed and the id's type and value."""
    tag = b"i" if isinstance(rid, int) else b"s"
    return hashlib.blake2b(tag + str(rid).encode(), key=str(seed).encode(), digest_size=8).digest()


def sample_queries(batches: Iterable[Batch], n: int, *, seed: int, k: int,
                   flt: dict[str, Any] | None = None) -> list[Query]:
    """``n`` records of the source as queries: those with the smallest ``sample_key``.

    Bounded memory (a heap of ``n``); the order of the scan does not matter, so the same seed
    gives the same queries on any store holding the same records.
    """
    heap: list[tuple[bytes, int, RecordId, tuple[float, ...]]] = []  # max-heap by negated key
    tick = 0
    for batch in batches:
        for i, rid in enumerate(batch.ids):
            key = sample_key(seed, rid)
            neg = bytes(255 - b for b in key)
            if len(heap) < n:
                heapq.heappush(heap, (neg, tick, rid, tuple(float(x) for x in batch.vectors[i])))
            elif neg > heap[0][0]:
                heapq.heapreplace(heap, (neg, tick, rid, tuple(float(x) for x in batch.vectors[i])))
            tick += 1
    chosen = sorted(heap, key=lambda e: bytes(255 - b for b in e[0]))
    return [Query(name=f"sample:{rid}", vector=vec, k=k, filter=flt, source_id=rid) for _, _, rid, vec in chosen]
