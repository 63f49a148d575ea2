"""Pinecone serverless as a source and a target, through the official ``pinecone`` SDK (10.x).

Spec::

    provider: pinecone
    connection: {api_key: "${env:PINECONE_API_KEY}", host: "http://127.0.0.1:5080"}  # host optional
    collection: docs            # the index name
    namespace: prod             # omitted or "__default__": the default namespace ""; "*": all (source)
    fields: {text: body}        # the metadata key holding the record text (default "text")
    create: {dimension: 1536, metric: cosine}

Reading. Pinecone has no "scan": ``list`` pages ids (100 per page, ordered by id within a
namespace, opaque pagination tokens) and ``fetch`` returns records by id. A scan lists pages
and fetches each page's ids concurrently as soon as the page arrives. The cursor after a
batch is ``{"token": <token of the page holding the batch's last id>, "offset": <its index
+ 1>, "after": <that id>}``: resuming re-lists that one page and continues at ``offset``
when the id there is still ``after`` (exact even if the server did not order ids), else at
the first id > ``after`` (ids are ordered); a token the server no longer accepts restarts
the listing from the first page, skipping ids <= ``after``. So a resumed scan neither skips
nor repeats. Tokens being opaque, a namespace cannot be cut into id ranges: shards are
namespaces (one shard for a configured namespace, one per namespace for ``"*"``).

Writing. Upserts are packed by measured JSON size (``packing``) under both limits (1000
records, 2 MB), sent ``concurrency`` at a time from a thread pool, and ``upsert`` returns
only when every request of the batch was acknowledged. Every record first passes the rules
of ``lint`` (a rule-breaking record raises :class:`TerminalError` naming its id; nulls are
dropped, which Pinecone does anyway). Ids go out as strings; ``fetch`` maps them back to the
type the caller asked with, so checksums computed on both sides compare equal.

Errors. The SDK retries 408/429/5xx and dropped connections 3 times itself (within a
process-wide per-host retry budget); every request is also wrapped in vecmig's bounded
``with_retries``, which honours ``Retry-After``. 401/403/404/400 become one-line
:class:`TerminalError` s saying what to fix. Secrets: the API key never reaches a message,
a log line or a repr, and SDK exceptions are not chained (their requests carry the key).

Counts come from ``describe_index_stats``: exact on the local test server, eventually
consistent on the real service (a count right after a write can lag by seconds).

Measured against the local server in a child process with 50 ms added per request, on 2
cores (bench/pinecone_throughput.py): upserts of 768-dim records at ~1.7k / 2.2k / 2.6k
records/s at concurrency 1 / 4 / 16 (the SDK's own ``batch_size=100`` recipe: ~1.15k), CPU
bound on JSON at both ends; request counts within 1-2% of the minimum for one batch of
10,000, within 5% for engine batches of 1000 except small records (see the report). The
throughput model (``speed.py``) estimates the managed service, not the local server.

The class is assembled in layers, one module each: ``session.py`` (client, retries, readiness,
shape), ``read.py`` (inventory, shards, scan, fetch), ``write.py`` (create, drop, upsert,
delete) and this module (capabilities and the planning hooks); ``common.py`` holds the names
and helpers they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Throughput
from vecmig.providers.pinecone import lint, packing, pricing
from vecmig.providers.pinecone.common import DEFAULT_CONCURRENCY
from vecmig.providers.pinecone.search import PineconeSearch
from vecmig.providers.pinecone.speed import (
    UPSERT_MB_PER_S_PER_NAMESPACE,
    UPSERT_REQUESTS_PER_S_PER_NAMESPACE,
    is_local,
    local_throughput,
    model_throughput,
    wire_bytes_per_record,
)
from vecmig.records import Batch
from vecmig.spec import StoreSpec


class PineconeProvider(PineconeSearch):
    name: ClassVar[str] = "pinecone"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=False,
        namespaces=True,
        indexes=(),
        sparse=True,
        server_side_count=True,
        ordered_scan=True,
        metadata="json",
        metadata_default="json",
        metadata_number_lists=False,
        max_dimension=lint.MAX_DIMENSION,
        # Measured (bench/pinecone_throughput.py, 384 dims): engine batches of 1000 sent 36%
        # more requests than the limits need, batches of 10,000 under 5%: a request holds at
        # most 1000 records / 2 MB, so only large calls let the packer fill them.
        preferred_batch_records=10_000,
        search="index",
        search_filters=True,
    )
    # Modelled for a typical record (1536 dims, 1 KB metadata) at the default concurrency;
    # model_throughput() gives the figures for another shape.
    throughput: ClassVar[Throughput] = model_throughput()
    own_index: ClassVar[dict[str, Any] | None] = {"type": "managed"}  # Pinecone tunes it; nothing to set

    # ---- planning hooks (no requests) -------------------------------------------------------

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Throughput:
        """The model for records shaped like ``inventory``'s, at the spec's requests in flight.

        ``max_parallel`` is how many workers fit under the namespace's limits before they only
        share them (a worker already at the cap: 1), so more shards do not shorten the estimate.
        """
        dimension = int(inventory.dimension or 1536)
        if store is not None and is_local(store.connection.get("host")):
            return local_throughput(dimension)
        per_record = int(inventory.bytes_per_record or 0)
        metadata_bytes = max(0, per_record - 4 * dimension - 16) if per_record else 1024
        in_flight = DEFAULT_CONCURRENCY
        if store is not None:
            in_flight = max(1, int(store.connection.get("concurrency", DEFAULT_CONCURRENCY)))
        tp = model_throughput(dimension, metadata_bytes, concurrency=in_flight)
        wire = wire_bytes_per_record(dimension, metadata_bytes)
        per_request = max(1, min(packing.MAX_UPSERT_RECORDS,
                                 (packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN) // wire))
        cap = min(UPSERT_REQUESTS_PER_S_PER_NAMESPACE * per_request, UPSERT_MB_PER_S_PER_NAMESPACE * 1e6 / wire)
        workers = max(1, int(cap // tp.write_records_per_s)) if tp.write_records_per_s else 1
        return replace(tp, max_parallel=max(1, min(workers, max(1, concurrency))))

    def cost(self, operation: str, records: int, nbytes: int, prices: Mapping[str, Any]) -> dict[str, float]:
        """Write units, read units and storage in USD from ``pricing`` (list prices unless
        the spec's ``cost: {pinecone: ...}`` overrides them). For "query", ``records`` is the
        number of queries and ``nbytes`` the size of the namespace they search."""
        if records <= 0:
            return {}
        try:
            table = pricing.table(dict(prices))
        except ValueError as exc:
            raise TerminalError(str(exc), hint="fix cost.pinecone in the spec") from None
        per_record = max(1, nbytes // records)
        if operation == "query":
            usage = pricing.query_usage(records, nbytes)
        elif operation == "write":
            usage = pricing.write_usage(records, per_record)
        elif operation == "scan":
            usage = pricing.read_usage(records)
        elif operation == "fetch":
            usage = pricing.fetch_usage(records)
        elif operation == "storage":
            usage = pricing.storage_usage(records, per_record, months=1.0)
        else:
            return {}
        return usage.cost(table)

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """Every rule ``upsert`` enforces, over the sample, one finding per code with examples."""
        found = lint.lint_sample(sample, dimension=int(schema.dimension) if schema.dimension else None,
                                 metric=schema.metric, text_key=self._text_key, nested=self._nested)
        return [LintFinding(code=f.code, severity=f.severity, message=f.message, hint=f.hint)
                for f in lint.summarize(found)]
