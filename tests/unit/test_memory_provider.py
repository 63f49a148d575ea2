"""The memory provider keeps the Provider contract the engine relies on, and its spec keys."""

from __future__ import annotations

import pytest

from tests.support.memory import Harness, records, spec_text
from vecmig.errors import SpecError, TerminalError
from vecmig.providers.memory import MemoryProvider
from vecmig.records import Batch, batch_digests
from vecmig.spec_loader import load_spec_text


def provider(h: Harness, role: str = "source") -> MemoryProvider:
    spec = h.spec("big-bang")
    return MemoryProvider(spec.source if role == "source" else spec.target)


def test_scan_is_ordered_resumable_and_sharded(h: Harness) -> None:
    h.seed(2500)
    src = provider(h)
    inv = src.inventory()
    assert (inv.exists, inv.count, inv.dimension, inv.id_type) == (True, 2500, 8, "int")
    shards = src.shards(inv, 1000)
    assert [s["records"] for s in shards] == [1000, 1000, 500]
    ids = [rid for s in shards for b in src.scan(s, None, 300) for rid in b.ids]
    assert ids == list(range(1, 2501)), "shards cover every id once, in order"
    first = next(iter(src.scan(shards[1], None, 300)))
    rest = [rid for b in src.scan(shards[1], first.cursor, 300) for rid in b.ids]
    assert first.ids + rest == list(range(1001, 2001)), "a scan resumes right after its cursor"


def test_upsert_fetch_round_trip_is_exact(h: Harness) -> None:
    batch = records(30)
    batch.ids = [*range(1, 16), *(f"doc-{i}" for i in range(15))]
    h.target.create("docs_v2", dimension=8)
    tgt = provider(h, "target")
    tgt.upsert(batch)
    tgt.upsert(batch)  # idempotent by id
    got = tgt.fetch([*batch.ids, "missing", 999])
    assert got.ids == batch.ids, "ids keep their type; missing ids are absent"
    assert got.vectors.tobytes() == batch.vectors.tobytes(), "float32 bits (-0.0, subnormals) survive"
    assert batch_digests(got) == batch_digests(batch)
    assert [type(m["whole"]) for m in got.metadata] == [float] * 30, "1.0 stays a float"
    assert got.texts == batch.texts and got.extra["sparse"] == batch.extra["sparse"]
    tgt.delete([1, "doc-0"])
    assert tgt.count() == 28


def test_missing_collection_is_a_terminal_error(h: Harness) -> None:
    with pytest.raises(TerminalError, match="does not exist in memory store 'dst'"):
        provider(h, "target").upsert(Batch(ids=[], vectors=records(1).vectors[:0], metadata=[]))


def test_spec_keys_are_checked(h: Harness) -> None:
    text = spec_text().replace("{name: src}", "{name: src, transient_every: 2}")
    with pytest.raises(SpecError, match="transient_every is ignored: it applies to a memory target"):
        load_spec_text(text)
    with pytest.raises(SpecError, match="'path' is not a memory connection key"):
        load_spec_text(spec_text().replace("{name: src}", "{name: src, path: x.jsonl}"))
    spec = h.spec(target_connection={"terminal_on_id": "doc-7"})
    assert spec.target.connection["terminal_on_id"] == "doc-7" and not spec.secrets
