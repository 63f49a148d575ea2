"""What the contract cases share: the store under test with its provider class, records of every
shape the contract names, and comparisons that say which record differs and how."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tests.contract.kit import StoreUnderTest
from vecmig.errors import TerminalError
from vecmig.providers import provider_class
from vecmig.providers.base import Capabilities, CollectionSchema, Provider
from vecmig.records import Batch, RecordId, canonical_metadata, canonical_sparse, sparse_of
from vecmig.spec import CreateSpec, Fields, StoreSpec
from vecmig.specload.interpolation import _is_secret_pointer
from vecmig.tolerance import within_ulp

DIM = 8
LACK_KEYS = frozenset({"ids:int", "ids:str", "text", "sparse", "namespaces", "delete",
                       *(f"metadata:{t}" for t in ("int", "float", "bool", "null", "str", "list_str"))})
_names = itertools.count(1)

# The values the round-trip cases write, each kind on its own.
IDS: dict[str, list[RecordId]] = {
    "int": [0, 1, 42, 2**53 + 1, 2**62 + 12345, 2**63 - 1],
    "str": ["a", "0", "Zürich café", "日本語のID", "with space", "x" * 64],
}
VALUES: dict[str, list[Any]] = {
    "int": [0, 1, -1, 2**31, 2**53 - 1, 2**53 + 1, 2**63 - 1, -(2**63)],
    "float": [1.0, -0.0, 0.1, 2.5, 1e300, -1.5e-310, 123456789.125],
    "bool": [True, False],
    "null": [None, "kept", None],  # a field that is null on some records: null and absent are the same
    "str": ["", "plain", "Zürich 日本語 🙂", "line\nbreak\ttab", 'quote " and \\'],
    "list_str": [[], ["a"], ["ü", "b c", ""]],
}
TEXTS: list[str | None] = ["plain", "", "ünïcødé 日本語 🙂", "line\nbreak\ttab", None, "x" * 5000]


@dataclass
class Store:
    """A store under test for one session: its declaration, provider class, and helpers."""

    sut: StoreUnderTest
    tmp: Path
    left_out: list[str] = field(default_factory=list)  # "case: why", for the report

    @property
    def cls(self) -> type[Provider]:
        return provider_class(self.sut.provider)

    @property
    def caps(self) -> Capabilities:
        return self.cls.capabilities

    def lacks(self, key: str) -> str | None:
        return self.sut.lacks.get(key)

    def leave_out(self, case: str, why: str) -> None:
        note = f"{case}: {why}"
        if note not in self.left_out:
            self.left_out.append(note)

    def fresh(self, case: str) -> str:
        """A collection name no other case uses: lowercase letters and digits only, which every
        store takes as a collection, index, table or file name."""
        return f"ct{next(_names):03d}{''.join(c for c in case.lower() if c.isalnum())[:12]}"

    @property
    def id_kind(self) -> str:
        """The id type the general cases use: int where the store keeps ints, else str."""
        return "str" if self.lacks("ids:int") else "int"

    def spec(self, name: str, role: str = "target", namespace: str | None = None) -> StoreSpec:
        spec = self.sut.spec(name, role)
        return replace(spec, namespace=namespace) if namespace is not None else spec

    @contextlib.contextmanager
    def open(self, name: str, role: str = "target", namespace: str | None = None) -> Iterator[Provider]:
        provider = self.cls(self.spec(name, role, namespace))
        provider.connect()
        try:
            yield provider
        finally:
            provider.close()

    def metric(self, name: str) -> str:
        """The metric the module's spec asks a new collection for, else cosine."""
        create = self.spec(name).create
        return (create and create.metric) or "cosine"

    def create(self, name: str, batch: Batch, *, metric: str | None = None) -> None:
        """A new collection for ``batch``, with the metric the module's spec asks for (a store
        whose cosine collections normalise vectors is tested with another), else cosine."""
        if not self.caps.create_collection:
            return  # the module's spec names a collection that is there already
        with self.open(name) as p:
            p.create_collection(schema_for(batch, metric or self.metric(name)))

    def vector_ulps(self, name: str) -> int:
        """The ulp the store declares collection ``name`` may move vector values by."""
        with self.open(name, "source") as p:
            return p.vector_ulps()

    def same(self, got: Batch, want: Batch, what: str, *, name: str | None = None) -> None:
        """:func:`assert_same` by id text, numbers' types compared where the store keeps them;
        with ``name``, vectors within the ulp the store declares for that collection (else bit
        for bit)."""
        ulps = self.vector_ulps(name) if name is not None else 0
        assert_same(got, want, what, key=str, strict=self.caps.exact_numbers, ulps=ulps)

    def write(self, name: str, batch: Batch, namespace: str | None = None) -> None:
        """One upsert, acknowledged (a file store seals it: reads see only what finalize merged)."""
        with self.open(name, namespace=namespace) as p:
            p.upsert(batch)
            p.finalize()

    def delete(self, name: str, ids: Sequence[RecordId]) -> None:
        with self.open(name) as p:
            p.delete(ids)
            p.finalize()

    def seeded(self, case: str, batch: Batch) -> str:
        """A collection holding ``batch``: through the store's own client where the module gives
        one (``seed``), else created and written through vecmig."""
        name = self.fresh(case)
        if self.sut.seed is not None:
            self.sut.seed(self.spec(name, "source"), as_dicts(batch))
        else:
            self.create(name, batch)
            self.write(name, batch)
        return name

    def read(self, name: str, namespace: str | None = None, batch_size: int = 1000) -> Batch:
        with self.open(name, "source", namespace) as p:
            return concat(list(p.scan(None, None, batch_size)))

    def drop(self, name: str) -> None:
        with contextlib.suppress(NotImplementedError), self.open(name) as p:
            p.drop_collection()


