"""Random metadata and random filters, to check a store's filter translation against
:func:`vecmig.filters.matches` (the contract's fixed filters catch the common cases; these
catch the corners: missing fields, list fields, ints against fractional bounds, mixed types).

``check_store`` writes the records through the provider, then asks every filter twice: with
k = every record (the ids must be exactly the ones ``matches`` keeps) and with k = 5 (the
exact top 5 among them, as numpy finds it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.contract.harness import schema_for
from vecmig.errors import VecmigError
from vecmig.filters import check, matches
from vecmig.providers.base import Provider
from vecmig.records import Batch
from vecmig.search import similarities, top_k

STRINGS = ["a", "b", "c", "Zürich", 'q"uote', "back\\slash", "日本語"]
INTS = [-3, -2, -1, 0, 1, 2, 3]
FLOATS = [-1.5, -0.5, 0.0, 0.5, 1.0, 1.5, 2.25, 3.0]
BOUNDS = [-2, -1.5, -1, 0, 0.5, 1, 1.5, 2, 2.5, 3.0]


@dataclass(frozen=True)
class Shape:
    """What a store keeps and translates: the generator stays inside it."""

    exists: bool = True  # $exists is translated (Chroma has none: refused, tested apart)
    string_ranges: bool = True  # $gt & co. on strings (Pinecone, Chroma, Qdrant: numbers only)
    bools_with_numbers: bool = True  # one field may hold booleans on some records, numbers on others
    empty_lists: bool = True  # [] is kept as a value
    number_lists: bool = False  # lists of numbers are kept (Pinecone: strings only; Chroma: one type)


def metadata(rng: random.Random, shape: Shape) -> dict[str, Any]:
    mixed: list[Callable[[], Any]] = [lambda: rng.choice(INTS), lambda: rng.choice(FLOATS),
                                      lambda: rng.choice(STRINGS), lambda: rng.sample(STRINGS, rng.randint(1, 2))]
    if shape.bools_with_numbers:
        mixed.append(lambda: rng.random() < 0.5)
    if shape.number_lists:
        mixed.append(lambda: rng.sample([*INTS, *FLOATS], rng.randint(1, 3)))
    values: dict[str, Callable[[], Any]] = {
        "s": lambda: rng.choice(STRINGS), "i": lambda: rng.choice(INTS), "f": lambda: rng.choice(FLOATS),
        "b": lambda: rng.random() < 0.5,
        "l": lambda: rng.sample(STRINGS, rng.randint(0 if shape.empty_lists else 1, 3)),
        "m": lambda: rng.choice(mixed)(),
    }
    return {key: make() for key, make in values.items() if rng.random() < 0.75}


def _value(rng: random.Random, field: str, shape: Shape) -> Any:
    pools: dict[str, list[Any]] = {"s": STRINGS, "l": STRINGS, "i": INTS, "f": FLOATS, "b": [True, False]}
    pool = pools.get(field) or [*STRINGS, *INTS, *FLOATS, *([True, False] if shape.bools_with_numbers else [])]
    return rng.choice(pool)


def _leaf(rng: random.Random, shape: Shape) -> dict[str, Any]:
    field = rng.choice("sifblm")
    ops = ["implicit", "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"]
    ops += ["$exists"] if shape.exists else []
    op = rng.choice(ops)
    if op == "implicit":
        return {field: _value(rng, field, shape)}
    if op in ("$in", "$nin"):
        return {field: {op: [_value(rng, field, shape) for _ in range(rng.randint(1, 3))]}}
    if op == "$exists":
        return {field: {op: rng.random() < 0.5}}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        bound: Any = rng.choice(STRINGS) if shape.string_ranges and field == "s" else rng.choice(BOUNDS)
        return {field: {op: bound}}
    return {field: {op: _value(rng, field, shape)}}


def random_filter(rng: random.Random, shape: Shape, depth: int = 2) -> dict[str, Any]:
    roll = rng.random()
    if depth == 0 or roll < 0.4:
        return _leaf(rng, shape)
    if roll < 0.55:  # two fields in one object: "and"
        out = _leaf(rng, shape)
        for key, value in _leaf(rng, shape).items():
            out.setdefault(key, value)
        return out
    parts = [random_filter(rng, shape, depth - 1) for _ in range(rng.randint(2, 3))]
    return {rng.choice(["$and", "$or"]): parts}


def records(n: int, seed: int, shape: Shape, dim: int = 4) -> Batch:
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return Batch(ids=[f"r{i:03d}" for i in range(n)], vectors=vectors,
                 metadata=[metadata(rng, shape) for _ in range(n)])


def write(provider: Provider, batch: Batch, metric: str = "euclidean") -> None:
    provider.create_collection(schema_for(batch, metric))
    provider.upsert(batch)
    provider.finalize()


def check_store(provider: Provider, batch: Batch, seed: int, shape: Shape, filters: int = 60,
                metric: str = "euclidean") -> int:
    """Every random filter against the store's answer; returns how many matched something."""
    rng = random.Random(seed)
    query = np.random.default_rng(seed + 1).standard_normal(batch.vectors.shape[1]).astype(np.float32)
    scores = similarities(metric, batch.vectors, query)[0]
    nonempty = 0
    for n in range(filters):
        flt = random_filter(rng, shape)
        check(flt)
        keep = [i for i, m in enumerate(batch.metadata) if matches(m, flt)]
        want = {str(batch.ids[i]) for i in keep}
        try:
            got = provider.query(query, len(batch), flt)
            top5 = provider.query(query, 5, flt)
        except VecmigError as e:
            raise AssertionError(f"filter {n} {flt}: refused: {e}") from None
        assert {str(h.id) for h in got} == want, (
            f"filter {n} {flt}: store found {sorted(map(str, (h.id for h in got)))}, reference {sorted(want)}")
        exact = top_k(scores[keep], [batch.ids[i] for i in keep], 5)
        assert [str(h.id) for h in top5] == [str(h.id) for h in exact], f"filter {n} {flt}: top 5 differ"
        nonempty += bool(want) and len(want) < len(batch)
    return nonempty
