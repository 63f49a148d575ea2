"""Cutting work into Pinecone requests: upserts by measured JSON size, fetches by URL length.

Upsert limits are 1000 records and 2 MB per request body. Counting records alone either
overflows the byte limit (wide vectors, big metadata) or wastes requests, so every record
is serialised the way the SDK will send it (orjson, the SDK's own encoder, on the SDK's wire
dict) and requests are filled greedily up to both limits. The measurement is exact, so the
margin only has to cover what we cannot see (a server counting slightly differently).

Vectors travel as JSON numbers. ``float(np.float32(x))`` prints with up to 17 digits
(``0.10000000149011612``); the shortest decimal that still parses back to the same float32
takes ~8 (``0.1``). :func:`compact_float32` finds those decimals with numpy, which makes the
payload ~45% smaller (1536 dims: ~16.8 KB instead of ~30 KB per record), so ~1.8x fewer
upsert requests, and bit-exact round trips stay guaranteed (checked per value).

Fetch takes its ids in the query string; URLs are kept under ~8 KB (what common proxies and
gateways accept) by packing ids by their percent-encoded length, at most 1000 per request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import orjson

MAX_UPSERT_RECORDS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# Room left under MAX_REQUEST_BYTES: sizes are measured exactly, this covers a server that
# counts a little differently (0.5%: ~10 KB, i.e. under one typical 1536-dim record).
REQUEST_MARGIN = 10 * 1024
MAX_FETCH_IDS = 1000
MAX_DELETE_IDS = 1000
# Request target (path + query) budget for GET /vectors/fetch.
MAX_FETCH_URL = 8000

_POW10 = 10.0 ** np.arange(0, 23)  # every power of ten a float64 holds exactly
_CHUNK = 4096  # values per numpy pass: small enough to stay in cache (measured 3-6x faster)


def compact_float32(vectors: np.ndarray) -> np.ndarray:
    """float64 values whose repr is the shortest decimal that parses back to each float32.

    Candidates with 7, 8 and 9 significant digits (a float32 never needs more than 9) are
    computed for every value and kept only where converting back gives the same float32
    bits; the rest keep the exact widened value. Values outside [1e-13, 2**20) keep it too:
    there a decimal could land exactly on a float32 rounding midpoint, or a power of ten
    would not be exact. A decimal strictly inside the float32's rounding interval parses to
    the same bits whether a server reads it as float64 first or straight into float32.
    """
    v32 = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = v32.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    for start in range(0, flat.size, _CHUNK):
        out[start : start + _CHUNK] = _compact_chunk(flat[start : start + _CHUNK])
    return out.reshape(v32.shape)


def _compact_chunk(flat: np.ndarray) -> np.ndarray:
    exact = flat.astype(np.float64)
    mag = np.abs(flat)
    ok = (mag >= 1e-13) & (mag < 2.0**20)
    with np.errstate(all="ignore"):
        # A float32 log10 can be off by one at a power of ten: that only costs a digit,
        # never correctness (every candidate is checked below).
        exp = np.floor(np.log10(np.where(ok, mag, np.float32(1)))).astype(np.int64)
        out = exact
        for digits in (9, 8, 7):  # fewest digits last, so it wins where it is valid
            scale = _POW10[np.clip(digits - 1 - exp, 0, 22)]
            cand = np.rint(exact * scale) / scale  # one correctly rounded division: nearest double
            good = ok & (cand.astype(np.float32) == flat)
            out = np.where(good, cand, out)
    return out


# ---- upserts --------------------------------------------------------------------------------


def upsert_overhead(namespace: str) -> int:
    """Bytes of ``{"vectors":[...],"namespace":...}`` around the records (as the SDK sends it)."""
    body: dict[str, Any] = {"vectors": []}
    if namespace:
        body["namespace"] = namespace
    return len(orjson.dumps(body))


def wire_size(record: dict[str, Any]) -> int:
    """Serialized size of one record in the request body (the SDK's wire dict, orjson)."""
    return len(orjson.dumps(record))


@dataclass(frozen=True)
class Packed:
    start: int
    stop: int
    nbytes: int  # the request body size, exactly

    def __len__(self) -> int:
        return self.stop - self.start


class OversizeRecord(ValueError):
    def __init__(self, position: int, size: int, limit: int) -> None:
        super().__init__(f"record at position {position} is {size:,} bytes; a request holds at most {limit:,}")
        self.position = position
        self.size = size
        self.limit = limit


def pack(sizes: Sequence[int], *, overhead: int, max_records: int = MAX_UPSERT_RECORDS,
         max_bytes: int = MAX_REQUEST_BYTES - REQUEST_MARGIN) -> list[Packed]:
    """Greedy, order-preserving packing of records into requests under both limits.

    Record sizes of one batch are near-uniform, so next-fit wastes at most one record per
    request; reordering would buy little and cost determinism.
    """
    out: list[Packed] = []
    start = 0
    body = overhead
    for pos, size in enumerate(sizes):
        if overhead + size > max_bytes:
            raise OversizeRecord(pos, size, max_bytes - overhead)
        # +1 for the comma separating it from the previous record
        grown = body + size + (1 if pos > start else 0)
        if pos > start and (pos - start >= max_records or grown > max_bytes):
            out.append(Packed(start, pos, body))
            start, grown = pos, overhead + size
        body = grown
    if start < len(sizes):
        out.append(Packed(start, len(sizes), body))
    return out


def min_requests(sizes: Sequence[int], *, overhead: int, max_records: int = MAX_UPSERT_RECORDS,
                 max_bytes: int = MAX_REQUEST_BYTES) -> int:
    """A lower bound no packing can beat (no margin): what efficiency is measured against."""
    if not sizes:
        return 0
    payload = sum(sizes) + len(sizes) - 1
    return max(math.ceil(len(sizes) / max_records), math.ceil(payload / (max_bytes - overhead)))


# ---- fetches --------------------------------------------------------------------------------


def fetch_groups(ids: Sequence[str], *, namespace: str, max_url: int = MAX_FETCH_URL,
                 max_ids: int = MAX_FETCH_IDS) -> list[list[str]]:
    """Ids cut into fetch requests whose ``/vectors/fetch?ids=..`` target stays under ``max_url``.

    Lengths are those of ``urllib.parse.quote_plus``, which is what httpx (the SDK's
    transport) uses to encode query parameters.
    """
    fixed = len("/vectors/fetch?") + (len("&namespace=") + len(quote_plus(namespace)) if namespace else 0)
    out: list[list[str]] = []
    group: list[str] = []
    used = fixed
    for rid in ids:
        cost = len("ids=") + len(quote_plus(rid)) + (1 if group else 0)
        if group and (len(group) >= max_ids or used + cost > max_url):
            out.append(group)
            group, used = [], fixed
            cost -= 1
        group.append(rid)
        used += cost
    if group:
        out.append(group)
    return out