def schema_for(batch: Batch, metric: str = "cosine") -> CollectionSchema:
    """The collection a batch needs (typed columns for stores that want them known upfront)."""
    kinds: dict[str, str] = {}
    for meta in batch.metadata:
        for key, value in meta.items():
            if value is not None:
                kinds.setdefault(key, logical_type(value))
    for meta in batch.metadata:  # a field only ever null still needs a column
        for key in meta:
            kinds.setdefault(key, "text")
    ids = {type(i) for i in batch.ids}
    return CollectionSchema(dimension=int(batch.vectors.shape[1]), metric=metric,
                            id_type="int" if ids == {int} else "text", metadata=kinds,
                            text=any(t is not None for t in batch.texts or []),
                            sparse=any(s is not None for s in sparse_of(batch)))


def logical_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "text[]"
    return "text"


def vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """Random float32 vectors, none of them zero (cosine refuses a zero vector)."""
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((n, dim)).astype(np.float32)
    out[:, 0] = np.abs(out[:, 0]) + np.float32(0.5)
    return out


def ids_of(kind: str, n: int, start: int = 0) -> list[RecordId]:
    return list(range(start, start + n)) if kind == "int" else [f"doc-{i:05d}" for i in range(start, start + n)]


def records(store: Store, n: int, *, start: int = 0, seed: int = 0, dim: int = DIM) -> Batch:
    """``n`` ordinary records: the store's id kind, metadata of every type it keeps, text where
    it has text. The round-trip cases test each value shape on its own; these test the rest."""
    metadata: list[dict[str, Any]] = []
    for i in range(start, start + n):
        every = {"str": ("lang", ("en", "de", "日本語")[i % 3]), "float": ("score", i / 7 + 0.5),
                 "bool": ("ok", i % 2 == 0), "int": ("year", 1990 + i % 35), "list_str": ("tags", ["a", f"t{i % 4}"])}
        metadata.append({key: value for kind, (key, value) in every.items() if not store.lacks(f"metadata:{kind}")})
    texts = None if store.lacks("text") else [f"paragraph {i} café" for i in range(start, start + n)]
    return Batch(ids=ids_of(store.id_kind, n, start), vectors=vectors(n, seed + start, dim), metadata=metadata,
                 texts=texts)


def concat(batches: list[Batch]) -> Batch:
    if not batches:
        return Batch(ids=[], vectors=np.zeros((0, DIM), np.float32), metadata=[], texts=[])
    out = Batch(ids=[i for b in batches for i in b.ids], vectors=np.concatenate([b.vectors for b in batches]),
                metadata=[m for b in batches for m in b.metadata],
                texts=[t for b in batches for t in (b.texts if b.texts is not None else [None] * len(b))])
    if any("sparse" in b.extra for b in batches):
        out.extra["sparse"] = [s for b in batches for s in sparse_of(b)]
    return out


def as_dicts(batch: Batch) -> list[dict[str, Any]]:
    """The file record shape (ARCHITECTURE.md): what a module's own-client ``seed`` is given."""
    out: list[dict[str, Any]] = []
    for (rid, vec, meta, text), sparse in zip(batch.rows(), sparse_of(batch), strict=True):
        rec: dict[str, Any] = {"id": rid, "vector": [float(x) for x in vec], "metadata": dict(meta)}
        if text is not None:
            rec["text"] = text
        if sparse is not None:
            rec["sparse"] = sparse
        out.append(rec)
    return out


