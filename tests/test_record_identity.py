"""Record identity (issue 9): a repeated id is named at plan and refused before a record is
written; one id type per migration; ids compared the same way in every store.

Every test runs the real CLI against real files and a real PostgreSQL + pgvector.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.cli import count, vecmig

DIM = 4


def vec(i: int) -> list[float]:
    return [1.0, float(i % 97) + 0.5, -0.25, float(i % 7)]


def write_jsonl(path: Path, ids: list[Any], *, tweak: dict[int, float] | None = None) -> None:
    """One record per id; ``tweak`` changes the vector of the record at that index."""
    with open(path, "w") as f:
        for i, rid in enumerate(ids):
            v = vec(i if rid not in ids[:i] else ids.index(rid))  # a repeat is identical unless tweaked
            if tweak and i in tweak:
                v = [*v[:-1], tweak[i]]
            f.write(json.dumps({"id": rid, "vector": v, "metadata": {"n": i}}) + "\n")


def spec(tmp: Path, source: str, target: str, *, extra: str = "", shard: int = 1000) -> Path:
    p = tmp / "spec.yaml"
    p.write_text(textwrap.dedent(f"""\
        version: 1
        name: ids
        source: {source}
        target: {target}
        strategy: {{type: big-bang, batch_size: 100, shard_size: {shard}}}
        validate: {{completeness: {{checksums: true}}}}
        """) + extra)
    return p


def pg_target(table: str = "docs_v2") -> str:
    return ('{provider: pgvector, connection: {dsn: "${env:DSN}"}, collection: ' + table
            + ", fields: {id: id, vector: embedding, metadata: meta}}")


def one_line(r: Any) -> str:
    return " ".join((r.stdout + r.stderr).split())


def table_exists(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]  # type: ignore[index]


# ---- repeated ids -------------------------------------------------------------------------------


def test_identical_repeat_is_named_at_plan_and_refused_at_apply(pg_db: str, tmp_path: Path) -> None:
    """Was: exit 0 with one record fewer in the target than in the source."""
    ids = list(range(400))
    ids[301] = 5  # line 302 repeats line 6 byte for byte (same vector, metadata differs only by "n")
    write_jsonl(tmp_path / "src.jsonl", ids)
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target())
    env = {"DSN": pg_db}
    src = tmp_path / "src.jsonl"

    r = vecmig("plan", str(s), env=env)
    assert r.returncode == 1, one_line(r)
    assert "VM107" in r.stdout + r.stderr
    assert f"id 5 appears twice ({src}:6 and :302)" in one_line(r)

    r = vecmig("apply", str(s), "--auto-approve", env=env)
    assert r.returncode == 1, one_line(r)
    assert f"id 5 appears twice ({src}:6 and :302)" in one_line(r)
    assert not table_exists(pg_db, "docs_v2")

    # The policy can silence the plan's finding, never the apply's check: nothing is written.
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target(),
             extra="policy: {ignore: [VM107]}\n")
    r = vecmig("apply", str(s), "--auto-approve", env=env)
    assert r.returncode == 1, one_line(r)
    assert f"id 5 appears twice ({src}:6 and :302)" in one_line(r) and "nothing was written" in one_line(r)
    assert not table_exists(pg_db, "docs_v2")


def test_byte_identical_repeat_beyond_the_sample_and_across_shards(tmp_path: Path) -> None:
    """A repeat the plan's sample cannot see (line 3302, another shard) still stops the apply."""
    ids = list(range(3500))
    ids[3301] = 5
    with open(tmp_path / "src.jsonl", "w") as f:
        for rid in ids:
            f.write(json.dumps({"id": rid, "vector": vec(rid)}) + "\n")  # line 3302 == line 6, byte for byte
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("plan", str(s), "--json")
    assert r.returncode in (0, 2), one_line(r)
    plan = json.loads(r.stdout)
    assert sum(a["kind"] == "copy_shard" for a in plan["actions"]) > 1
    assert plan["actions"][0]["kind"] == "validate_ids"
    r = vecmig("apply", str(s), "--auto-approve")
    assert r.returncode == 1, one_line(r)
    assert f"id 5 appears twice ({tmp_path / 'src.jsonl'}:6 and :3302)" in one_line(r)
    assert not (tmp_path / "out.jsonl").exists()


