"""What a migration into (or out of) Pinecone serverless costs: units metered, then dollars.

Prices are public list prices and change: every figure carries its source and date, and a
spec can override them (``PriceTable.override``). Metering rules follow Pinecone's
"Understanding cost" guide:

* write units (WU): an upsert uses 1 WU per KB of the records it writes, at least 5 WU per
  request (deletes are metered the same way on the records deleted);
* read units (RU): a fetch uses 1 RU per 10 records fetched (at least 1 per request), a
  list call 1 RU per page; a query 1 RU per GB of namespace (at least 0.25), whatever its
  top_k (:func:`query_usage`);
* storage: GB-months of record size, where a record is its id, its metadata (JSON), 4 bytes
  per dense dimension and 8 bytes per sparse non-zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from vecmig.providers.pinecone.packing import MAX_REQUEST_BYTES, MAX_UPSERT_RECORDS, REQUEST_MARGIN

SOURCE = "https://www.pinecone.io/pricing/ and https://docs.pinecone.io/guides/manage-cost/understanding-cost"
AS_OF = "2025-06"  # when these list prices were read; override them in the spec when they move
GB = 1_000_000_000

LIST_PAGE = 100  # ids per list call (the API's maximum)
FETCH_PER_RU = 10
WU_PER_KB = 1.0
MIN_WU_PER_REQUEST = 5


@dataclass(frozen=True)
class PriceTable:
    """USD list prices for one plan; every line can be overridden."""

    plan: str
    write_units_per_million: float
    read_units_per_million: float
    storage_gb_month: float
    source: str = SOURCE
    as_of: str = AS_OF
    note: str = "public list prices as of the date above; override in the spec"

    def override(self, values: dict[str, Any]) -> PriceTable:
        """A copy with spec-provided prices (unknown keys are refused, so typos do not pass)."""
        allowed = {"write_units_per_million", "read_units_per_million", "storage_gb_month", "as_of", "source"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"unknown Pinecone price key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        return replace(
            self, note="overridden in the spec",
            write_units_per_million=float(values.get("write_units_per_million", self.write_units_per_million)),
            read_units_per_million=float(values.get("read_units_per_million", self.read_units_per_million)),
            storage_gb_month=float(values.get("storage_gb_month", self.storage_gb_month)),
            as_of=str(values.get("as_of", self.as_of)), source=str(values.get("source", self.source)))


# Serverless, AWS us-east-1, pay-as-you-go. Standard has a $50/month minimum, Enterprise $500.
STANDARD = PriceTable(plan="standard", write_units_per_million=4.0, read_units_per_million=16.0,
                      storage_gb_month=0.33)
ENTERPRISE = PriceTable(plan="enterprise", write_units_per_million=6.0, read_units_per_million=24.0,
                        storage_gb_month=0.33)
PLANS = {"standard": STANDARD, "enterprise": ENTERPRISE}


def record_bytes(dimension: int, metadata_bytes: int = 0, id_bytes: int = 16, sparse_nnz: int = 0) -> int:
    """Stored size of one record, as Pinecone meters it."""
    return int(id_bytes + metadata_bytes + 4 * dimension + 8 * sparse_nnz)


@dataclass(frozen=True)
class Usage:
    write_units: float = 0.0
    read_units: float = 0.0
    storage_gb_month: float = 0.0
    detail: dict[str, float] = field(default_factory=dict)

    def cost(self, prices: PriceTable = STANDARD) -> dict[str, float]:
        """Line items in USD, rounded to the cent's hundredth (plans show them side by side)."""
        items = {
            "pinecone_write_units": self.write_units / 1e6 * prices.write_units_per_million,
            "pinecone_read_units": self.read_units / 1e6 * prices.read_units_per_million,
            "pinecone_storage": self.storage_gb_month * prices.storage_gb_month,
        }
        return {k: round(v, 4) for k, v in items.items() if v}


