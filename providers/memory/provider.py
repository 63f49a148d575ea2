"""An in-memory store with fault settings, for the engine's unit tests (dlt's ``impl/dummy``).

Same interface as every other provider: inventory, create/drop, an ordered resumable scan
by id (the cursor is the last id of a batch; shards are id ranges), fetch, idempotent
upsert, delete, aliases. Records live in the process-wide registry of
:mod:`vecmig.providers.memory.store`, found by ``connection: {name: ...}``.

Faults (target connection keys; they act on upserts, counted per store across instances):

* ``fail_after_batches: N`` — once the store has acknowledged N upserts, every later one
  through this connection fails with a terminal error: an apply stops mid-shard, and an
  apply with the knob removed (the store "repaired") resumes from the checkpoint. Every
  upsert after the N-th fails, not just one, so shards running beside the failing one stop
  at the same point whatever the thread timing.
* ``transient_every: N`` — every N-th upsert call fails with a transient error (nothing is
  written), so the copy retries from its last checkpoint; ``retry_after`` (seconds) is the
  delay the error asks for (0 in tests; absent: the executor's own backoff).
* ``terminal_on_id: ID`` — any upsert holding that id fails terminally, every time.

A lossy store, for the tolerance paths of validation and the diff (``vecmig.tolerance``):
``vector_ulps: N`` declares that vectors are kept within N ulp, and ``moves_ulp: M`` (default
N) moves every other float32 value written up by M ulp, as a Chroma cosine collection does.

Search is exact; ``search_noise: F`` (0..1) swaps that share of every top-k for the next
best records, as an index tuned too low answers: what the query-parity gate must catch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from vecmig.errors import TerminalError, TransientError
from vecmig.filters import Filter, matches
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, Provider, Throughput
from vecmig.providers.memory import store as registry
from vecmig.providers.memory.store import Collection, sort_key
from vecmig.records import Batch, RecordId, metadata_types
from vecmig.search import Hit, similarities, top_k
from vecmig.spec import StoreSpec

FAULT_KEYS = ("fail_after_batches", "transient_every", "terminal_on_id", "retry_after", "vector_ulps", "moves_ulp",
              "search_noise", "search_delay")


class MemoryProvider(Provider):
    name = "memory"
    capabilities = Capabilities(
        create_collection=True,
        aliases=True,
        namespaces=False,
        indexes=(),
        sparse=True,
        server_side_count=True,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        search="exact",
        search_filters=True,
    )
    # Nothing is measured: round figures that keep plan estimates small and deterministic.
    throughput = Throughput(read_records_per_s=1_000_000, write_records_per_s=1_000_000, read_mb_per_s=1_000,
                            write_mb_per_s=1_000, max_parallel=8, spread=2.0)
    measured_estimates = False

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self.mem = registry.get(str(store.connection["name"]))
        self.faults = {k: store.connection[k] for k in FAULT_KEYS if k in store.connection}

    @property
    def _name(self) -> str:
        return self.store.collection or ""

    def _coll(self) -> Collection | None:
        return self.mem.collections.get(self._name)

    def _need(self) -> Collection:
        coll = self._coll()
        if coll is None:
            raise TerminalError(f"collection {self._name!r} does not exist in memory store {self.mem.name!r}",
                                hint="create it first (target.create), or seed it in the test")
        return coll

    # -- reading --------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        with self.mem.lock:
            coll = self._coll()
            if coll is None:
                return Inventory(provider=self.name, collection=self._name, exists=False)
            kinds = {"int" if isinstance(rid, int) else "text" for rid in coll.records}
            fields = metadata_types(rec.metadata for rec in coll.records.values())
            extra: dict[str, Any] = {"checksum": coll.checksum()}
            if len(kinds) > 1:
                extra["mixed_ids"] = True
            return Inventory(
                provider=self.name,
                collection=self._name,
                exists=True,
                dimension=coll.dimension,
                metric=coll.metric,
                count=len(coll.records),
                count_exact=True,
                id_type=kinds.pop() if len(kinds) == 1 else coll.id_type,
                fields=fields,
                has_text=coll.text or any(r.text is not None for r in coll.records.values()),
                sparse=any(r.sparse is not None for r in coll.records.values()),
                extra=extra,
            )

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        return not inventory.extra.get("mixed_ids")  # keyed by id; one type unless seeded mixed

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Id ranges ``[lo, hi)`` of ``shard_size`` records each (None: open end)."""
        with self.mem.lock:
            coll = self._coll()
            ids = sorted(coll.records, key=sort_key) if coll else []
        size = max(1, int(shard_size))
        starts = list(range(0, len(ids), size)) or [0]
        return [{"lo": ids[s] if i else None, "hi": ids[s + size] if s + size < len(ids) else None,
                 "records": len(ids[s:s + size])} for i, s in enumerate(starts)]

    def _batches(self, coll: Collection, shard: dict[str, Any] | None, cursor: Any,
                 batch_size: int) -> Iterator[Batch]:
        lo = None if not shard or shard.get("lo") is None else sort_key(shard["lo"])
        hi = None if not shard or shard.get("hi") is None else sort_key(shard["hi"])
        after = None if cursor is None else sort_key(cursor)
        ids = [rid for rid in sorted(coll.records, key=sort_key)
               if (lo is None or sort_key(rid) >= lo) and (hi is None or sort_key(rid) < hi)
               and (after is None or sort_key(rid) > after)]
        size = max(1, int(batch_size))
        for i in range(0, len(ids), size):
            chunk = ids[i:i + size]
            batch = self._batch(coll, chunk)
            batch.cursor = chunk[-1]
            yield batch

    def _batch(self, coll: Collection, ids: list[RecordId]) -> Batch:
        recs = [coll.records[rid] for rid in ids]
        dim = coll.dimension or 0
        vectors = (np.stack([np.frombuffer(r.vector, dtype="<f4") for r in recs]).astype(np.float32)
                   if recs else np.zeros((0, dim), dtype=np.float32))
        batch = Batch(ids=list(ids), vectors=vectors, metadata=[copy.deepcopy(r.metadata) for r in recs],
                      texts=[r.text for r in recs])
        if any(r.sparse is not None for r in recs):
            batch.extra["sparse"] = [copy.deepcopy(r.sparse) for r in recs]
        return batch

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        with self.mem.lock:  # a snapshot: later writes do not move a scan in progress
            batches = list(self._batches(self._need(), shard, cursor, batch_size))
        yield from batches

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        with self.mem.lock:
            coll = self._need()
            return self._batch(coll, [rid for rid in ids if rid in coll.records])

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """Exact search over every record; ``search_noise`` (a test knob, in [0, 1]) makes it
        an approximate one: that share of each answer is replaced by the next-best records, as
        a poorly tuned index would answer."""
        with self.mem.lock:
            coll = self._need()
            ids = [rid for rid in sorted(coll.records, key=sort_key) if matches(coll.records[rid].metadata, flt)]
            batch = self._batch(coll, ids)
            metric = coll.metric or "cosine"
        if self.faults.get("search_delay"):
            time.sleep(float(self.faults["search_delay"]))
        if not ids:
            return []
        scores = similarities(metric, batch.vectors, vector)[0]
        noise = float(self.faults.get("search_noise", 0.0))
        drop = round(k * noise)
        hits = top_k(scores, ids, k + drop)
        return hits[:k - drop] + hits[k:] if drop else hits

    def count(self) -> int:
        with self.mem.lock:
            coll = self._coll()
            return len(coll.records) if coll else 0

    # -- writing --------------------------------------------------------------------------
    def _inject(self, batch: Batch) -> None:
        """Raise the configured fault for this upsert call, if any (nothing is written then)."""
        stats, f = self.mem.stats, self.faults
        stats.upsert_calls += 1
        where = f"memory store {self.mem.name!r}"
        if "terminal_on_id" in f and f["terminal_on_id"] in batch.ids:
            stats.terminal_faults += 1
            raise TerminalError(f"record {f['terminal_on_id']!r} rejected by {where} (injected fault terminal_on_id)",
                                hint="remove terminal_on_id from the target connection")
        every = f.get("transient_every")
        if every and stats.upsert_calls % int(every) == 0:
            stats.transient_faults += 1
            raise TransientError(f"{where} is busy (injected fault transient_every: upsert call "
                                 f"{stats.upsert_calls})", retry_after=f.get("retry_after"))
        after = f.get("fail_after_batches")
        if after is not None and stats.acked_batches >= int(after):
            stats.terminal_faults += 1
            raise TerminalError(f"{where} failed after {stats.acked_batches} acknowledged batch(es) "
                                "(injected fault fail_after_batches)",
                                hint="remove fail_after_batches and apply again to resume")

    def vector_ulps(self) -> int:
        return int(self.faults.get("vector_ulps", 0))

    def _moved(self, batch: Batch) -> Batch:
        """The batch as a lossy store keeps it: every other value ``moves_ulp`` floats up."""
        steps = int(self.faults.get("moves_ulp", self.faults.get("vector_ulps", 0)))
        if not steps or not len(batch):
            return batch
        vectors = np.array(batch.vectors, dtype=np.float32, copy=True)
        flat = vectors.reshape(-1)
        with np.errstate(over="ignore"):  # the largest float moves up to Infinity: 1 ulp, as counted
            for _ in range(steps):
                flat[::2] = np.nextafter(flat[::2], np.float32(np.inf))
        return Batch(ids=batch.ids, vectors=vectors, metadata=batch.metadata, texts=batch.texts,
                     cursor=batch.cursor, extra=batch.extra)

    def upsert(self, batch: Batch) -> None:
        with self.mem.lock:
            coll = self._need()
            self._inject(batch)
            batch = self._moved(batch)
            if len(batch):
                dim = int(batch.vectors.shape[1])
                if coll.dimension is None:
                    coll.dimension = dim
                elif dim != coll.dimension:
                    raise TerminalError(f"{dim}-dimensional vectors cannot go into {self._name!r} "
                                        f"({coll.dimension} dimensions)")
            self.mem.put(coll, batch)
            self.mem.stats.acked_batches += 1

    def delete(self, ids: Sequence[RecordId]) -> None:
        with self.mem.lock:
            coll = self._coll()
            if coll is None:
                return
            self.mem.stats.deletes += 1
            for rid in ids:
                coll.records.pop(rid, None)
            coll.version += 1

    def create_collection(self, schema: CollectionSchema) -> None:
        with self.mem.lock:
            self.mem.collections.setdefault(self._name, Collection(
                self._name, dimension=schema.dimension, metric=schema.metric, id_type=schema.id_type,
                text=schema.text))

    def drop_collection(self) -> None:
        with self.mem.lock:
            self.mem.collections.pop(self._name, None)

    def read_alias(self, alias: str) -> str | None:
        with self.mem.lock:
            return self.mem.aliases.get(alias)

    def switch_alias(self, alias: str, collection: str | None) -> None:
        with self.mem.lock:
            if collection is None:
                self.mem.aliases.pop(alias, None)
            else:
                self.mem.aliases[alias] = collection
