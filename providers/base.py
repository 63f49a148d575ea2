"""The small interface every store implements, and the capabilities it declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.ids import IdReport
from vecmig.ids import check as check_id_positions
from vecmig.model import Inventory
from vecmig.records import Batch, ColumnBatch, RecordId
from vecmig.search import Hit
from vecmig.spec import IndexSpec, StoreSpec


@dataclass(frozen=True)
class Capabilities:
    create_collection: bool = True
    aliases: bool = False
    namespaces: bool = False
    indexes: tuple[str, ...] = ()
    sparse: bool = False
    server_side_count: bool = False
    ordered_scan: bool = True
    metadata: str = "typed"  # typed (columns) | json (one document) | both
    # What a target does without fields.metadata: typed columns (which must be known when the
    # collection is created) or one document per record (any keys, found while copying).
    metadata_default: str = "typed"  # typed | json
    max_dimension: int | None = None  # None: no limit of the store's own
    # A metadata value may be a list of numbers (transform.embed.keep_old stores the old vector
    # so); Pinecone's lists hold strings only.
    metadata_number_lists: bool = True
    # Records per upsert call that let the store fill its requests (Pinecone packs by
    # bytes under 1000 records / 2 MB, so small calls leave requests half empty); the
    # planner raises the copy batch to this. None: the spec's batch_size is fine.
    preferred_batch_records: int | None = None
    # The store gives back a number as the type it was written (int 1 stays 1, float 1.0 stays
    # 1.0, -0.0 stays -0.0): between two such stores these are different values, and the diff and
    # the validation compare them so. Others (typed columns, Pinecone's doubles) normalise them.
    exact_numbers: bool = False
    # How far a float32 vector value read back may be from the one written, in units in the last
    # place: 0 keeps the bits exactly; N (Chroma's cosine collections: 2) may move a value by up
    # to N ulp. Validation and the diff then compare vectors within it (``vecmig.tolerance``)
    # instead of by bit-exact digests. The class's worst case; a provider whose tolerance depends
    # on the collection says so per instance (:meth:`Provider.vector_ulps_for`, ``vector_ulps``).
    vector_ulps: int = 0
    # Top-k search (:meth:`Provider.query`): "none" (the store cannot search), "exact" (every
    # record is scored: files, memory), "index" (the store's own search: its ANN index and
    # query-time settings where one is built, a scan where none is).
    search: Literal["none", "exact", "index"] = "none"
    # Queries may carry a metadata filter (``vecmig.filters``), which the store applies itself.
    search_filters: bool = False


@dataclass(frozen=True)
class Throughput:
    """A provider's own speed model; the estimator turns it into a low/high time range.

    Figures are per worker; the planner scales by concurrency up to ``max_parallel``.
    """

    read_records_per_s: float
    write_records_per_s: float
    read_mb_per_s: float
    write_mb_per_s: float
    max_parallel: int = 8
    spread: float = 2.0  # high = low * spread: honest about how rough the model is
    # Time to write into a collection that already holds records (upserts) over the time to
    # fill a new one (plain inserts, bulk paths): turns a first round's measured copy into the
    # next round's estimate.
    upsert_slowdown: float = 1.0
    # Seconds an action touching this store spends before its first record (connections, a
    # first query, a file's index): what makes a 20k-record step slower than 1/5 of a 100k one.
    startup_s: float = 0.0
    # Records/s read by id (validation's target side, a delete by id list); 0: the read rate.
    fetch_records_per_s: float = 0.0
    # Records/s the server hashes itself (validation's and the diff's server-digest path, when
    # both sides have one); 0: the store has no server-side digest.
    digest_records_per_s: float = 0.0
    # Ids/s the source lists for validate_ids (ids alone, no vectors parsed); 0: the read rate.
    ids_records_per_s: float = 0.0
    # Records/s a staging target merges its parts at (finalize: bytes copied, nothing parsed);
    # 0: the read rate.
    finalize_records_per_s: float = 0.0


def per_record_rate(us: float, us_per_dim: float, dimension: int) -> float:
    """Records/s from a cost of ``us`` µs per record plus ``us_per_dim`` µs per vector dimension:
    how the local stores' measured rates fall with the dimension (bench/estimate_models.py)."""
    return round(1e6 / (us + us_per_dim * dimension), 1)


@dataclass(frozen=True)
class LintFinding:
    """One pre-flight rule broken by sampled records, as a plan shows it (stable ``code``)."""

    code: str
    severity: Literal["error", "warning", "info"]
    message: str
    hint: str = ""