def write_usage(records: int, bytes_per_record: int, *, records_per_request: int | None = None) -> Usage:
    """WUs to upsert ``records`` of ``bytes_per_record`` (stored size), packed as vecmig packs.

    ``records_per_request`` defaults to what 1000 records / 2 MB allow for JSON of that size
    (a dense float takes ~2.7x its 4 stored bytes on the wire).
    """
    if records <= 0:
        return Usage()
    per_request = records_per_request or default_records_per_request(bytes_per_record)
    requests = math.ceil(records / per_request)
    kb = records * bytes_per_record / 1024
    wu = max(kb * WU_PER_KB, requests * MIN_WU_PER_REQUEST)
    return Usage(write_units=math.ceil(wu), detail={"upsert_requests": requests})


def read_usage(records: int, *, fetch_per_request: int = 100) -> Usage:
    """RUs to scan ``records`` (list pages of 100 ids, each page fetched)."""
    if records <= 0:
        return Usage()
    pages = math.ceil(records / LIST_PAGE)
    fetches = math.ceil(records / fetch_per_request)
    ru = pages + max(fetches, math.ceil(records / FETCH_PER_RU))
    return Usage(read_units=ru, detail={"list_requests": pages, "fetch_requests": fetches})


def fetch_usage(records: int, *, fetch_per_request: int = 100) -> Usage:
    """RUs to fetch ``records`` by id (validation reads the target this way): no list calls."""
    if records <= 0:
        return Usage()
    fetches = math.ceil(records / fetch_per_request)
    return Usage(read_units=max(fetches, math.ceil(records / FETCH_PER_RU)), detail={"fetch_requests": fetches})


# A serverless query is metered by the size of the namespace it searches, whatever top_k and
# include_* are: 1 RU per GB (10**9 bytes: 1M records of 7.14 KB = 7.14 GB = 7.14 RU in the
# guide's table), at least 0.25 RU per query ("Understanding cost", Query, read 2026-12).
QUERY_RU_PER_GB = 1.0
MIN_RU_PER_QUERY = 0.25


def query_usage(queries: int, namespace_bytes: int) -> Usage:
    """RUs of ``queries`` queries against a namespace of ``namespace_bytes`` (stored size,
    :func:`record_bytes` per record)."""
    if queries <= 0:
        return Usage()
    per_query = max(MIN_RU_PER_QUERY, namespace_bytes / GB * QUERY_RU_PER_GB)
    return Usage(read_units=queries * per_query, detail={"query_requests": queries})


def table(overrides: dict[str, Any] | None = None) -> PriceTable:
    """The price table a spec asks for: ``plan`` picks the base list, other keys override it."""
    values = dict(overrides or {})
    plan = str(values.pop("plan", "standard"))
    if plan not in PLANS:
        raise ValueError(f"unknown Pinecone plan {plan!r}; known: {', '.join(sorted(PLANS))}")
    base = PLANS[plan]
    return base.override(values) if values else base


def storage_usage(records: int, bytes_per_record: int, months: float = 1.0) -> Usage:
    return Usage(storage_gb_month=records * bytes_per_record / GB * months)


def estimate(records: int, bytes_per_record: int, *, write: bool = True, read: bool = False,
             months: float = 1.0, prices: PriceTable = STANDARD) -> dict[str, Any]:
    """Units and USD for moving ``records`` into Pinecone (write) and/or out of it (read).

    ``months`` of storage are charged for what was written (a blue-green target kept that
    long, say); pass 0 to leave storage out.
    """
    w = write_usage(records, bytes_per_record) if write else Usage()
    r = read_usage(records) if read else Usage()
    s = storage_usage(records, bytes_per_record, months) if (write and months) else Usage()
    usage = Usage(write_units=w.write_units, read_units=r.read_units, storage_gb_month=s.storage_gb_month,
                  detail={**w.detail, **r.detail})
    return {
        "write_units": usage.write_units,
        "read_units": usage.read_units,
        "storage_gb_month": round(usage.storage_gb_month, 6),
        "detail": usage.detail,
        "cost_usd": usage.cost(prices),
        "prices": {"plan": prices.plan, "source": prices.source, "as_of": prices.as_of, "note": prices.note},
    }


def default_records_per_request(bytes_per_record: int) -> int:
    wire = max(1, int(bytes_per_record * 2.7))
    return max(1, min(MAX_UPSERT_RECORDS, (MAX_REQUEST_BYTES - REQUEST_MARGIN) // wire))
