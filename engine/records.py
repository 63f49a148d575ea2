"""The unit of data that flows from a source to a target: a columnar batch of records.

Vectors travel as one ``float32`` matrix per batch so that checksums, binary COPY and file
writers work on contiguous memory instead of per-record Python lists.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RecordId = int | str


@dataclass(slots=True)
class Batch:
    """Records in scan order plus the cursor that resumes the scan right after them."""

    ids: list[RecordId]
    vectors: np.ndarray  # shape (n, dim), dtype float32
    metadata: list[dict[str, Any]]
    texts: list[str | None] | None = None
    cursor: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Approximate payload size: vectors exactly, metadata and text roughly."""
        meta = sum(len(m) for m in self.metadata) * 24
        text = sum(len(t) for t in self.texts if t) if self.texts else 0
        return int(self.vectors.nbytes) + meta + text + 8 * len(self.ids)

    def take(self, positions: Iterable[int]) -> Batch:
        pos = list(positions)
        return Batch(
            ids=[self.ids[i] for i in pos],
            vectors=self.vectors[pos] if pos else self.vectors[:0],
            metadata=[self.metadata[i] for i in pos],
            texts=[self.texts[i] for i in pos] if self.texts is not None else None,
            cursor=self.cursor,
            extra={k: [v[i] for i in pos] if isinstance(v, list) and len(v) == len(self.ids) else v
                   for k, v in self.extra.items()},
        )

    def rows(self) -> Iterable[tuple[RecordId, np.ndarray, dict[str, Any], str | None]]:
        texts = self.texts if self.texts is not None else [None] * len(self.ids)
        return zip(self.ids, self.vectors, self.metadata, texts, strict=True)


@dataclass(slots=True)
class ColumnBatch:
    """The same records as a :class:`Batch`, held as columns: what a columnar source (a
    Parquet row group, a parsed JSONL page) has before any per-record dict exists, for a
    writer that encodes whole columns. Columns are Arrow arrays, or Python lists of parsed
    values (which the writer type-checks); a metadata field is absent when no record of the
    batch has it, and null where a record lacks it."""

    ids: Any  # pyarrow.Array | list[RecordId]
    vectors: np.ndarray  # (n, dim) float32, finite (checked by the source, as scan does)
    texts: Any | None
    metadata: dict[str, Any]
    cursor: Any = None
    sparse: list[Any] | None = None  # per record, None where it has none

    def __len__(self) -> int:
        return len(self.vectors)

    def to_batch(self) -> Batch:
        """Per-record form, for the careful encoders (coercion, per-record error messages)."""
        def py(values: Any) -> list[Any]:
            return values if isinstance(values, list) else values.to_pylist()

        n = len(self)
        metadata: list[dict[str, Any]] = [{} for _ in range(n)]
        for name, values in self.metadata.items():
            for row, value in zip(metadata, py(values), strict=True):
                if value is not None:
                    row[name] = value
        batch = Batch(ids=py(self.ids), vectors=self.vectors, metadata=metadata,
                      texts=py(self.texts) if self.texts is not None else None, cursor=self.cursor)
        if self.sparse is not None:
            batch.extra["sparse"] = list(self.sparse)
        return batch


def value_type(value: Any) -> str:
    """A metadata value's logical type, as inventories and collection schemas name it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "text[]"
    return "json"


def metadata_types(metadata: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each key's logical type over sampled records, sorted by key: "json" where records
    disagree; a null says nothing of its key's type."""
    fields: dict[str, str] = {}
    for meta in metadata:
        for key, value in meta.items():
            if value is not None:
                kind = value_type(value)
                fields[key] = kind if fields.get(key, kind) == kind else "json"
    return dict(sorted(fields.items()))


def as_vectors(rows: list[Any], dimension: int | None = None) -> np.ndarray:
    if not rows:
        return np.zeros((0, dimension or 0), dtype=np.float32)
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float32))


# ---- canonical form, shared by checksums on every side --------------------------------------


def _integral(value: float) -> int:
    """An integral float as the int it stands for: exact below 2**53; above, the int its
    shortest decimal (``repr``) spells, which is what a decimal store (jsonb numeric) keeps of
    it: ``6.02e23`` -> 602000000000000000000000, not the binary 601999999999999995805696."""
    if -(2**53) < value < 2**53:
        return int(value)
    return int(decimal.Decimal(repr(value)))