def test_differing_repeats_in_parquet_name_rows(tmp_path: Path) -> None:
    """Was: "completeness check failed: ... 1 different" without saying why."""
    n = 2600
    ids = list(range(n))
    ids[2500] = 3
    vectors = pa.array([vec(i + 1000) for i in range(n)], type=pa.list_(pa.float32(), DIM))
    table = pa.table({"id": pa.array(ids, pa.int64()), "vector": vectors})
    pq.write_table(table, tmp_path / "src.parquet", row_group_size=500)
    s = spec(tmp_path, "{provider: parquet, connection: {path: src.parquet}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("apply", str(s), "--auto-approve")
    assert r.returncode == 1, one_line(r)
    assert f"id 3 appears twice ({tmp_path / 'src.parquet'} row 3 and row 2500)" in one_line(r)
    assert "different" not in one_line(r)
    assert not (tmp_path / "out.jsonl").exists()


def test_pgvector_source_without_unique_id(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE docs (id bigint, embedding vector(4), meta jsonb)")
        for i in range(300):
            conn.execute("INSERT INTO docs VALUES (%s, %s, '{}')", (i, str(vec(i))))
        conn.execute("INSERT INTO docs VALUES (7, %s, '{}')", (str(vec(1)),))
    s = spec(tmp_path, '{provider: pgvector, connection: {dsn: "${env:DSN}"}, collection: docs, '
                       'fields: {id: id, vector: embedding, metadata: meta}}', pg_target())
    env = {"DSN": pg_db}
    r = vecmig("plan", str(s), env=env)
    assert r.returncode == 1 and "VM107" in r.stdout + r.stderr, one_line(r)
    assert "id 7 appears twice" in one_line(r) and "no primary key or unique index on 'id'" in one_line(r)
    r = vecmig("apply", str(s), "--auto-approve", env=env)
    assert r.returncode == 1 and "id 7 appears twice (docs ctid" in one_line(r), one_line(r)
    assert not table_exists(pg_db, "docs_v2")


# ---- one id type ------------------------------------------------------------------------------


def test_mixed_int_and_string_ids_are_refused_naming_both(pg_db: str, tmp_path: Path) -> None:
    """Was: every row written, then validation reported them all missing; 5 and "5" merged."""
    ids: list[Any] = list(range(10))
    ids[7] = "5"
    write_jsonl(tmp_path / "src.jsonl", ids)
    src = tmp_path / "src.jsonl"
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target())
    r = vecmig("plan", str(s), env={"DSN": pg_db})
    assert r.returncode == 1 and "VM108" in r.stdout + r.stderr, one_line(r)
    assert f"id 0 ({src}:1) is an integer, id '5' ({src}:8) is a string" in one_line(r)
    r = vecmig("apply", str(s), "--auto-approve", env={"DSN": pg_db})
    assert r.returncode == 1 and f"id '5' ({src}:8) is a string" in one_line(r), one_line(r)
    assert not table_exists(pg_db, "docs_v2")


@pytest.mark.parametrize("target", ["parquet", "jsonl"])
def test_mixed_ids_beyond_the_sample_refused_before_writing(tmp_path: Path, target: str) -> None:
    """Was (parquet): a raw Arrow type error halfway through the copy."""
    ids: list[Any] = [f"doc-{i}" for i in range(1500)]
    ids[1400] = 1400
    write_jsonl(tmp_path / "src.jsonl", ids)
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}",
             f"{{provider: {target}, connection: {{path: out.{target}}}}}")
    r = vecmig("apply", str(s), "--auto-approve")
    assert r.returncode == 1, one_line(r)
    assert "mixes integer and string ids" in one_line(r) and f"({tmp_path / 'src.jsonl'}:1401)" in one_line(r)
    assert "Expected bytes" not in one_line(r)
    assert not (tmp_path / f"out.{target}").exists()


def make_table(dsn: str, table: str, id_sql: str, ids: list[Any]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE TABLE {table} (id {id_sql} PRIMARY KEY, embedding vector(4) NOT NULL, meta jsonb)")
        for rid in ids:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s, '{{}}')", (rid, str(vec(0))))