@dataclass(frozen=True)
class CollectionSchema:
    """What a target must hold: derived by the planner from the source and the mapping."""

    dimension: int
    metric: str
    id_type: str  # "int" | "text"
    metadata: dict[str, str] = field(default_factory=dict)  # name -> logical type
    text: bool = False
    sparse: bool = False  # records carry sparse values: stores that can, make room for them


class ServerDigest(Protocol):
    """A store's own digest of its records, shard by shard (see :meth:`Provider.server_digest`).

    ``scheme`` names the algorithm and everything the per-record bytes depend on (value
    types, metadata keys, text encoding): digests are compared only between equal schemes.
    """

    scheme: str

    def shard(self, shard: dict[str, Any] | None) -> tuple[int, int]:
        """``(records, digest)`` of the shard's records: an order-independent 128-bit sum."""
        ...


@runtime_checkable
class BucketedDigest(ServerDigest, Protocol):
    """A server digest that also cuts a shard into buckets by a hash of the id and lists the
    records of chosen buckets: what the record-level diff pushes down (``vecmig.diff.pushdown``)
    and what a passing validation records as the drift baseline."""

    def bucket_scheme(self) -> str:
        """The scheme, plus how records are bucketed: buckets compare only under equal ones."""
        ...

    def buckets(self, shard: dict[str, Any] | None) -> dict[int, tuple[int, int]]:
        """bucket -> ``(records, digest)`` of the shard's records in it."""
        ...

    def records(self, shard: dict[str, Any] | None, buckets: list[int]) -> list[tuple[RecordId, int, int]]:
        """``(id, bucket, digest)`` of the shard's records in ``buckets``."""
        ...


@runtime_checkable
class VersionedDigest(BucketedDigest, Protocol):
    """A bucketed digest whose store also tells, per bucket, whether any record in it was
    written since a recorded moment, without hashing a record (PostgreSQL: row versions).
    The diff and validation hash only the buckets whose versions moved (``vecmig.diff.versions``).

    ``buckets`` is a power of two of at least 1024 that refines the digest's buckets (bucket
    ``b`` of 1024 holds every finer bucket ``b'`` with ``b' & 1023 == b``).
    """

    def version_scheme(self, buckets: int) -> str | None:
        """What two version sums must share to be compared; it must change whenever a record's
        value could change without its version sum moving. None: versions cannot vouch here."""
        ...

    def versions(self, shard: dict[str, Any] | None, buckets: int) -> dict[int, tuple[int, int]]:
        """bucket -> ``(records, version sum mod 2**64)`` of the shard's records in it."""
        ...

    def digests_and_versions(self, shard: dict[str, Any] | None, buckets: int) -> dict[int, tuple[int, int, int]]:
        """bucket -> ``(records, digest, version sum)`` in one consistent read."""
        ...

    def bucket_records(self, shard: dict[str, Any] | None, buckets: int,
                       chosen: list[int]) -> list[tuple[RecordId, int, int]]:
        """``(id, bucket, digest)`` of the shard's records in the ``chosen`` of ``buckets``."""
        ...
@dataclass(frozen=True)
class FeedSlot:
    """One change feed found on a source (a PostgreSQL replication slot named ``vecmig_*``)."""

    name: str
    retained_bytes: int  # what the source keeps (WAL) until the feed is read or dropped
    active: bool = False


@dataclass(frozen=True)
class FeedReport:
    """What plan learns about a source's change feed, read-only (``ChangeFeed.report``)."""

    name: str  # the feed this migration uses (deterministic: the migration name and the source)
    problem: str | None = None  # why the feed cannot run here, one line; None: it can
    hint: str = ""  # how to fix ``problem``
    feeds: tuple[FeedSlot, ...] = ()  # every vecmig feed on the source, this migration's included


@dataclass
class ChangeBatch:
    """Whole committed source transactions, in commit order, reduced to the ids they touched.

    Ids only, on purpose: the catch-up re-reads the current records (``fetch``) so that
    decoding never has to reproduce the store's value types, and replaying a batch is harmless.
    """

    ids: list[RecordId] = field(default_factory=list)  # each once, first-touched order
    changes: int = 0  # row changes (insert, update, delete) read
    transactions: int = 0
    end: str | None = None  # position after the last transaction read; None: nothing read
    everything: bool = False  # the source was emptied (TRUNCATE): every target id must be checked
    oldest_age_s: float = 0.0  # how long ago the first transaction of the batch committed
    # Nothing read, yet the source wrote elsewhere (other tables, the target on the same server):
    # the feed may be confirmed up to here so the source stops retaining that for it.
    skip_to: str | None = None


