"""The native pgvector → pgvector pipe (``PgvectorProvider.native_copy``), real PostgreSQL, no mocks.

What it must keep from the normal scan → upsert loop: the exact values (bit for bit), the
exact pages and cursors of ``scan`` (so a run can resume on either path), idempotent
writes (a replayed page into a fresh target falls back to the staged upsert), and an
acknowledgement only after COMMIT.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.support.data import DOCS_FIELDS, make_docs_table, pg_store
from vecmig.errors import TerminalError, TransientError
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema, Provider
from vecmig.providers.pgvector import PgvectorProvider, pipe
from vecmig.providers.pgvector.codec import PGCOPY_HEADER, PGCOPY_TRAILER
from vecmig.spec import Fields, StoreSpec

Ack = tuple[Any, int, int]


def source(dsn: str, table: str = "docs", **kw: Any) -> PgvectorProvider:
    return PgvectorProvider(pg_store(dsn, table, **kw))


def target(dsn: str, table: str = "docs_v2", **kw: Any) -> PgvectorProvider:
    return PgvectorProvider(pg_store(dsn, table, pointer="/target", **kw))


def create_like_docs(p: PgvectorProvider, dim: int, id_type: str = "int") -> None:
    """The target a plan creates from the docs source (year int4 becomes bigint, etc.)."""
    p.create_collection(CollectionSchema(dimension=dim, metric="cosine", id_type=id_type,
                                         metadata=dict(DOCS_FIELDS), text=True))


def native(tgt: PgvectorProvider, src: Provider, shard: dict[str, Any] | None = None, cursor: Any = None,
           size: int = 100) -> Iterator[Ack]:
    it = tgt.native_copy(src, shard, cursor, size)
    assert it is not None, tgt._native_reason
    return it


def exact_rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """Every docs column as its binary send form (vectors and floats bit for bit), by id."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.SQL(
            "SELECT id, vector_send(embedding), title, lang, year::int8, float8send(score), published, tags, body "
            "FROM {} ORDER BY id").format(sql.Identifier(table))).fetchall()


def column_types(dsn: str, table: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (sql.Identifier(table).as_string(conn),),
        ).fetchall()
    return dict(rows)


def scan_cursors(p: PgvectorProvider, shard: dict[str, Any] | None, cursor: Any, size: int) -> list[tuple[Any, int]]:
    return [(b.cursor, len(b)) for b in p.scan(shard, cursor, size)]


def ids_in(dsn: str, table: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table)))]


