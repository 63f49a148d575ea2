"""The jsonl and parquet providers against real files: round trips, shards, resume, replay."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vecmig.errors import TerminalError
from vecmig.providers import CollectionSchema, provider_class
from vecmig.providers.base import Provider
from vecmig.providers.files import parquet as parquet_provider
from vecmig.providers.files.common import float32_for_json
from vecmig.records import Batch, Checksum
from vecmig.spec import Fields, StoreSpec

FORMATS = ("jsonl", "parquet")

# float32 values that a careless text round trip would change.
SPECIAL = np.array(
    [0.1, -0.0, 1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38, 1 / 3, 16777217.0, 2.5e-8, 123456.789],
    dtype=np.float32,
)


# ---- helpers --------------------------------------------------------------------------------


def provider(tmp_path: Path, fmt: str, path: str, fields: Fields | None = None) -> Provider:
    spec = StoreSpec(provider=fmt, connection={"path": path}, base_dir=tmp_path, fields=fields or Fields())
    return provider_class(fmt)(spec)


def make_records(n: int, dim: int, *, str_ids: bool = False, seed: int = 0, start: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    flat = vectors.reshape(-1)
    flat[: min(len(SPECIAL), flat.size)] = SPECIAL[: flat.size]
    ids: list[int | str] = [f"doc-{i}-é" if str_ids else i for i in range(start, start + n)]
    metadata = [
        {
            "lang": ["en", "de", "fr"][i % 3],
            "n": i,
            "score": i / 7,
            "flag": i % 2 == 0,
            "tags": ["a", f"t{i % 5}"],
            "nested": {"x": i, "y": [1, 2]},
        }
        for i in range(start, start + n)
    ]
    texts: list[str | None] = [None if i % 4 == 0 else ("" if i % 4 == 1 else f"text {i} ✓") for i in range(n)]
    return Batch(ids=ids, vectors=vectors, metadata=metadata, texts=texts)


def write_source(tmp_path: Path, fmt: str, name: str, batch: Batch, row_group_size: int = 37) -> str:
    """A source file written independently of the providers (the way other tools write them)."""
    path = tmp_path / name
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for rid, vec, meta, text in batch.rows():
                rec: dict[str, Any] = {"id": rid, "vector": vec.tolist(), "metadata": meta}
                if text is not None:
                    rec["text"] = text
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    else:
        dim = batch.vectors.shape[1]
        table = pa.table(
            {
                "id": pa.array(batch.ids),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(batch.vectors.reshape(-1)), dim),
                "text": pa.array(batch.texts, pa.string()),
                "metadata": pa.array([json.dumps(m) for m in batch.metadata]),
            }
        )
        pq.write_table(table, path, row_group_size=row_group_size)
    return name


def scan_all(p: Provider, shard: dict[str, Any] | None = None, cursor: Any = None, batch_size: int = 64) -> list[Batch]:
    return list(p.scan(shard, cursor, batch_size))


def as_dict(batches: list[Batch]) -> dict[Any, tuple[bytes, dict[str, Any], str | None]]:
    out: dict[Any, tuple[bytes, dict[str, Any], str | None]] = {}
    for b in batches:
        assert b.vectors.dtype == np.float32 and b.vectors.shape == (len(b), b.vectors.shape[1])
        for rid, vec, meta, text in b.rows():
            assert rid not in out, f"id {rid!r} appears twice"
            out[rid] = (vec.tobytes(), meta, text)
    return out


def ids_of(batches: list[Batch]) -> list[Any]:
    return [i for b in batches for i in b.ids]


def checksum(batches: list[Batch]) -> dict[str, Any]:
    c = Checksum()
    for b in batches:
        c.add_batch(b)
    return c.to_json()


def schema_for(batch: Batch, str_ids: bool = False) -> CollectionSchema:
    return CollectionSchema(
        dimension=batch.vectors.shape[1],
        metric="cosine",
        id_type="text" if str_ids else "int",
        metadata={"lang": "text", "n": "int", "score": "float", "flag": "bool", "tags": "text[]", "nested": "json"},
        text=True,
    )


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("str_ids", [False, True], ids=["int-ids", "str-ids"])
@pytest.mark.parametrize("dst", FORMATS)
@pytest.mark.parametrize("src", FORMATS)
def test_round_trip_bit_for_bit(tmp_path: Path, src: str, dst: str, str_ids: bool) -> None:
    expected = make_records(301, 16, str_ids=str_ids)
    source = provider(tmp_path, src, write_source(tmp_path, src, f"in.{src}", expected))
    inv = source.inventory()
    assert (inv.exists, inv.dimension, inv.count, inv.count_exact) == (True, 16, 301, True)
    assert inv.id_type == ("text" if str_ids else "int")

    target = provider(tmp_path, dst, f"out/copy.{dst}")
    target.create_collection(schema_for(expected, str_ids))
    read: list[Batch] = []
    for shard in source.shards(inv, 100):
        for batch in source.scan(shard, None, 50):
            read.append(batch)
            target.upsert(batch)
    target.finalize()

    back = scan_all(target)
    assert as_dict(back) == as_dict([expected])  # vectors compared as bytes
    assert ids_of(back) == expected.ids  # order kept
    for b in back:  # ids keep their type
        assert all(isinstance(i, str if str_ids else int) for i in b.ids)
    assert checksum(read) == checksum(back) == checksum([expected])
    assert target.count() == 301
    assert not (tmp_path / f"out/copy.{dst}.vecmig-parts").exists()


def test_jsonl_written_floats_are_plain_json(tmp_path: Path) -> None:
    batch = make_records(3, 4)
    target = provider(tmp_path, "jsonl", "t.jsonl")
    target.create_collection(schema_for(batch))
    target.upsert(batch)
    target.finalize()
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert list(first)[:2] == ["id", "vector"] and first["metadata"]["lang"] == "en"
    assert "text" not in first  # None text is omitted, not written as null
    assert np.array(first["vector"], dtype=np.float32).tobytes() == batch.vectors[0].tobytes()


def test_float32_text_round_trips_every_bit_pattern() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([values[np.isfinite(values)], SPECIAL, np.array([0.5, 1.0, -2.0, 7e-39], np.float32)])
    text = json.dumps(float32_for_json(values).tolist())
    back = np.array(json.loads(text), dtype=np.float32)
    assert back.view(np.uint32).tolist() == values.view(np.uint32).tolist()
    assert json.loads(json.dumps(float32_for_json(np.array([0.1, 0.5], np.float32)).tolist())) == [0.1, 0.5]


def test_parquet_written_schema(tmp_path: Path) -> None:
    batch = make_records(5, 8)
    target = provider(tmp_path, "parquet", "t.parquet")
    target.create_collection(schema_for(batch))
    target.upsert(batch)
    target.finalize()
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert schema.field("id").type == pa.int64()
    assert schema.field("vector").type == pa.list_(pa.float32(), 8)
    assert schema.field("metadata").type == pa.string()
    assert json.loads(pq.read_table(tmp_path / "t.parquet").column("metadata")[0].as_py()) == batch.metadata[0]


def test_parquet_typed_metadata_columns(tmp_path: Path) -> None:
    batch = make_records(40, 8, str_ids=True)
    cols = ("lang", "n", "score", "flag", "tags", "nested")
    target = provider(tmp_path, "parquet", "typed.parquet", Fields(id="id", vector="vector", metadata=cols))
    target.create_collection(schema_for(batch, str_ids=True))
    target.upsert(batch)
    target.finalize()
    schema = pq.read_schema(tmp_path / "typed.parquet")
    assert schema.field("id").type == pa.string()
    assert schema.field("n").type == pa.int64()
    assert schema.field("score").type == pa.float64()
    assert schema.field("flag").type == pa.bool_()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("nested").type == pa.string()  # json documents

    back = scan_all(target)
    assert as_dict(back) == as_dict([batch])
    assert checksum(back) == checksum([batch])
    inv = target.inventory()
    assert inv.fields == {
        "flag": "bool",
        "lang": "text",
        "n": "int",
        "nested": "json",
        "score": "float",
        "tags": "text[]",
    }


def test_foreign_parquet_with_loose_columns(tmp_path: Path) -> None:
    """A dataframe export: 'embedding' float64 lists, metadata as plain columns."""
    table = pa.table(
        {
            "id": pa.array([10, 11, 12], pa.int32()),
            "embedding": pa.array([[0.5, 1.5], [2.0, 3.0], [-1.0, 0.25]], pa.list_(pa.float64())),
            "title": ["a", None, "c"],
            "year": [2001, 2002, None],
        }
    )
    pq.write_table(table, tmp_path / "df.parquet")
    p = provider(tmp_path, "parquet", "df.parquet")
    inv = p.inventory()
    assert (inv.dimension, inv.count, inv.id_type) == (2, 3, "int")
    assert inv.fields == {"title": "text", "year": "int"}
    (b,) = scan_all(p)
    assert b.ids == [10, 11, 12]
    assert b.metadata == [{"title": "a", "year": 2001}, {"year": 2002}, {"title": "c"}]
    assert b.vectors.tolist() == [[0.5, 1.5], [2.0, 3.0], [-1.0, 0.25]]


def test_jsonl_embedding_key_and_loose_metadata(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_text(
        '{"id": "a", "embedding": [1, 2], "title": "x", "metadata": {"lang": "en"}}\n'
        '{"id": "b", "embedding": [3, 4], "sparse": {"indices": [1], "values": [0.5]}}\n'
    )
    p = provider(tmp_path, "jsonl", "f.jsonl")
    (b,) = scan_all(p)
    assert b.metadata == [{"title": "x", "lang": "en"}, {}]
    assert b.extra["sparse"] == [None, {"indices": [1], "values": [0.5]}]
    assert p.inventory().fields == {"lang": "text", "title": "text"}

    named = provider(tmp_path, "jsonl", "f.jsonl", Fields(id="id", vector="embedding", metadata=("title",)))
    (b,) = scan_all(named)
    assert b.metadata == [{"title": "x"}, {}]


# ---- inventory ------------------------------------------------------------------------------


def test_inventory_missing_and_fingerprint(tmp_path: Path) -> None:
    for fmt in FORMATS:
        inv = provider(tmp_path, fmt, f"nope.{fmt}").inventory()
        assert inv.exists is False
        assert provider(tmp_path, fmt, f"nope.{fmt}").shards(inv, 10) == []

    name = write_source(tmp_path, "jsonl", "x.jsonl", make_records(20, 4))
    p = provider(tmp_path, "jsonl", name)
    first, again = p.inventory(), provider(tmp_path, "jsonl", name).inventory()
    assert first.fingerprint == again.fingerprint
    assert first.to_json() == again.to_json()
    with open(tmp_path / name, "a") as f:
        f.write(json.dumps({"id": 99, "vector": [1, 2, 3, 4]}) + "\n")
    changed = p.inventory()
    assert changed.count == 21 and changed.fingerprint != first.fingerprint


def test_inventory_type_inference_and_blank_lines(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "vector": [1, 2], "metadata": {"t": "a", "i": 1, "f": 1, "b": True, "l": ["x"], "j": {"k": 1}}},
        {"id": 2, "vector": [1, 2], "metadata": {"t": "b", "i": 2, "f": 2.5, "b": False, "l": [], "j": [1]}},
        {"id": 3, "vector": [1, 2], "metadata": {"t": None, "mixed": "s"}},
        {"id": 4, "vector": [1, 2], "metadata": {"mixed": 3}},
    ]
    body = "\n\n".join(json.dumps(rec) for rec in lines) + "\n  \n\r\n" + json.dumps({"id": 5, "vector": [0, 0]})
    (tmp_path / "t.jsonl").write_text(body)  # blank lines, whitespace lines, no final newline
    p = provider(tmp_path, "jsonl", "t.jsonl")
    inv = p.inventory()
    assert inv.count == 5 == p.count() == len(ids_of(scan_all(p)))
    assert inv.fields == {
        "b": "bool",
        "f": "float",
        "i": "int",
        "j": "json",
        "l": "text[]",
        "mixed": "json",
        "t": "text",
    }
    assert inv.extra["size"] == (tmp_path / "t.jsonl").stat().st_size
    assert inv.bytes_per_record == inv.extra["size"] // 5


# ---- shards and resume ----------------------------------------------------------------------


def jsonl_with_ragged_lines(tmp_path: Path, n: int) -> tuple[str, list[int]]:
    rng = np.random.default_rng(7)
    parts = []
    for i in range(n):
        text = "x" * int(rng.integers(0, 300))
        parts.append(json.dumps({"id": i, "vector": [float(i), 1.0], "text": text}) + "\n")
        if i % 9 == 0:
            parts.append("\n")  # blank lines must neither count nor break shard edges
    (tmp_path / "r.jsonl").write_text("".join(parts))
    return "r.jsonl", list(range(n))


@pytest.mark.parametrize("shard_size", [1, 3, 10, 57, 1000, 10**9])
def test_jsonl_shards_partition_the_file(tmp_path: Path, shard_size: int) -> None:
    name, all_ids = jsonl_with_ragged_lines(tmp_path, 200)
    p = provider(tmp_path, "jsonl", name)
    inv = p.inventory()
    shards = p.shards(inv, shard_size)
    assert shards == p.shards(inv, shard_size)  # deterministic
    assert json.loads(json.dumps(shards)) == shards
    assert shards[0]["start"] == 0 and shards[-1]["end"] == inv.extra["size"]
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(shards))
    assert sum(s["records"] for s in shards) == 200
    seen = [ids_of(scan_all(p, s, batch_size=7)) for s in shards]
    assert [i for ids in seen for i in ids] == all_ids  # union is everything, once, in order


def test_jsonl_every_byte_boundary(tmp_path: Path) -> None:
    """A boundary at each byte: inside a line, on a newline, on a blank line, at the ends."""
    name, all_ids = jsonl_with_ragged_lines(tmp_path, 12)
    p = provider(tmp_path, "jsonl", name)
    size = (tmp_path / name).stat().st_size
    for cut in range(size + 1):
        left = ids_of(scan_all(p, {"start": 0, "end": cut, "records": 0}))
        right = ids_of(scan_all(p, {"start": cut, "end": size, "records": 0}))
        assert left + right == all_ids, cut


@pytest.mark.parametrize("shard_size", [1, 10, 37, 50, 100, 10**9])
def test_parquet_shards_partition_the_file(tmp_path: Path, shard_size: int) -> None:
    batch = make_records(200, 4)
    p = provider(tmp_path, "parquet", write_source(tmp_path, "parquet", "s.parquet", batch, row_group_size=37))
    inv = p.inventory()
    shards = p.shards(inv, shard_size)
    assert shards == p.shards(inv, shard_size) and json.loads(json.dumps(shards)) == shards
    assert sum(s["records"] for s in shards) == 200
    assert [i for s in shards for i in ids_of(scan_all(p, s, batch_size=16))] == batch.ids


def test_parquet_big_row_group_is_sliced(tmp_path: Path) -> None:
    batch = make_records(500, 4)
    p = provider(tmp_path, "parquet", write_source(tmp_path, "parquet", "big.parquet", batch, row_group_size=500))
    shards = p.shards(p.inventory(), 100)
    assert len(shards) == 5 and all(s["row_groups"] == [0, 1] for s in shards)
    assert [i for s in shards for i in ids_of(scan_all(p, s, batch_size=33))] == batch.ids


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_from_cursor(tmp_path: Path, fmt: str) -> None:
    batch = make_records(230, 4)
    p = provider(tmp_path, fmt, write_source(tmp_path, fmt, f"c.{fmt}", batch))
    for shard in [None, *p.shards(p.inventory(), 60)]:
        full = scan_all(p, shard, batch_size=9)
        expected = ids_of(full)
        for k in range(len(full)):
            cursor = full[k].cursor
            json.dumps(cursor)  # checkpoints are stored as JSON
            rest = ids_of(scan_all(p, shard, cursor=cursor, batch_size=9))
            assert rest == expected[sum(len(b) for b in full[: k + 1]) :]
        assert scan_all(p, shard, cursor=full[-1].cursor) == []


def test_jsonl_cursor_that_is_not_a_line_start(tmp_path: Path) -> None:
    p = provider(tmp_path, "jsonl", write_source(tmp_path, "jsonl", "c.jsonl", make_records(5, 4)))
    with pytest.raises(TerminalError, match="not a line start"):
        scan_all(p, cursor=3)


# ---- target: idempotency, replay, crash windows -----------------------------------------------


def final_records(p: Provider) -> dict[Any, tuple[bytes, dict[str, Any], str | None]]:
    return as_dict(scan_all(p))  # as_dict asserts that no id appears twice


def changed(batch: Batch, tag: str) -> Batch:
    return Batch(
        ids=list(batch.ids),
        vectors=batch.vectors + np.float32(1),
        metadata=[{**m, "tag": tag} for m in batch.metadata],
        texts=[f"{tag} {i}" for i in batch.ids],
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_replayed_and_overlapping_upserts(tmp_path: Path, fmt: str) -> None:
    a = make_records(100, 8)
    b = changed(make_records(100, 8, start=50), "b")  # ids 50..149, 50..99 overlap with a
    target = provider(tmp_path, fmt, f"t.{fmt}")
    target.create_collection(schema_for(a))
    target.upsert(a)
    target.upsert(a)  # the engine replays the unacknowledged batch after a crash
    resumed = provider(tmp_path, fmt, f"t.{fmt}")  # a new process
    resumed.upsert(a)
    resumed.upsert(b)
    resumed.upsert(b.take(range(10, 20)))  # a smaller, later write of some of b's ids
    resumed.finalize()

    got = final_records(provider(tmp_path, fmt, f"t.{fmt}"))
    want = as_dict([a.take(range(50)), b])
    assert got == want
    assert provider(tmp_path, fmt, f"t.{fmt}").count() == 150


@pytest.mark.parametrize("fmt", FORMATS)
def test_later_write_wins_over_replayed_earlier_part(tmp_path: Path, fmt: str) -> None:
    a = make_records(30, 4)
    a2 = changed(a, "second")
    target = provider(tmp_path, fmt, f"t.{fmt}")
    target.create_collection(schema_for(a))
    target.upsert(a)
    target.upsert(a2.take(range(5)))
    target.upsert(a2)  # same id list as `a`: replaces a's part, and is the latest
    target.finalize()
    assert final_records(target) == as_dict([a2])


@pytest.mark.parametrize("fmt", FORMATS)
def test_crash_after_merge_before_cleanup(tmp_path: Path, fmt: str) -> None:
    """SIGKILL after the merged file replaced the old one but before the parts were removed."""
    a, b = make_records(40, 4), changed(make_records(40, 4, start=20), "b")
    target = provider(tmp_path, fmt, f"t.{fmt}")
    target.create_collection(schema_for(a))
    target.upsert(a)
    target.upsert(b)
    parts = tmp_path / f"t.{fmt}.vecmig-parts"
    shutil.copytree(parts, tmp_path / "saved")
    # A killed writer's temporary is never acknowledged and must be ignored.
    (parts / f".junk.{fmt}.123.vecmig-tmp").write_bytes(b"half a batch")
    target.finalize()
    once = final_records(target)
    shutil.copytree(tmp_path / "saved", parts)
    provider(tmp_path, fmt, f"t.{fmt}").finalize()
    assert final_records(target) == once == as_dict([a.take(range(20)), b])
    target.finalize()  # nothing staged: a no-op
    assert final_records(target) == once


COPY_WORKER = r"""
import json, os, sys
from pathlib import Path
from vecmig.providers import CollectionSchema, provider_class
from vecmig.spec import StoreSpec