def store_block(spec: StoreSpec, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A StoreSpec as a spec's source/target mapping (what the loader turns back into one).

    Secret connection values go into ``env`` and the block names them as ``${env:...}`` (a
    spec may not hold a credential itself)."""
    connection = dict(spec.connection)
    for key, value in list(connection.items()):
        if env is not None and isinstance(value, str) and _is_secret_pointer(f"/target/connection/{key}"):
            name = f"VECMIG_CONTRACT_{key.upper()}"
            env[name] = value
            connection[key] = f"${{env:{name}}}"
    block: dict[str, Any] = {"provider": spec.provider, "connection": connection}
    if spec.collection is not None:
        block["collection"] = spec.collection
    if spec.namespace is not None:
        block["namespace"] = spec.namespace
    default = Fields()
    fields = {k: getattr(spec.fields, k) for k in ("id", "vector", "text", "metadata")
              if getattr(spec.fields, k) != getattr(default, k)}
    if isinstance(fields.get("metadata"), tuple):
        fields["metadata"] = list(fields["metadata"])
    if fields:
        block["fields"] = fields
    if spec.create is not None:  # what a created collection gets (the metric the module asks for)
        create = {k: getattr(spec.create, k) for k in ("dimension", "metric", "id_type", "cloud", "region",
                                                       "deletion_protection", "sparse")
                  if getattr(spec.create, k) != getattr(CreateSpec(), k)}
        if spec.create.tags:
            create["tags"] = dict(spec.create.tags)
        if spec.create.index != CreateSpec().index:
            create["index"] = {k: getattr(spec.create.index, k) for k in ("type", "m", "ef_construction", "lists")}
        if create:
            block["create"] = create
    return block


def refused_or_normalised(store: Store, name: str, batch: Batch, key: str) -> None:
    """What a store declares it cannot keep: each record is refused with a one-line error naming it,
    or comes back equal under vecmig's canonical form (the declared normalisation), never changed."""
    reason = store.lacks(key) or ""
    store.leave_out(key, reason)
    with store.open(name) as p:
        for i, rid in enumerate(batch.ids):
            one = batch.take([i])
            try:
                p.upsert(one)
                p.finalize()
            except TerminalError as e:
                assert str(rid) in e.one_line(), f"the refusal names the record {rid!r}: {e.one_line()}"
                continue
            store.same(p.fetch([rid]), one, f"{key} ({reason}): record {rid!r}")


# ---- comparing --------------------------------------------------------------------------------

Canon = tuple[bytes, bytes, str | None, bytes | None]


def canon(batch: Batch, *, key: Any = None, strict: bool = False) -> dict[Any, Canon]:
    """id -> (vector bits, canonical metadata, text, canonical sparse): equal means the same
    record under vecmig's canonical form (absent == null, 1 == 1.0). ``key`` maps ids (a store
    that keeps ids as text is compared by ``str``); ``strict``: 1 and 1.0 differ (``exact_numbers``)."""
    texts = batch.texts if batch.texts is not None else [None] * len(batch)
    sparse = sparse_of(batch)
    out: dict[Any, Canon] = {}
    for i, rid in enumerate(batch.ids):
        k = key(rid) if key else rid
        assert k not in out, f"id {rid!r} read twice"
        out[k] = (np.ascontiguousarray(batch.vectors[i], dtype="<f4").tobytes(),
                  canonical_metadata(batch.metadata[i], strict), texts[i] or None, canonical_sparse(sparse[i]))
    return out


def assert_same(got: Batch, want: Batch, what: str, *, key: Any = None, strict: bool = False,
                ulps: int = 0) -> None:
    """The same records (any order), naming the first ids missing, extra or different; vectors
    bit for bit, or within ``ulps`` float32 steps where the store declares that many."""
    a, b = canon(got, key=key, strict=strict), canon(want, key=key, strict=strict)
    missing, extra = [k for k in b if k not in a], [k for k in a if k not in b]
    assert not missing and not extra, f"{what}: missing {missing[:5]}, extra {extra[:5]}"

    def same_record(x: Canon, y: Canon) -> bool:
        if x == y:
            return True
        return ulps > 0 and x[1:] == y[1:] and within_ulp(np.frombuffer(x[0], "<f4"), np.frombuffer(y[0], "<f4"),
                                                          ulps)

    differ = [k for k in b if not same_record(a[k], b[k])]
    assert not differ, f"{what}: {len(differ)} record(s) differ, e.g. {differ[0]!r}: {a[differ[0]]} != {b[differ[0]]}"


def same_value(got: Any, want: Any) -> bool:
    """Equal with the same type all the way down; floats bit for bit (-0.0 is not 0.0)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return struct.pack("<d", got) == struct.pack("<d", want) or (math.isnan(got) and math.isnan(want))
    if isinstance(want, list):
        return len(got) == len(want) and all(same_value(g, w) for g, w in zip(got, want, strict=True))
    return bool(got == want)


def ulps_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float32 steps lie between ``a`` and ``b``, element by element (-0.0 == 0.0 apart)."""
    def ordered(x: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(x, dtype="<f4").view("<i4").astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return np.abs(ordered(a) - ordered(b))


def json_round_trip(value: Any) -> Any:
    """A cursor or shard as the state stores it (JSON): what a resumed run is handed back."""
    return json.loads(json.dumps(value))