@dataclass(frozen=True)
class FeedLag:
    records: int  # row changes not applied yet (at least this many when ``exact`` is False)
    exact: bool
    seconds: float  # age of the oldest change not applied yet (0: none)
    retained_bytes: int


class ChangeFeed(ABC):
    """A source's stream of committed changes since the feed was created (CDC).

    Positions are opaque strings, ordered by the store; ``read`` never consumes anything: the
    feed moves on only at ``confirm``, which the caller makes after the target acknowledged
    what it read and the position was checkpointed, so a killed run reads it again."""

    name: str

    @abstractmethod
    def report(self) -> FeedReport:
        """Read-only: whether the feed can run on this source, and the feeds already there."""

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def create(self) -> str:
        """Start recording changes (idempotent); returns the position recording starts at."""

    @abstractmethod
    def read(self, after: str | None, max_changes: int, upto: str | None = None) -> ChangeBatch:
        """Whole transactions committed after ``after`` (and before ``upto``), about ``max_changes``."""

    @abstractmethod
    def confirm(self, position: str) -> None:
        """Everything up to ``position`` is applied: the source may forget it."""

    @abstractmethod
    def lag(self, limit: int) -> FeedLag:
        """How far behind the feed is, counting at most about ``limit`` changes."""

    @abstractmethod
    def freeze(self) -> str:
        """Block writes to the source collection (reads go on) until :meth:`unfreeze`; returns a
        position every write committed before the block lies before."""

    @abstractmethod
    def unfreeze(self) -> None: ...

    @abstractmethod
    def drop(self) -> None:
        """Stop recording and release what the source retains for the feed (idempotent)."""

    def flushed(self, position: str) -> bool:
        """Whether everything up to ``position`` is readable from the feed (durably written)."""
        return True

    def retained_bytes(self) -> int:
        """What the source keeps for this feed until it is confirmed or dropped (0: unknown)."""
        return 0

    def close(self) -> None:  # noqa: B027 - feeds without sessions have nothing to close
        """Release the feed's sessions (a freeze ends with them)."""