fmt, root = sys.argv[1], Path(sys.argv[2])
source = provider_class("jsonl")(StoreSpec("jsonl", {"path": "src.jsonl"}, base_dir=root))
target = provider_class(fmt)(StoreSpec(fmt, {"path": "out/t." + fmt}, base_dir=root))
state = root / "checkpoint.json"  # stands in for the state store
ckpt = json.loads(state.read_text()) if state.exists() else {"created": False, "cursor": None}

def commit(**change):
    ckpt.update(change)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(ckpt))
    os.replace(tmp, state)

if not ckpt["created"]:
    target.create_collection(CollectionSchema(8, "cosine", "int", {}, True))
    commit(created=True)
for batch in source.scan(None, ckpt["cursor"], 20):
    target.upsert(batch)  # acknowledged ...
    commit(cursor=batch.cursor)  # ... before the checkpoint
target.finalize()
commit(done=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_sigkill_and_resume_loses_and_doubles_nothing(tmp_path: Path, fmt: str) -> None:
    expected = make_records(8_000, 8)
    write_source(tmp_path, "jsonl", "src.jsonl", expected)
    state = tmp_path / "checkpoint.json"

    def checkpoint() -> str | None:
        return state.read_text() if state.exists() else None

    rng = random.Random(fmt)
    kills = 0
    for _attempt in range(40):
        before = checkpoint()
        child = subprocess.Popen([sys.executable, "-c", COPY_WORKER, fmt, str(tmp_path)])
        if kills < 8:
            deadline = time.monotonic() + 60
            while child.poll() is None and checkpoint() == before and time.monotonic() < deadline:
                time.sleep(0.002)  # wait until this run makes progress, then kill it somewhere
            time.sleep(rng.uniform(0, 0.2))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
        assert child.wait(timeout=120) in (0, -signal.SIGKILL)
        if json.loads(checkpoint() or "{}").get("done"):
            break
    assert kills >= 2, "the copy finished before it could be interrupted: slow the worker down"
    got = final_records(provider(tmp_path, fmt, f"out/t.{fmt}"))
    assert got == as_dict([expected])
    assert not (tmp_path / f"out/t.{fmt}.vecmig-parts").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_upserts_after_finalize_and_delete(tmp_path: Path, fmt: str) -> None:
    a = make_records(50, 4)
    target = provider(tmp_path, fmt, f"t.{fmt}")
    target.create_collection(schema_for(a))
    target.upsert(a)
    target.finalize()

    later = provider(tmp_path, fmt, f"t.{fmt}")  # no create_collection: derives its layout
    update = changed(a.take([1, 2]), "u")
    later.upsert(update)
    later.delete([3, 4, 999])
    later.upsert(changed(a.take([4]), "back"))  # re-inserted after its deletion: it exists again
    later.finalize()
    want = as_dict([a.take([0]), update, a.take(range(5, 50)), changed(a.take([4]), "back")])
    assert final_records(later) == want

    later.delete([0, 4])  # nothing staged: the final file is rewritten at once
    del want[0], want[4]
    assert final_records(later) == want and later.count() == 47


@pytest.mark.parametrize("fmt", FORMATS)
def test_create_truncates_and_drop_removes(tmp_path: Path, fmt: str) -> None:
    a = make_records(10, 4)
    target = provider(tmp_path, fmt, f"d/t.{fmt}")
    assert not target.collection_exists()
    target.create_collection(schema_for(a))
    assert target.collection_exists()
    inv = target.inventory()
    assert (inv.exists, inv.count, inv.dimension) == (True, 0, 4)
    target.upsert(a)
    assert target.inventory().extra["pending_parts"] == 1
    target.create_collection(schema_for(a))  # starts over: staged parts are gone too
    target.finalize()
    assert target.count() == 0
    target.upsert(a)
    target.finalize()
    target.drop_collection()
    assert sorted(os.listdir(tmp_path / "d")) == []
    assert target.inventory().exists is False


def test_parquet_rejects_values_that_do_not_fit(tmp_path: Path) -> None:
    a = make_records(3, 4)
    target = provider(tmp_path, "parquet", "t.parquet")
    target.create_collection(schema_for(a))  # int ids
    with pytest.raises(TerminalError, match="column 'id'"):
        target.upsert(Batch(ids=["x"], vectors=a.vectors[:1], metadata=[{}], texts=[None]))
    with pytest.raises(TerminalError, match="8-dimensional"):
        target.upsert(Batch(ids=[1], vectors=np.zeros((1, 8), np.float32), metadata=[{}], texts=[None]))


# ---- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": 3, "vector": [1, 2, 3', "invalid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"vector": [1, 2, 3]}', "record id 'id' is missing"),
        ('{"id": 1.5, "vector": [1, 2, 3]}', "must be an integer or a string"),
        ('{"id": 3, "metadata": {}}', "has no vector 'vector'"),
        ('{"id": 3, "vector": [1, 2]}', "2-dimensional vector, the file's first record has 3"),
        ('{"id": 3, "vector": [1, "a", 3]}', "finite numbers"),
        ('{"id": 3, "vector": [1, null, 3]}', "finite numbers"),
        ('{"id": 3, "vector": [1, 2, 3], "metadata": [1]}', "must be a JSON object"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    good = [json.dumps({"id": i, "vector": [1.0, 2.0, 3.0]}) for i in range(6)]
    lines = [*good[:2], "", *good[2:4], bad_line, *good[4:]]  # the bad record is on line 6
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    p = provider(tmp_path, "jsonl", "bad.jsonl")
    for shard in [None, {"start": 60, "end": 10**6, "records": 0}]:  # line numbers are absolute
        with pytest.raises(TerminalError) as err:
            scan_all(p, shard)
        assert message in err.value.message
        assert err.value.where == f"{tmp_path / 'bad.jsonl'}:6"
        assert str(tmp_path / "bad.jsonl") + ":6" in err.value.one_line()
        assert err.value.hint


def test_missing_source_file_is_a_clear_error(tmp_path: Path) -> None:
    for fmt in FORMATS:
        with pytest.raises(TerminalError, match="does not exist"):
            scan_all(provider(tmp_path, fmt, f"missing.{fmt}"))


def test_connection_path_is_required(tmp_path: Path) -> None:
    spec = StoreSpec(provider="jsonl", connection={}, base_dir=tmp_path, pointer="/source")
    with pytest.raises(TerminalError, match=r"connection\.path"):
        provider_class("jsonl")(spec)


# ---- fetch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [*FORMATS, "parquet-streamed"])
def test_fetch(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if fmt == "parquet-streamed":  # row groups too big to keep decoded between calls
        monkeypatch.setattr(parquet_provider, "_FETCH_CACHE_BYTES", 0)
        fmt = "parquet"
    batch = make_records(100, 4, str_ids=True)
    p = provider(tmp_path, fmt, write_source(tmp_path, fmt, f"f.{fmt}", batch))
    wanted = [batch.ids[7], batch.ids[70], "missing", 7]
    got = p.fetch(wanted)
    assert sorted(got.ids) == sorted(batch.ids[i] for i in (7, 70))
    assert as_dict([got]) == as_dict([batch.take([7, 70])])
    assert len(p.fetch([])) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_fetch_hash_collisions_and_a_changed_file(tmp_path: Path, fmt: str) -> None:
    batch = make_records(6, 4)
    batch.ids = [-1, -2, 0, 1, 2, 3]  # hash(-1) == hash(-2) in CPython
    target = provider(tmp_path, fmt, f"t.{fmt}")
    target.create_collection(schema_for(batch))
    target.upsert(batch)
    target.finalize()
    assert target.fetch([-1]).ids == [-1]
    assert target.fetch([-2, 3]).ids == [-2, 3]

    update = changed(batch.take([0]), "new")  # the same instance must see the rewritten file
    target.upsert(update)
    target.finalize()
    assert as_dict([target.fetch([-1])]) == as_dict([update])
    target.delete([3])
    assert target.fetch([3]).ids == []


# ---- memory ---------------------------------------------------------------------------------


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(p: Provider, batch_size: int = 1000) -> tuple[int, int]:
    base, peak, n = rss(), 0, 0
    for batch in p.scan(None, None, batch_size):
        n += len(batch)
        peak = max(peak, rss() - base)
    return peak, n


@pytest.mark.slow
def test_scanning_a_200mb_jsonl_keeps_memory_bounded(tmp_path: Path) -> None:
    dim, n = 384, 26_000
    rng = np.random.default_rng(1)
    # orjson writes the file ten times faster than json (the same float64 digits); the scan is under test
    with open(tmp_path / "big.jsonl", "wb") as f:
        for start in range(0, n, 1000):
            vecs = rng.standard_normal((1000, dim)).astype(np.float32).astype(np.float64)
            f.writelines(
                orjson.dumps({"id": start + i, "vector": v, "metadata": {"i": i}}, option=orjson.OPT_SERIALIZE_NUMPY)
                + b"\n" for i, v in enumerate(vecs)
            )
    assert (tmp_path / "big.jsonl").stat().st_size > 190e6
    growth, count = peak_rss_growth(provider(tmp_path, "jsonl", "big.jsonl"))
    assert count == n
    assert growth < 100e6, f"RSS grew by {growth / 1e6:.0f} MB while scanning"


@pytest.mark.slow
def test_scanning_a_200mb_parquet_keeps_memory_bounded(tmp_path: Path) -> None:
    dim, n, chunk = 384, 130_000, 10_000
    rng = np.random.default_rng(2)
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim)), ("metadata", pa.string())])
    with pq.ParquetWriter(tmp_path / "big.parquet", schema, compression="none") as w:
        for start in range(0, n, chunk):
            vecs = rng.standard_normal((chunk, dim)).astype(np.float32)
            w.write_table(
                pa.table(
                    {
                        "id": pa.array(range(start, start + chunk), pa.int64()),
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
                        "metadata": pa.array([json.dumps({"i": i}) for i in range(chunk)]),
                    },
                    schema=schema,
                ),
                row_group_size=chunk,
            )
    assert (tmp_path / "big.parquet").stat().st_size > 190e6
    growth, count = peak_rss_growth(provider(tmp_path, "parquet", "big.parquet"))
    assert count == n
    assert growth < 100e6, f"RSS grew by {growth / 1e6:.0f} MB while scanning"
