"""PostgreSQL + pgvector as a source and a target.

The provider is one class put together from one module per concern, each a mixin over the
ones it uses (catalog over connection, read over catalog, write over read, ddl over catalog,
native over write):

* ``connection.py``: DSN or embedded server, the session, type adapters, error classification;
* ``catalog.py``: the relation and its layout, views, the inventory, checks of an existing target;
* ``read.py``: shards, ``scan``, ``fetch``, ``count``, id checks, rows decoded into batches;
* ``write.py``: ``upsert`` (staged or direct binary COPY), ``delete``, fidelity, encoding;
* ``ddl.py``: create/drop the collection, build/drop its index, aliases as views;
* ``native.py``: ``native_copy``, the pgvector → pgvector pipe and the columnar path;
* ``search.py``: ``query`` and ``search_settings``, filters as SQL (``filtersql.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, Provider, Throughput, per_record_rate
from vecmig.providers.pgvector import indexsettings
from vecmig.providers.pgvector.ddl import DdlMixin
from vecmig.providers.pgvector.native import NativeCopyMixin
from vecmig.providers.pgvector.search import SearchMixin
from vecmig.spec import IndexSpec, StoreSpec

# µs per record = fixed + per dimension, per worker, measured with bench/estimate_models.py on
# the 2-core development machine under its usual load (load average 4-7: other jobs share it),
# docs-shaped records (text, six metadata columns), embedded server over a unix socket, copy
# waves at concurrency 2; the plan-time probe scales them to the machine it runs on.
READ_US = (20.0, 0.05)  # scan → Batch, with validation's hashing of the source side
WRITE_US = (56.0, 0.16)  # binary COPY of encoded columns or batches (one worker's share)
PIPE_US = (18.0, 0.12)  # pgvector → pgvector: raw COPY bytes, nothing decoded
FETCH_US = (17.0, 0.09)  # read by id and hashed (validation's target side)
DIGEST_US = (8.0, 0.045)  # both servers hashing their shard at once (validation's fast path)


def model(dimension: int) -> Throughput:
    return Throughput(
        read_records_per_s=per_record_rate(*READ_US, dimension),
        write_records_per_s=per_record_rate(*WRITE_US, dimension),
        # Sizes are in the per-dimension term: no separate byte limit.
        read_mb_per_s=0.0,
        write_mb_per_s=0.0,
        max_parallel=8,
        # The figures are this machine's typical ones: the range is the ±√2 band around them.
        spread=1.0,
        # Measured here (64 dims, 50k records, concurrency 2): binary COPY into a new table vs
        # INSERT ... ON CONFLICT DO UPDATE into one holding most of the ids, 1.6-2.2x.
        upsert_slowdown=1.9,
        startup_s=0.03,  # a connection and the relation's catalog lookup
        fetch_records_per_s=per_record_rate(*FETCH_US, dimension),
        digest_records_per_s=per_record_rate(*DIGEST_US, dimension),
    )


class PgvectorProvider(SearchMixin, NativeCopyMixin, DdlMixin):
    name: ClassVar[str] = "pgvector"

    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=True,  # views
        namespaces=False,
        indexes=("hnsw", "ivfflat"),
        server_side_count=True,
        ordered_scan=True,
        metadata="both",
        max_dimension=16_000,  # pgvector's vector type (sparsevec is not used: 0.6 lacks it here)
        search="index",  # ORDER BY <op> LIMIT k: the index readers use (search.py)
        search_filters=True,
    )

    throughput: ClassVar[Throughput] = model(384)

    @classmethod
    def reader_settings(cls, index: IndexSpec) -> str | None:
        return indexsettings.reader_settings(index)

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        return model(int(inventory.dimension or 384))

    @classmethod
    def copy_models(cls, source_cls: type[Provider], read: Throughput, write: Throughput,
                    inventory: Inventory) -> tuple[Throughput, Throughput]:
        """From another pgvector table the pages travel as raw COPY bytes (``pipe.py``): one rate
        for both sides, scaled like the models it replaces (the machine factor)."""
        if not issubclass(source_cls, PgvectorProvider):
            return read, write
        pipe = per_record_rate(*PIPE_US, int(inventory.dimension or 384)) * write.write_records_per_s / (
            model(int(inventory.dimension or 384)).write_records_per_s)
        return (replace(read, read_records_per_s=pipe, read_mb_per_s=0.0),
                replace(write, write_records_per_s=pipe, write_mb_per_s=0.0))

    def change_feed(self, migration: str) -> Any:
        """Logical decoding of the source table (``changefeed.py``): a ``ChangeFeed``."""
        from vecmig.providers.pgvector.changefeed import PgChangeFeed

        return PgChangeFeed(self, migration)

    def server_digest(self) -> Any:
        """Validation's fast path: per-shard ``(rows, digest)`` computed by this server
        (a :class:`vecmig.providers.base.ServerDigest`; see ``digest.py``)."""
        from vecmig.providers.pgvector.digest import PgDigest

        return PgDigest.of(self)