class Provider(ABC):
    """One store. Instances are cheap and single-threaded: each worker makes its own."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    throughput: ClassVar[Throughput]
    # Whether timings of this store mean anything: plans calibrate estimates from past rounds
    # and probe its reads (vecmig.calibrate). False for a store whose work takes microseconds,
    # where timings are noise and would make plans differ run to run.
    measured_estimates: ClassVar[bool] = True
    # Targets that stage writes (files) need one `finalize` after every shard is in.
    needs_finalize: ClassVar[bool] = False
    # Shard bounds are positions in the store (byte offsets, row groups), not ranges of ids: once
    # the collection changes they no longer cut it, so work that reads it again cuts it again.
    positional_shards: ClassVar[bool] = False
    # The index every collection of this store has without vecmig building one, in
    # vecmig.indexes' neutral shape (Qdrant's and Chroma's HNSW, Pinecone's managed index).
    own_index: ClassVar[dict[str, Any] | None] = None

    def __init__(self, store: StoreSpec) -> None:
        self.store = store

    # -- lifecycle ------------------------------------------------------------------------
    def connect(self) -> None:  # noqa: B027 - optional for stores without a session
        """Open connections; idempotent."""

    def close(self) -> None:  # noqa: B027
        """Release connections; idempotent."""

    def __enter__(self) -> Provider:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------
    @abstractmethod
    def inventory(self) -> Inventory: ...

    @abstractmethod
    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Cut the collection into independent, deterministic, JSON-serialisable pieces.

        Each shard dict carries ``records`` (an estimate) plus provider-specific bounds.
        """

    @classmethod
    def describe_shard(cls, shard: dict[str, Any]) -> str:
        """Where a shard of :meth:`shards` lies, for plans ("ids [1, 50001)"); stores whose
        shards are not id ranges say it their own way (byte ranges, namespaces)."""
        if "lo" in shard or "hi" in shard:
            lo = "start" if shard.get("lo") is None else shard["lo"]
            hi = "end" if shard.get("hi") is None else shard["hi"]
            return f"ids [{lo}, {hi})"
        return "the whole collection"

    @classmethod
    def shard_id_range(cls, shard: dict[str, Any]) -> tuple[Any, Any] | None:
        """The half-open id range ``[lo, hi)`` a shard of :meth:`shards` covers (None at either end:
        open), or None when its shards are not id ranges. Strategy phased skips, for an id-range
        wave, the integer-id shards that cannot hold its ids."""
        if "lo" in shard or "hi" in shard:
            return shard.get("lo"), shard.get("hi")
        return None

    @abstractmethod
    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        """Yield batches in a stable order, starting right after ``cursor``."""

    def scan_columns(
        self, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[ColumnBatch] | None:
        """The records of :meth:`scan`, same order, batches and cursors, as columns — for a
        target whose ``native_copy`` encodes whole columns. None: this store cannot."""
        return None

    @abstractmethod
    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        """The records that exist among ``ids`` (missing ids are simply absent)."""

    def fetch_matching(self, batch: Batch) -> Batch:
        """The target's records for a source ``batch`` (validation): :meth:`fetch` of its ids,
        in the place the batch came from where the store keeps that (a namespace)."""
        return self.fetch(batch.ids)

    def fetch_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> Batch:
        """:meth:`fetch` within one shard (a namespace where the store has them): the
        record-level diff lists ids per source shard, and the copy fetches them there."""
        return self.fetch(ids)

    @abstractmethod
    def count(self) -> int:
        """Exact record count."""

    # -- identity (see vecmig.ids) ---------------------------------------------------------
    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        """The store itself guarantees one id type and every id once (a primary key, a store
        keyed by id), so the plan needs no ``validate_ids`` pass. Planning hook: no I/O."""
        return False

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        """Every id of the collection with its position (file order), ids only where the store
        can; positions are what :meth:`describe_positions` names. The same sequence each call."""
        pos = 0
        for batch in self.scan(None, None, 1000):
            for rid in batch.ids:
                yield rid, pos
                pos += 1

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        """Where each position is, for messages (``src.jsonl:6``, ``src.parquet row 301``)."""
        label = self.store.collection or self.name
        return {p: f"{label} record #{p + 1}" for p in positions}

    def check_ids(self, limit: int | None = None) -> IdReport:
        """One id type, every id once: over all ids, or the first ``limit`` (the plan's sample)."""
        return check_id_positions(self.id_positions, self.describe_positions, limit=limit)

    # -- writing --------------------------------------------------------------------------
    def upsert(self, batch: Batch) -> None:
        """Insert or replace by id; returns only once the store has durably acknowledged."""
        raise NotImplementedError(f"{self.name} cannot be a target")

    def expect_new_records(self) -> None:  # noqa: B027 - a hint, safe to ignore
        """Hint: the collection was created by this plan, so most ids written are new.

        A provider may switch to a faster write path, but upserts must stay idempotent:
        a batch replayed after a kill still has to end up written exactly once.
        """

    def native_copy(
        self, source: Provider, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[tuple[Any, int, int]] | None:
        """A store-to-store transfer that skips ``Batch`` (e.g. raw bytes between two databases).

        Called on the *target* with the source provider, the shard and the cursor of a
        ``copy_shard`` action, only when the mapping is the identity and no before-images
        are needed. Returns None when this pair of stores (or these schemas) has no such
        path, and the caller runs its normal scan → map → upsert loop instead. Otherwise it
        returns an iterator that yields ``(cursor_after_batch, records, bytes)`` once per
        batch, and only after the target durably committed that batch: each yield is the
        acknowledgement the caller checkpoints. Batches and cursors follow ``scan``'s exact
        semantics (same shard bounds, cursor = last id of the batch), so a run may resume on
        either path from a checkpoint written by the other. Writes stay idempotent by id,
        honouring :meth:`expect_new_records` like :meth:`upsert`.
        """
        return None

    def server_digest(self) -> ServerDigest | None:
        """The store hashes its own records, so validation need not move them (optional).

        Called by ``validate_completeness`` on both sides (each a connected instance of its
        own; ``shard`` may then run on another thread) only when the mapping is the identity.
        Where both return digests with equal schemes, a shard whose ``(records, digest)``
        agree passes without reading a record; a disagreement, an error or None here sends
        the shard through the record-by-record check, which names the ids. A scheme must
        therefore only be equal between two stores when equal digests imply that the
        record-by-record check (``vecmig.records.batch_digests`` on scan and fetch) would find
        no difference. None: not supported.
        """
        return None

    def delete(self, ids: Sequence[RecordId]) -> None:
        raise NotImplementedError(f"{self.name} cannot delete records")

    def delete_in(self, shard: dict[str, Any] | None, ids: Sequence[RecordId]) -> None:
        """:meth:`delete` within one shard (a namespace), for extras the diff found there."""
        self.delete(ids)

    def collection_exists(self) -> bool:
        return self.inventory().exists

    def create_collection(self, schema: CollectionSchema) -> None:
        raise NotImplementedError(f"{self.name} cannot create collections")

    def drop_collection(self) -> None:
        raise NotImplementedError(f"{self.name} cannot drop collections")

    def finalize(self) -> None:  # noqa: B027
        """Called once after all copy shards: files seal themselves here."""

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        """Build the search index; returns its name, or None when the store has none."""
        return None

    def drop_index(self, name: str) -> None:  # noqa: B027
        """Drop an index built by :meth:`build_index`."""

    @classmethod
    def reader_settings(cls, index: IndexSpec) -> str | None:
        """What readers of a target with ``index`` must set themselves to search as vecmig
        does (its query-time settings, where the store keeps them per session or per query),
        in one line for the plan; None: nothing (the store keeps them with the index)."""
        return None

    # -- search ---------------------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """The ``k`` records nearest ``vector`` as the store's own search finds them (its
        index and query-time settings, exactly as readers would get them), best first, scores
        converted to :mod:`vecmig.search`'s similarity. ``flt`` is a filter of
        :mod:`vecmig.filters`, translated to the store's language (checked already). Safe to
        call from one thread per instance: callers open one provider per worker."""
        raise TerminalError(f"{self.name} cannot answer nearest-neighbour queries",
                            hint="validate.queries and parallel-run need a store with search")

    def search_settings(self) -> dict[str, Any]:
        """What decides the search's quality now: the index type and parameters, the
        query-time settings (``ef_search``, ``probes``, ...). Shown beside failed queries so
        the reader sees why, and carried over to a target vecmig creates."""
        return {}

    def read_alias(self, alias: str) -> str | None:
        raise NotImplementedError(f"{self.name} has no aliases")

    def switch_alias(self, alias: str, collection: str | None) -> None:
        """Point ``alias`` at ``collection`` atomically (None removes the alias)."""
        raise NotImplementedError(f"{self.name} has no aliases")

    @classmethod
    def vector_ulps_for(cls, metric: str | None) -> int:
        """Planning hook (no I/O): the ulp a collection of ``metric`` (None: unknown) may move a
        vector value by (``Capabilities.vector_ulps``)."""
        return cls.capabilities.vector_ulps

    def vector_ulps(self) -> int:
        """This collection's ulp tolerance (may read its settings, e.g. the metric)."""
        return self.capabilities.vector_ulps

    def estimate_schema(self) -> CollectionSchema | None:
        """Schema of an existing collection, for targets that already exist."""
        return None

    def change_feed(self, migration: str) -> ChangeFeed | None:
        """The source's change feed for ``migration`` (strategy cdc), or None for a store
        without one. No I/O until a method of the feed is called."""
        return None

    # -- planning hooks (no I/O: the planner calls them on unconnected instances) -----------
    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int,
                       store: StoreSpec | None = None) -> Throughput:
        """Speed model for records shaped like ``inventory``'s, with ``concurrency`` workers.

        ``store`` carries the provider's own options (e.g. requests in flight per worker).
        The default is the class's fixed model.
        """
        return cls.throughput

    @classmethod
    def copy_models(cls, source_cls: type[Provider], read: Throughput, write: Throughput,
                    inventory: Inventory) -> tuple[Throughput, Throughput]:
        """Both sides of a copy into this store from a ``source_cls`` store (models ``read`` and
        ``write``), where :meth:`native_copy` moves records its own way (raw COPY bytes,
        columns) at other rates than ``scan`` → ``upsert``; the default is the models as given."""
        return read, write

    def cost(self, operation: str, records: int, nbytes: int, prices: Mapping[str, Any]) -> dict[str, float]:
        """USD line items for ``operation`` on ``records`` records of ``nbytes`` in total.

        Operations: "write" (upsert), "scan" (read everything), "fetch" (read by id),
        "storage" (one month of holding them). ``prices`` are the spec's overrides for this
        provider (``cost: {<provider>: {...}}``). Self-hosted stores have no metered cost.
        """
        return {}

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """Rules this store enforces per record, checked on a sample of the (mapped) source
        at plan time; ``upsert`` enforces the same rules on every record."""
        return []

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        """A target collection that already exists, judged at plan time against the (mapped)
        sample: what its shape cannot hold (a column missing for a field, no text column for
        text). Error-level findings (codes VM140+) stop ``plan`` and ``apply`` before any state
        exists, in the words the copy would fail with. Default: nothing to say."""
        return []
