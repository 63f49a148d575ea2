"""The process-wide registry behind the memory provider: named stores of collections.

A spec's ``connection: {name: src}`` finds (or creates) the store ``src`` here, so a test
seeds a source and reads a target in the same process, and every provider instance the
executor opens (one per worker, one per retry) sees the same records and the same fault
counters. :func:`reset` empties the registry between tests.

Records are kept exactly as written: the id with its type, the vector as little-endian
float32 bytes, metadata and sparse values deep-copied, the text as given.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecmig.records import Batch, Checksum, RecordId, record_digest, sparse_of


@dataclass(frozen=True)
class Record:
    vector: bytes  # little-endian float32
    metadata: dict[str, Any]
    text: str | None = None
    sparse: Any = None


@dataclass
class Collection:
    name: str
    dimension: int | None = None
    metric: str | None = None
    id_type: str | None = None  # as created; a seeded collection reports what its ids are
    text: bool = False
    records: dict[RecordId, Record] = field(default_factory=dict)
    # How many times each id was upserted through the provider (seeding does not count):
    # what "nothing doubled" is checked against.
    writes: Counter[RecordId] = field(default_factory=Counter)
    version: int = 0  # bumped by every change: the content checksum is cached per version
    _checksum: tuple[int, str] | None = None

    def checksum(self) -> str:
        """The records' order-independent digest (``records.Checksum``), for the fingerprint."""
        if self._checksum is None or self._checksum[0] != self.version:
            total = Checksum()
            total.add_digests([record_digest(rid, r.vector, r.metadata, r.text, r.sparse)
                               for rid, r in self.records.items()])
            self._checksum = (self.version, total.hex)
        return self._checksum[1]


@dataclass
class Stats:
    """Calls the provider made on a store, faults included: what retry tests count."""

    upsert_calls: int = 0
    acked_batches: int = 0
    transient_faults: int = 0
    terminal_faults: int = 0
    deletes: int = 0


def sort_key(rid: RecordId) -> tuple[int, int | str]:
    """Scan order: integers, then strings (a collection normally holds one kind)."""
    return (0, rid) if isinstance(rid, int) else (1, rid)


class MemoryStore:
    def __init__(self, name: str) -> None:
        self.name = name
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}
        self.stats = Stats()
        self.lock = threading.RLock()

    # -- for tests ------------------------------------------------------------------------
    def seed(self, collection: str, batch: Batch, *, metric: str | None = "cosine") -> Collection:
        """Put ``batch`` into ``collection`` (created if absent) without counting writes."""
        with self.lock:
            coll = self.collections.get(collection)
            if coll is None:
                coll = self.collections[collection] = Collection(
                    collection, dimension=int(batch.vectors.shape[1]) if len(batch) else None, metric=metric)
            self.put(coll, batch, count=False)
            return coll

    def create(self, collection: str, *, dimension: int | None = None, metric: str | None = "cosine") -> Collection:
        """An empty collection (a target that exists but holds nothing)."""
        with self.lock:
            return self.collections.setdefault(collection, Collection(collection, dimension=dimension, metric=metric))

    def snapshot(self, collection: str) -> dict[RecordId, tuple[bytes, str, str | None, str | None]]:
        """Every record in a form where equal means identical: the id with its type as the
        key, the vector's bytes, metadata and sparse values as JSON (so 1, 1.0 and true differ)."""
        with self.lock:
            coll = self.collections.get(collection)
            if coll is None:
                return {}
            return {rid: (r.vector, json.dumps(r.metadata, sort_keys=True),
                          r.text, None if r.sparse is None else json.dumps(r.sparse, sort_keys=True))
                    for rid, r in coll.records.items()}

    # -- used by the provider ---------------------------------------------------------------
    def put(self, coll: Collection, batch: Batch, *, count: bool = True) -> None:
        vectors = np.ascontiguousarray(batch.vectors, dtype="<f4")
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        for i, (rid, meta, text, sparse) in enumerate(zip(batch.ids, batch.metadata, texts, sparse_of(batch),
                                                          strict=True)):
            coll.records[rid] = Record(vectors[i].tobytes(), copy.deepcopy(dict(meta)), text,
                                       copy.deepcopy(sparse))
            if count:
                coll.writes[rid] += 1
        coll.version += 1


_REGISTRY: dict[str, MemoryStore] = {}
_REGISTRY_LOCK = threading.Lock()


def get(name: str) -> MemoryStore:
    """The store called ``name``, created empty on first use."""
    with _REGISTRY_LOCK:
        store = _REGISTRY.get(name)
        if store is None:
            store = _REGISTRY[name] = MemoryStore(name)
        return store


def reset() -> None:
    """Forget every store (call between tests)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