def pipe_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vecmig-pipe")]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages here are a few KB: cut them into 2 KB blocks so that every test streams pages
    (a writer starts sending a page while the reader still receives it)."""
    monkeypatch.setattr(pipe, "BLOCK_BYTES", 2048)


# ---- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [2048, 1 << 20], ids=["streamed", "whole-pages"])
@pytest.mark.parametrize("id_type", ["int", "text"])
@pytest.mark.parametrize("fresh", [True, False], ids=["direct", "staged"])
def test_native_copy_is_bit_exact(
    pg_db: str, id_type: str, fresh: bool, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipe, "BLOCK_BYTES", block)
    data = make_docs_table(pg_db, "docs", 700, 16, id_type=id_type, seed=3)
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 16, id_type)
        if fresh:
            tgt.expect_new_records()
        acks = list(native(tgt, src, size=128))
        assert sum(n for _, n, _ in acks) == 700 and all(b > 0 for _, _, b in acks)
        # The cursors are scan's, page for page (same batch size, same order).
        assert [(c, n) for c, n, _ in acks] == scan_cursors(src, None, None, 128)
        assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")
        # Read back through the provider: vectors bit-exact, NULLs absent, text[] intact.
        got = next(tgt.scan(None, None, 10_000))
        order = data.by_id()
        pos = [order[i] for i in got.ids]
        assert np.array_equal(got.vectors.view(np.uint32), data.vectors[pos].view(np.uint32))
        assert got.metadata == [data.metadata[i] for i in pos]
        assert got.texts == [data.texts[i] for i in pos]
    # int4 source column, bigint target column: cast by the source server, values unchanged.
    assert column_types(pg_db, "docs")["year"] == "integer"
    assert column_types(pg_db, "docs_v2")["year"] == "bigint"
    assert not pipe_threads()


def test_native_and_normal_paths_store_the_same_bytes(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute(
            "CREATE TABLE odd (id int4 PRIMARY KEY, embedding vector(3) NOT NULL, n numeric, s smallint, "
            "f real, v varchar(20), ts timestamptz, u uuid, va varchar[], j json, b jsonb, body text)"
        )
        conn.execute(
            "INSERT INTO odd VALUES "
            "(1, '[1,2,3]', 1.5, 7, 0.1, 'x', '2024-01-02 03:04:05+00', '9b2f6a7c-0000-4000-8000-000000000001', "
            "'{a,NULL}', '{\"k\": [1], \"a\": 2}', '{\"z\": true}', 'é'), "
            "(2, '[-0,1e-30,3.4e38]', NULL, NULL, 'NaN', '', NULL, NULL, '{}', NULL, NULL, NULL), "
            "(3, '[0.1,0.2,0.3]', 12345.678, -32768, '-Infinity', 'y', '1999-12-31 23:59:59.999999+00', NULL, "
            "NULL, '[]', '[1, \"two\"]', '')"
        )
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for name, use_native in (("via_normal", False), ("via_native", True)):
        with source(pg_db, "odd", fields=Fields(text="body")) as src, target(pg_db, name) as tgt:
            inv = src.inventory()
            tgt.create_collection(CollectionSchema(dimension=3, metric="cosine", id_type="int",
                                                   metadata=dict(inv.fields), text=True))
            tgt.expect_new_records()
            if use_native:
                assert sum(n for _, n, _ in native(tgt, src, size=2)) == 3
            else:
                for batch in src.scan(None, None, 2):
                    tgt.upsert(batch)
        with psycopg.connect(pg_db) as conn:
            cols = [c for c in column_types(pg_db, name) if c != "id"]
            rows[name] = conn.execute(sql.SQL("SELECT id, {} FROM {} ORDER BY id").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
                sql.Identifier(name))).fetchall()
    assert column_types(pg_db, "via_native") == column_types(pg_db, "via_normal")
    assert rows["via_native"] == rows["via_normal"]


def test_target_column_missing_in_source_is_null(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 50, 4)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs_v2 (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, title text, "
                     "lang text, year bigint, score float8, published boolean, tags text[], extra text, body text)")
        conn.execute("INSERT INTO docs_v2 (id, embedding, extra) VALUES (1, '[0,0,0,1]', 'old')")
    with source(pg_db) as src, target(pg_db) as tgt:
        assert sum(n for _, n, _ in native(tgt, src, size=16)) == 50
    assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")
    with psycopg.connect(pg_db) as conn:
        # What upsert does for a field no record carries: written as NULL, also on update.
        assert conn.execute("SELECT count(*) FROM docs_v2 WHERE extra IS NOT NULL").fetchone() == (0,)


# ---- pages, shards and cursors -------------------------------------------------------------------------


@pytest.mark.parametrize("id_type", ["int", "text"])
def test_shards_partition_exactly_with_scans_cursors(pg_db: str, id_type: str) -> None:
    make_docs_table(pg_db, "docs", 1000, 4, id_type=id_type, start=5)
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 4, id_type)
        tgt.expect_new_records()
        shards = src.shards(src.inventory(), 300)
        assert len(shards) >= 3 and shards[0]["lo"] is None and shards[-1]["hi"] is None
        total = 0
        for shard in shards:
            acks = list(native(tgt, src, shard, None, 64))
            assert [(c, n) for c, n, _ in acks] == scan_cursors(src, shard, None, 64)
            total += sum(n for _, n, _ in acks)
        # Records counted once each: no page repeated across shards (a direct COPY would also
        # have raised on an overlap, and the staged fallback hidden it, hence the count).
        assert total == 1000
    assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")


@pytest.mark.parametrize("id_sql", ["text", "varchar(64)"])
def test_uuid_ids_and_cursor_from_either_decoder(pg_db: str, id_sql: str) -> None:
    # text target: the cursor is read from the last row's bytes; varchar(64): the cast could
    # change the value, so the cursor is queried from the source in the same snapshot.
    make_docs_table(pg_db, "docs", 300, 4, id_type="uuid")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE docs_v2 (id {id_sql} PRIMARY KEY, embedding vector(4) NOT NULL, title text, "
                     "lang text, year bigint, score float8, published boolean, tags text[], body text)")
    with source(pg_db) as src, target(pg_db) as tgt:
        tgt.expect_new_records()
        shard = src.shards(src.inventory(), 100)[1]
        acks = list(native(tgt, src, shard, None, 32))
        assert [(c, n) for c, n, _ in acks] == scan_cursors(src, shard, None, 32)
        assert all(isinstance(c, str) for c, _, _ in acks)
        rest = list(native(tgt, src, None, acks[1][0], 50))
        assert [(c, n) for c, n, _ in rest] == scan_cursors(src, None, acks[1][0], 50)


def test_resume_switches_between_native_and_scan(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 1000, 4, id_type="text")
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 4, "text")
        tgt.expect_new_records()
        moved = 0
        # Normal path for three batches, checkpoint, "crash"...
        scan = src.scan(None, None, 100)
        for _ in range(3):
            batch = next(scan)
            tgt.upsert(batch)
            moved += len(batch)
        cursor = batch.cursor
        scan.close()
        # ... native path resumes from the normal path's cursor for four pages ...
        pipe_it = native(tgt, src, None, cursor, 100)
        for _ in range(4):
            cursor, n, _ = next(pipe_it)
            moved += n
        pipe_it.close()  # type: ignore[attr-defined]
        # ... and the normal path finishes from the native path's cursor.
        for batch in src.scan(None, cursor, 100):
            tgt.upsert(batch)
            moved += len(batch)
        assert moved == 1000
    assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")
    assert not pipe_threads()


# ---- idempotence and acknowledgement ----------------------------------------------------------------


def test_replayed_pages_into_fresh_target_fall_back_to_staged_upsert(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 600, 8, seed=5)
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 8)
        tgt.expect_new_records()
        it = native(tgt, src, None, None, 100)
        for _ in range(3):
            next(it)  # ids 1..300 committed; "killed" before their checkpoints
        it.close()  # type: ignore[attr-defined]
        # The source changes meanwhile: the replay must store the latest values.
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("UPDATE docs SET title = 'changed ' || id, tags = NULL, "
                         "embedding = '[1,1,1,1,1,1,1,1]' WHERE id % 7 = 0 AND id <= 300")
        acks = list(native(tgt, src, None, None, 100))  # from the last checkpoint: none
        assert sum(n for _, n, _ in acks) == 600
    assert ids_in(pg_db, "docs_v2") == list(range(1, 601))  # each id once
    assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")


def test_each_ack_comes_after_commit(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 500, 4)
    with source(pg_db) as src, target(pg_db) as tgt, psycopg.connect(pg_db, autocommit=True) as watcher:
        create_like_docs(tgt, 4)
        tgt.expect_new_records()
        done = 0
        for cursor, n, _ in native(tgt, src, None, None, 64):
            done += n
            # Another session sees everything up to the cursor the moment it is yielded.
            seen = watcher.execute("SELECT count(*) FROM docs_v2 WHERE id <= %s", (cursor,)).fetchone()
            assert seen == (done,)


def _fail_on_insert(dsn: str, table: str, rid: int, action: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {action}; "
                     "RETURN NEW; END $$")
        conn.execute(sql.SQL("CREATE TRIGGER boom BEFORE INSERT ON {} FOR EACH ROW WHEN (NEW.id = {}) "
                             "EXECUTE FUNCTION boom()").format(sql.Identifier(table), sql.Literal(rid)))


def _drop_trigger(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TRIGGER boom ON {}").format(sql.Identifier(table)))


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("RAISE EXCEPTION 'refused by a trigger'", TerminalError),
        # The target's session dies mid-COPY, as when the server or the network drops it.
        ("PERFORM pg_terminate_backend(pg_backend_pid())", TransientError),
    ],
    ids=["write-error", "connection-killed"],
)
# Page 3 goes to an extra writer session, page 4 to the provider's own (writers take pages in turn).
@pytest.mark.parametrize("bad_id", [250, 350], ids=["extra-session", "own-session"])
def test_no_ack_for_a_page_whose_write_failed(pg_db: str, action: str, error: type[Exception], bad_id: int) -> None:
    make_docs_table(pg_db, "docs", 500, 4)
    page_lo = bad_id // 100 * 100 + 1
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 4)
        tgt.expect_new_records()
        _fail_on_insert(pg_db, "docs_v2", bad_id, action)
        acks: list[Ack] = []
        with pytest.raises(error) as exc:
            for ack in native(tgt, src, None, None, 100):
                acks.append(ack)
        # Every page before the failed one is acknowledged, that one and later ones are not.
        assert [c for c, _, _ in acks] == list(range(100, page_lo, 100))
        if error is TerminalError:
            assert f"record {bad_id}" in str(exc.value) and "refused by a trigger" in str(exc.value)
        present = set(ids_in(pg_db, "docs_v2"))
        assert set(range(1, page_lo)) <= present and not present & set(range(page_lo, page_lo + 100))
        assert not pipe_threads()
        # The engine retries from the last checkpoint (here: the last ack), on the same provider.
        _drop_trigger(pg_db, "docs_v2")
        assert sum(n for _, n, _ in native(tgt, src, None, acks[-1][0], 100)) == 500 - (page_lo - 1)
        assert tgt.count() == 500  # the provider's own session works again after a kill
    assert exact_rows(pg_db, "docs_v2") == exact_rows(pg_db, "docs")


def test_a_page_that_fails_to_read_is_not_committed(pg_db: str) -> None:
    # The source fails half-way through page 3 (201..300), after the writer has started to
    # send the page: its COPY must be aborted, not ended and committed.
    make_docs_table(pg_db, "docs", 500, 4)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET year = 100000 WHERE id = 250")  # too large for the smallint below
        conn.execute("CREATE TABLE docs_v2 (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, title text, "
                     "lang text, year smallint, score float8, published boolean, tags text[], body text)")
    # Read in id order through the primary key, as on a table of real size: a small one gets a
    # sort, which casts every remaining row before the first comes out (failing page 2 early).
    ordered = pg_db + ("&" if "?" in pg_db else "?") + "options=" + quote("-c enable_seqscan=off")
    with source(ordered) as src, target(pg_db) as tgt:
        tgt.expect_new_records()
        acks: list[Ack] = []
        with pytest.raises(TerminalError, match="smallint out of range"):
            for ack in native(tgt, src, None, None, 100):
                acks.append(ack)
        assert [c for c, _, _ in acks] == [100, 200]
    assert ids_in(pg_db, "docs_v2") == list(range(1, 201))
    assert not pipe_threads()


def test_source_errors_are_classified_without_secrets(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 2000, 4)
    secret_dsn = pg_db + ("&" if "?" in pg_db else "?") + "password=hunter2-secret"
    with source(secret_dsn) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 4)
        it = native(tgt, src, None, None, 100)
        next(it)  # the reader runs a few pages ahead, far from the end of 20
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("ALTER TABLE docs RENAME TO docs_gone")
        with pytest.raises(TerminalError) as exc:
            list(it)
        assert "docs" in str(exc.value) and "hunter2" not in str(exc.value)
    assert not pipe_threads()


def test_closing_the_providers_stops_the_pipe(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 2000, 8)
    src, tgt = source(pg_db), target(pg_db)
    create_like_docs(tgt, 8)
    it = native(tgt, src, None, None, 100)
    next(it)
    assert pipe_threads()  # reader and writers are running ahead
    tgt.close()  # e.g. the engine's finally, while a traceback still holds the generator
    assert not pipe_threads()
    # Iterating on must not look like the end of the shard.
    with pytest.raises(TransientError, match="stopped before the end"):
        next(it)
    src.close()
    with source(pg_db) as again:
        assert again.count() == 2000  # the source's session was left usable and closed cleanly


# ---- when the pipe does not apply ----------------------------------------------------------------


def _target_table(dsn: str, ddl: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)


@pytest.mark.parametrize(
    ("setup", "target_kw", "reason"),
    [
        ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, meta jsonb, body text)",
         {"fields": Fields(text="body", metadata="meta")}, "json document"),
        ("CREATE VIEW t AS SELECT * FROM docs", {}, "view"),
        ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, title text, lang text, "
         "year bigint, score float8, published boolean, body text)", {}, "tags"),
        ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, title text, lang text, "
         "year text, score float8, published boolean, tags text[], body text)", {}, "year"),
        ("CREATE TABLE t (id bigint, embedding vector(4) NOT NULL, title text, lang text, "
         "year bigint, score float8, published boolean, tags text[], body text)", {}, "unique index"),
        ("CREATE DOMAIN short_text AS text; CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, "
         "title short_text, lang text, year bigint, score float8, published boolean, tags text[], body text)",
         {}, "non-builtin"),
        ("CREATE TABLE t (id text PRIMARY KEY, embedding vector(4) NOT NULL, title text, lang text, "
         "year bigint, score float8, published boolean, tags text[], body text)", {}, "id types"),
        ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(5) NOT NULL, title text, lang text, "
         "year bigint, score float8, published boolean, tags text[], body text)", {}, "dimensions"),
        ("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, title text, lang text, "
         "year bigint, score float8, published boolean, tags text[], body int)", {}, "text column"),
    ],
    ids=["json-metadata", "view", "source-column-missing", "incompatible-type", "no-unique-id",
         "domain-type", "id-type", "dimension", "text-column-type"],
)
def test_not_applicable_returns_none(pg_db: str, setup: str, target_kw: dict[str, Any], reason: str) -> None:
    make_docs_table(pg_db, "docs", 10, 4)
    _target_table(pg_db, setup)
    with source(pg_db) as src, target(pg_db, "t", **target_kw) as tgt:
        assert tgt.native_copy(src, None, None, 100) is None
        assert reason in (tgt._native_reason or "")
    assert not pipe_threads()


def test_not_applicable_for_other_stores_json_sources_and_encodings(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 10, 4)
    class RowsOnly(provider_class("jsonl")):  # type: ignore[misc,valid-type]
        """A store that offers neither pgvector pages nor columns (scan only)."""

        def scan_columns(self, shard: Any, cursor: Any, batch_size: int) -> None:
            return None

    rows_only = RowsOnly(StoreSpec(provider="jsonl", connection={"path": str(tmp_path / "x.jsonl")},
                                   pointer="/source", base_dir=tmp_path))
    with target(pg_db) as tgt:
        create_like_docs(tgt, 4)
        assert tgt.native_copy(rows_only, None, None, 100) is None
        assert "neither pgvector nor columnar" in (tgt._native_reason or "")
        assert Provider.native_copy(tgt, tgt, None, None, 1) is None  # the interface's default
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE j (id bigint PRIMARY KEY, embedding vector(4) NOT NULL, meta jsonb)")
    with source(pg_db, "j", fields=Fields(metadata="meta")) as src, target(pg_db) as tgt:
        assert tgt.native_copy(src, None, None, 100) is None
    # Binary COPY carries text in each session's client encoding: they must agree.
    latin = pg_db + ("&" if "?" in pg_db else "?") + "client_encoding=LATIN1"
    with source(pg_db) as src, target(latin) as tgt:
        assert tgt.native_copy(src, None, None, 100) is None and "encoding" in (tgt._native_reason or "")
    # A source whose ids are not unique: the normal path de-duplicates, this one would not.
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE docs DROP CONSTRAINT docs_pkey")
    with source(pg_db) as src, target(pg_db) as tgt:
        assert tgt.native_copy(src, None, None, 100) is None and "unique" in (tgt._native_reason or "")


def test_empty_source_and_empty_shard(pg_db: str) -> None:
    make_docs_table(pg_db, "docs", 0, 4)
    with source(pg_db) as src, target(pg_db) as tgt:
        create_like_docs(tgt, 4)
        tgt.expect_new_records()
        assert list(native(tgt, src, None, None, 10)) == []
        assert list(native(tgt, src, {"lo": 100, "hi": 200, "records": 0}, None, 10)) == []
    assert not pipe_threads()


# ---- framing (pure) ----------------------------------------------------------------------------------


def _row(*fields: bytes | None) -> bytes:
    out = len(fields).to_bytes(2, "big")
    for f in fields:
        out += b"\xff\xff\xff\xff" if f is None else len(f).to_bytes(4, "big") + f
    return out


def test_frame_counts_rows_and_reads_the_last_id() -> None:
    rows = [_row((i).to_bytes(8, "big", signed=True), b"x" * i, None) for i in (1, 2, 300)]
    chunks = [PGCOPY_HEADER + rows[0], rows[1], rows[2], PGCOPY_TRAILER]
    f = pipe.frame(chunks, 3, 0)
    assert f.records == 3 and pipe.decode_id("int", f.last_id or b"", "utf-8") == 300
    # One row only: it travels with the header.
    f1 = pipe.frame([PGCOPY_HEADER + _row(b"doc-\xc3\xa9", b"", None), PGCOPY_TRAILER], 3, 0)
    assert f1.records == 1 and pipe.decode_id("text", f1.last_id or b"", "utf-8") == "doc-é"
    # A header sent on its own would still be understood.
    assert pipe.frame([PGCOPY_HEADER, rows[0], PGCOPY_TRAILER], 3, 0).records == 1
    assert pipe.frame([PGCOPY_HEADER + PGCOPY_TRAILER], 3, 0) == pipe.Frame(0, None)
    payload = b"".join(chunks)
    assert pipe.field_of_row(payload, 2, 1) == b"xx" and pipe.field_of_row(payload, 3, 2) is None


@pytest.mark.parametrize(
    "chunks",
    [
        [b"not a copy stream", PGCOPY_TRAILER],
        [PGCOPY_HEADER + _row(b"\x00" * 8, b"a"), _row(b"\x00" * 8, b"b") + PGCOPY_TRAILER],  # trailer merged
        [PGCOPY_HEADER + _row(b"\x00" * 8, b"a"), _row(b"\x00" * 8, b"b") + _row(b"\x00" * 8, b"c"),
         PGCOPY_TRAILER],  # two rows in one message
        [PGCOPY_HEADER + _row(b"\x00" * 8), PGCOPY_TRAILER],  # wrong field count
        [PGCOPY_HEADER + _row(None, b"a"), PGCOPY_TRAILER],  # NULL id
    ],
    ids=["no-header", "merged-trailer", "two-rows-per-message", "field-count", "null-id"],
)
def test_frame_refuses_unexpected_streams(chunks: list[bytes]) -> None:
    with pytest.raises(pipe.FramingError):
        pipe.frame(chunks, 2, 0)
