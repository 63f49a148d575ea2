"""File → pgvector through column batches (``scan_columns`` + ``columnar.encode``), real PostgreSQL.

The columnar path must be indistinguishable from the normal scan → upsert loop in what it
stores: the same rows bit for bit, the same batches and cursors (a run may resume on either
path), idempotent replays, and the same refusals naming the same record. It is checked here
against that loop, on JSONL and on Parquet with typed columns and with a JSON metadata column.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.data import DOCS_FIELDS, make_metadata, make_vectors, pg_store
from tests.test_pgvector_pipe import exact_rows
from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema, Provider
from vecmig.providers.files.jsonl import JsonlProvider
from vecmig.providers.files.parquet import ParquetProvider
from vecmig.providers.pgvector import PgvectorProvider
from vecmig.providers.pgvector import columnar as C
from vecmig.providers.pgvector.codec import CopyColumn, build_copy
from vecmig.spec import Fields, StoreSpec

N, DIM = 700, 16
META = ("title", "lang", "year", "score", "published", "tags")


# ---- the encoder alone --------------------------------------------------------------------------


def _random_columns(rng: random.Random, n: int) -> dict[str, tuple[str, Any]]:
    def text() -> str | None:
        r = rng.random()
        if r < 0.1:
            return None
        return "" if r < 0.15 else "".join(rng.choice("abcé漢\n\"\\") for _ in range(rng.randint(0, 30)))

    def strings() -> list[str | None] | None:
        r = rng.random()
        if r < 0.1:
            return None
        if r < 0.2:
            return []
        return [None if rng.random() < 0.1 else (text() or "x") for _ in range(rng.randint(1, 5))]

    return {
        "id": ("int8", list(range(n))),
        "v": ("vector", np.random.default_rng(rng.randint(0, 99)).standard_normal((n, 7)).astype(np.float32)),
        "t": ("text", [text() for _ in range(n)]),
        "i": ("int8", [None if rng.random() < 0.2 else rng.randint(-(2**63), 2**63 - 1) for _ in range(n)]),
        "i2": ("int8", [rng.randint(-5, 5) for _ in range(n)]),
        "f": ("float8", [None if rng.random() < 0.2 else rng.random() for _ in range(n)]),
        "b": ("bool", [None if rng.random() < 0.2 else rng.random() < 0.5 for _ in range(n)]),
        "b2": ("bool", [rng.random() < 0.5 for _ in range(n)]),
        "l": ("text[]", [strings() for _ in range(n)]),
        "nul": ("text", [None] * n),
        "empty": ("text[]", [[] for _ in range(n)]),
    }


@pytest.mark.parametrize("seed", range(12))
def test_encode_matches_the_careful_encoder_byte_for_byte(seed: int) -> None:
    """Same column order, same bytes as ``codec.build_copy`` (itself checked against the server)."""
    rng = random.Random(seed)
    n = rng.randint(1, 400)
    cols = _random_columns(rng, n)
    fields = []
    for name, (wire, values) in cols.items():
        if wire == "vector":
            fields.append(C.Field(name, wire, values))
            continue
        # Arrow slices carry an offset into shared buffers: the encoder must honour it.
        arr = C.from_python(wire, values) if seed % 2 else C.from_python(wire, values[:3] + values).slice(3)
        assert arr is not None, name
        fields.append(C.Field(name, wire, arr))  # type: ignore[arg-type]
    order, payload = C.encode(fields, n)
    want_order, want = build_copy([CopyColumn(k, w, v) for k, (w, v) in cols.items()], n)
    assert order == want_order
    assert payload == want


def test_python_values_of_another_type_are_left_to_the_careful_encoder() -> None:
    assert C.from_python("int8", [1, True]) is None  # a bool is not an int
    assert C.from_python("int8", [1, 2.0]) is None  # coerced (or refused) by the careful path
    assert C.from_python("int8", [1, 2**70]) is None  # beyond int8: the careful path names it
    assert C.from_python("text", ["a", 1]) is None
    assert C.from_python("text[]", [["a"], ("b",)]) is None
    assert C.from_python("text[]", [["a", 1]]) is None
    assert C.from_python("jsonb", [{"a": 1}]) is None
    assert C.from_python("float8", [1, 2.5, None]).to_pylist() == [1.0, 2.5, None]  # type: ignore[union-attr]
    assert C.arrow_for("int8", pa.array(["1"])) is None
    assert C.arrow_for("int8", pa.array([2**64 - 1], type=pa.uint64())) is None
    assert C.arrow_for("float8", pa.array([3], type=pa.int32())).to_pylist() == [3.0]  # type: ignore[union-attr]


# ---- files -------------------------------------------------------------------------------------


def _records(n: int = N, seed: int = 3) -> list[dict[str, Any]]:
    vectors = make_vectors(n, DIM, seed)
    metadata, texts = make_metadata(n, seed)
    order = np.random.default_rng(seed).permutation(n)  # file order is not id order
    out = []
    for i in order:
        rec: dict[str, Any] = {"id": int(i) + 1, "vector": [float(x) for x in vectors[i]], "metadata": metadata[i]}
        if texts[i] is not None:
            rec["text"] = texts[i]
        out.append(rec)
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def write_parquet(path: Path, records: list[dict[str, Any]], typed: bool) -> Path:
    cols: dict[str, pa.Array] = {
        "id": pa.array([r["id"] for r in records], pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(np.array([r["vector"] for r in records], dtype=np.float32).reshape(-1)), DIM),
        "text": pa.array([r.get("text") for r in records], pa.string()),
    }
    if typed:
        types = {"title": pa.string(), "lang": pa.string(), "year": pa.int32(), "score": pa.float64(),
                 "published": pa.bool_(), "tags": pa.list_(pa.string())}
        for name, t in types.items():
            cols[name] = pa.array([r["metadata"].get(name) for r in records], t)
    else:
        cols["metadata"] = pa.array([json.dumps(r["metadata"]) for r in records], pa.string())
    # Small row groups: batches straddle them, as they do in real files.
    pq.write_table(pa.table(cols), path, row_group_size=230)
    return path


def file_source(kind: str, path: Path) -> Provider:
    store = StoreSpec(provider=kind, connection={"path": str(path)}, collection=None, fields=Fields(),
                      pointer="/source")
    return JsonlProvider(store) if kind == "jsonl" else ParquetProvider(store)


def pg_target(dsn: str, table: str) -> PgvectorProvider:
    p = PgvectorProvider(pg_store(dsn, table, pointer="/target"))
    p.create_collection(CollectionSchema(dimension=DIM, metric="cosine", id_type="int",
                                         metadata=dict(DOCS_FIELDS), text=True))
    return p


def columnar_copy(tgt: PgvectorProvider, src: Provider, shard: dict[str, Any] | None = None,
                  cursor: Any = None, size: int = 100) -> list[tuple[Any, int, int]]:
    it = tgt.native_copy(src, shard, cursor, size)
    assert it is not None, tgt._native_reason
    return list(it)


def normal_copy(tgt: PgvectorProvider, src: Provider, size: int = 100) -> list[tuple[Any, int]]:
    acks = []
    for batch in src.scan(None, None, size):
        tgt.upsert(batch)
        acks.append((batch.cursor, len(batch)))
    return acks


@pytest.fixture(params=["jsonl", "parquet-typed", "parquet-json"])
def source_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    records = _records()
    if request.param == "jsonl":
        return "jsonl", write_jsonl(tmp_path / "in.jsonl", records)
    return "parquet", write_parquet(tmp_path / "in.parquet", records, typed=request.param == "parquet-typed")


def test_same_rows_batches_and_cursors_as_the_normal_path(pg_db: str, source_file: tuple[str, Path]) -> None:
    kind, path = source_file
    with pg_target(pg_db, "via_columns") as a, pg_target(pg_db, "via_rows") as b:
        a.expect_new_records()
        acks = columnar_copy(a, file_source(kind, path), size=97)
        rows_acks = normal_copy(b, file_source(kind, path), size=97)
    assert [(c, n) for c, n, _ in acks] == rows_acks
    assert sum(n for _, n, _ in acks) == N
    assert all(nbytes > 0 for _, _, nbytes in acks)
    got, want = exact_rows(pg_db, "via_columns"), exact_rows(pg_db, "via_rows")
    assert len(got) == N
    assert got == want
    # Spot-check against the file itself, not only against the other path.
    first = _records()[0]
    row = next(r for r in got if r[0] == first["id"])
    assert row[2] == first["metadata"]["title"]
    assert np.frombuffer(bytes(row[1])[4:], dtype=">f4").astype(np.float32).tolist() == \
        np.array(first["vector"], dtype=np.float32).tolist()


def test_resume_from_a_cursor_and_replay_are_idempotent(pg_db: str, source_file: tuple[str, Path]) -> None:
    kind, path = source_file
    with pg_target(pg_db, "resumed") as tgt:
        tgt.expect_new_records()
        src = file_source(kind, path)
        shards = src.shards(src.inventory(), 300)
        assert len(shards) >= 2
        for shard in shards:
            acks = columnar_copy(tgt, src, shard, None, 50)
            # Replay from the middle of the shard: the direct COPY meets the key, the page is
            # staged and upserted instead; nothing doubles, nothing is lost.
            mid = acks[len(acks) // 2 - 1][0] if len(acks) > 1 else None
            columnar_copy(tgt, src, shard, mid, 50)
    with pg_target(pg_db, "reference") as ref:
        normal_copy(ref, file_source(kind, path))
    assert exact_rows(pg_db, "resumed") == exact_rows(pg_db, "reference")


def test_values_of_another_type_take_the_careful_path(pg_db: str, tmp_path: Path) -> None:
    """A JSONL year written as 2001.0 is coerced to 2001 (as the normal path does), and a
    repeated id in one batch keeps its last occurrence."""
    records = _records(60)
    records[5]["metadata"]["year"] = 2001.0
    dup = dict(records[7], metadata={**records[7]["metadata"], "title": "second"})
    records.insert(9, dup)
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    with pg_target(pg_db, "mixed_a") as a, pg_target(pg_db, "mixed_b") as b:
        a.expect_new_records()
        columnar_copy(a, file_source("jsonl", path))
        normal_copy(b, file_source("jsonl", path))
    got = exact_rows(pg_db, "mixed_a")
    assert got == exact_rows(pg_db, "mixed_b")
    by_id = {r[0]: r for r in got}
    assert by_id[records[5]["id"]][4] == 2001
    assert by_id[dup["id"]][2] == "second"
    assert len(got) == 60


def test_a_repeated_id_keeps_its_last_occurrence(pg_db: str, tmp_path: Path) -> None:
    records = _records(30)
    records.insert(4, dict(records[2], metadata={**records[2]["metadata"], "title": "later"}))
    path = write_jsonl(tmp_path / "dup.jsonl", records)
    with pg_target(pg_db, "dup") as tgt:
        tgt.expect_new_records()
        columnar_copy(tgt, file_source("jsonl", path))
    got = {r[0]: r for r in exact_rows(pg_db, "dup")}
    assert len(got) == 30
    assert got[records[2]["id"]][2] == "later"


@pytest.mark.parametrize(("change", "message", "names_record"), [
    (lambda r: r["metadata"].update(year=True), "metadata field 'year' is a boolean (True), the column holds integers",
     True),
    (lambda r: r["metadata"].update(colour="red"), "metadata field(s) colour have no column", False),
    (lambda r: r.update(sparse={"indices": [1], "values": [0.5]}), "has sparse values", True),
])
def test_refusals_as_the_normal_path_words_them(pg_db: str, tmp_path: Path, change: Any, message: str,
                                                 names_record: bool) -> None:
    records = _records(40)
    change(records[17])
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pg_target(pg_db, "refused") as tgt:
        tgt.expect_new_records()
        with pytest.raises(TerminalError) as exc:
            columnar_copy(tgt, file_source("jsonl", path), size=10)
    assert message in str(exc.value)
    if names_record:
        assert f"record {records[17]['id']!r}" in str(exc.value)
    # Batches before the refused one are acknowledged, nothing of it or after it is stored.
    with psycopg.connect(pg_db) as conn:
        stored = conn.execute("SELECT count(*) FROM refused").fetchone()[0]  # type: ignore[index]
    assert stored == 10


@pytest.mark.parametrize("direct", [True, False])
def test_server_refusal_names_the_record(pg_db: str, tmp_path: Path, direct: bool) -> None:
    """A value the table's CHECK refuses: PostgreSQL stops the COPY at that line (direct into
    the table) or the staged INSERT (then no line is known), and the error says so."""
    records = _records(40)
    records[23]["metadata"]["year"] = 5000
    path = write_jsonl(tmp_path / "late.jsonl", records)
    with pg_target(pg_db, "checked") as tgt:
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("ALTER TABLE checked ADD CONSTRAINT year_ok CHECK (year IS NULL OR year < 3000)")
        if direct:
            tgt.expect_new_records()
        with pytest.raises(TerminalError) as exc:
            columnar_copy(tgt, file_source("jsonl", path), size=10)
    assert "year_ok" in str(exc.value)
    if direct:
        assert f"record {records[23]['id']!r}" in str(exc.value)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM checked").fetchone()[0] == 20  # type: ignore[index]