def test_int_ids_into_an_existing_text_id_table_validate(pg_db: str, tmp_path: Path) -> None:
    """Was: every row written as "5", then validation reported every record missing."""
    make_table(pg_db, "docs_v2", "text", ["1", "2"])
    write_jsonl(tmp_path / "src.jsonl", [-3, 0, 1, 2, 5, 2**62])
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target())
    r = vecmig("apply", str(s), "--auto-approve", "--allow-destructive", env={"DSN": pg_db})
    assert r.returncode == 0, one_line(r)
    with psycopg.connect(pg_db) as conn:
        got = sorted(x[0] for x in conn.execute("SELECT id FROM docs_v2"))
    assert got == sorted(["-3", "0", "1", "2", "5", str(2**62)])


def test_text_ids_into_an_integer_id_table_never_merge(pg_db: str, tmp_path: Path) -> None:
    """Was: "05" and "5" both became 5 (one row), then validation said "missing"."""
    make_table(pg_db, "docs_v2", "bigint", [])
    write_jsonl(tmp_path / "src.jsonl", ["5", "7", "05"])
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target())
    r = vecmig("apply", str(s), "--auto-approve", env={"DSN": pg_db})
    assert r.returncode == 1, one_line(r)
    assert "record id '05' cannot be stored in integer column 'id'" in one_line(r)
    assert "internal error" not in one_line(r).lower()
    # Exactly the decimal text of an integer is that integer: "5" and "7" go in and validate.
    write_jsonl(tmp_path / "src.jsonl", ["5", "7", "-12"])
    r = vecmig("apply", str(s), "--auto-approve", env={"DSN": pg_db})
    assert r.returncode == 0, one_line(r)
    assert count(pg_db, "docs_v2") == 3


@pytest.mark.parametrize("line, why", [
    ('{"id": 5.0, "vector": [1, 2, 3, 4]}', "must be an integer or a string, not float 5.0"),
    ('{"id": true, "vector": [1, 2, 3, 4]}', "must be an integer or a string, not bool True"),
    ('{"id": "", "vector": [1, 2, 3, 4]}', "is an empty string"),
])
def test_ids_that_are_no_ids_are_named_at_plan(tmp_path: Path, line: str, why: str) -> None:
    (tmp_path / "src.jsonl").write_text('{"id": 1, "vector": [1, 2, 3, 4]}\n' + line + "\n")
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("plan", str(s))
    assert r.returncode == 1 and why in one_line(r) and "src.jsonl:2" in one_line(r), one_line(r)


def test_empty_string_id_in_parquet_is_named(tmp_path: Path) -> None:
    """Was: accepted from Parquet although a JSONL source refuses it."""
    table = pa.table({"id": ["a", "", "c"], "vector": pa.array([vec(i) for i in range(3)],
                                                             type=pa.list_(pa.float32(), DIM))})
    pq.write_table(table, tmp_path / "src.parquet")
    s = spec(tmp_path, "{provider: parquet, connection: {path: src.parquet}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("plan", str(s))
    assert r.returncode == 1 and "VM109" in r.stdout + r.stderr, one_line(r)
    assert f"id is an empty string ({tmp_path / 'src.parquet'} row 1)" in one_line(r)


def test_pgvector_float_id_column_is_refused(pg_db: str, tmp_path: Path) -> None:
    """Was: ids read as floats (5.0), stored as "5.0" in a text target."""
    make_table(pg_db, "docs", "double precision", [5.0, 6.5])
    s = spec(tmp_path, '{provider: pgvector, connection: {dsn: "${env:DSN}"}, collection: docs, '
                       'fields: {id: id, vector: embedding, metadata: meta}}',
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("plan", str(s), env={"DSN": pg_db})
    assert r.returncode == 1 and "id column 'id' of table 'docs' is double precision" in one_line(r), one_line(r)


def test_long_and_negative_ids_round_trip_into_pgvector(pg_db: str, tmp_path: Path) -> None:
    long_id = "x" * 2000  # well within a text primary key's btree limit
    write_jsonl(tmp_path / "src.jsonl", [long_id, "-5", " 5", "5", "05"])
    s = spec(tmp_path, "{provider: jsonl, connection: {path: src.jsonl}}", pg_target())
    r = vecmig("apply", str(s), "--auto-approve", env={"DSN": pg_db})
    assert r.returncode == 0, one_line(r)
    with psycopg.connect(pg_db) as conn:
        got = sorted(x[0] for x in conn.execute("SELECT id FROM docs_v2"))
    assert got == sorted([long_id, "-5", " 5", "5", "05"])