def canonical_value(value: Any, strict: bool = False) -> Any:
    """Normalise a metadata value so equal data hashes equal whatever store it came from.

    Integral floats become ints (a float8 column and a JSON ``1`` must agree; so must ``6.02e23``
    and the ``602000000000000000000000`` a jsonb numeric gives back for it: beyond 2**53 the
    int is that of the float's shortest decimal, see :func:`_integral`), tuples and
    numpy scalars become plain lists and numbers, and keys are sorted by the JSON encoder.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not strict and math.isfinite(value) and value.is_integer():
            return _integral(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical_value(v, strict) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | np.ndarray):
        return [canonical_value(v, strict) for v in value]
    return str(value)


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_metadata(metadata: Mapping[str, Any], strict: bool = False) -> bytes:
    """Absent and null are the same thing: stores differ in whether they can keep a null.

    The common value types take a fast path (this runs for every record on both sides of a
    validation); anything else goes through :func:`canonical_value`, with the same result.
    ``strict``: between two stores that both keep a number's type (``Capabilities.exact_numbers``),
    ``1`` and ``1.0`` (and ``0.0`` and ``-0.0``) are different values, not the same one.
    """
    if strict:
        return _encode({str(k): canonical_value(v, True) for k, v in metadata.items() if v is not None}).encode()
    clean: dict[str, Any] = {}
    for k, v in metadata.items():
        if v is None:
            continue
        if type(k) is not str:
            k = str(k)
        t = type(v)
        if t is str or t is int or t is bool:
            clean[k] = v
        elif t is float:
            clean[k] = _integral(v) if v.is_integer() else v  # is_integer(): False for NaN and infinities
        elif t is list and all(type(x) is str for x in v):
            clean[k] = v
        else:
            clean[k] = canonical_value(v)
    return _encode(clean).encode()


def canonical_id(record_id: RecordId) -> bytes:
    return (f"i:{record_id}" if isinstance(record_id, int) else f"s:{record_id}").encode()


def canonical_sparse(sparse: Any) -> bytes | None:
    """Sparse values as bytes that do not depend on the store: pairs sorted by index,
    indices as little-endian int64, values as float32 bits. None or no non-zeros: None
    (absent and empty are the same, like null metadata).

    Accepts ``{"indices": [...], "values": [...]}`` or an object with those attributes (the
    Pinecone SDK's SparseValues).
    """
    if sparse is None:
        return None
    try:
        indices = sparse["indices"] if isinstance(sparse, Mapping) else sparse.indices
        values = sparse["values"] if isinstance(sparse, Mapping) else sparse.values
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        vals = np.asarray(values, dtype=np.float32).reshape(-1)
    except (KeyError, AttributeError, TypeError, ValueError):
        # Malformed: still hashed (as its text), so two sides must hold the same junk to agree.
        return b"?" + repr(sparse).encode()
    if idx.size == 0 and vals.size == 0:
        return None
    if idx.size != vals.size:
        return b"?" + idx.astype("<i8").tobytes() + b"|" + vals.astype("<f4").tobytes()
    order = np.argsort(idx, kind="stable")
    return idx[order].astype("<i8").tobytes() + b"|" + vals[order].astype("<f4").tobytes()


def record_digest(record_id: RecordId, vector: np.ndarray | bytes, metadata: Mapping[str, Any], text: str | None,
                  sparse: Any = None, strict: bool = False) -> int:
    vec = vector if isinstance(vector, bytes) else np.ascontiguousarray(vector, dtype="<f4").tobytes()
    parts = [canonical_id(record_id), vec, canonical_metadata(metadata, strict), (text or "").encode()]
    packed = canonical_sparse(sparse) if sparse is not None else None
    if packed is not None:
        # Only records that carry sparse values hash differently: every checksum taken
        # before sparse values were covered (dense-only data) stays valid.
        parts[-1] += b"\x00sparse\x00" + packed
    return int.from_bytes(hashlib.blake2b(b"\x00".join(parts), digest_size=16).digest(), "big")


def sparse_of(batch: Batch) -> list[Any]:
    """Per-record sparse values of a batch (``extra["sparse"]``), None where a record has none."""
    sparse = batch.extra.get("sparse")
    if isinstance(sparse, list | tuple) and len(sparse) == len(batch):
        return list(sparse)
    return [None] * len(batch)


def batch_digests(batch: Batch, strict: bool = False, vectors: bool = True) -> list[int]:
    """record_digest of every record, sparse values included, in batch order.

    The vectors are converted to little-endian float32 bytes once for the whole batch and
    sliced per record, rather than converted record by record. ``vectors=False``: the vectors
    are left out, for stores compared within a tolerance (``vecmig.tolerance``), whose vectors
    are then compared value by value.
    """
    n = len(batch)
    if n == 0:
        return []
    if not vectors:
        texts = batch.texts if batch.texts is not None else [None] * n
        return [record_digest(rid, b"", meta, text, sp, strict)
                for rid, meta, text, sp in zip(batch.ids, batch.metadata, texts, sparse_of(batch), strict=True)]
    raw = np.ascontiguousarray(batch.vectors, dtype="<f4").tobytes()
    step = len(raw) // n
    texts = batch.texts if batch.texts is not None else [None] * n
    return [record_digest(rid, raw[i * step:(i + 1) * step], meta, text, sp, strict)
            for i, (rid, meta, text, sp) in enumerate(zip(batch.ids, batch.metadata, texts, sparse_of(batch),
                                                          strict=True))]


def same_record_key(record_id: RecordId) -> str:
    """The id as stores that keep only strings see it (Pinecone stores int 5 as "5"):
    set membership across a source and a target is decided on this, never on the type."""
    return str(record_id)


_MOD = 1 << 128


@dataclass(slots=True)
class Checksum:
    """Order-independent multiset hash: the sum of per-record digests modulo 2**128.

    Sources and targets scan in different orders (a file in file order, PostgreSQL by key),
    so the combination must not depend on order; a count travels with it so that a doubled
    record cannot hide.
    """

    count: int = 0
    total: int = 0

    def add_batch(self, batch: Batch) -> None:
        self.add_digests(batch_digests(batch))

    def add_digests(self, digests: list[int]) -> None:
        self.total = (self.total + sum(digests)) % _MOD
        self.count += len(digests)

    def merge(self, other: Checksum) -> None:
        self.count += other.count
        self.total = (self.total + other.total) % _MOD

    @property
    def hex(self) -> str:
        return f"{self.total:032x}"

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.hex}
