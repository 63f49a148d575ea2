"""Values are stored exactly or refused with one line (issue 9): the real CLI, real files, real pgvector.

Every case either round trips (source → target → back, compared exactly) or is refused:
at plan time from the sample (a stable FD code), and at write time for records past the
sample, naming the record id, the field, why, and how to fix it. Validation never says a
bare "1 different".
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from tests.cli_utils import vecmig

BIG = 18446744073709551616  # 2**64: orjson parsed it as 1.8446744073709552e+19
NEG = -9223372036854775809  # -2**63 - 1


def _line(rid: Any, meta: dict[str, Any] | str, vec: tuple[float, float] = (0.1, 0.2)) -> str:
    body = meta if isinstance(meta, str) else json.dumps(meta)
    return f'{{"id": {json.dumps(rid)}, "vector": [{vec[0]}, {vec[1]}], "metadata": {body}}}'


def write_source(tmp: Path, lines: list[str], name: str = "src.jsonl") -> Path:
    p = tmp / name
    p.write_text("\n".join(lines) + "\n")
    return p


def spec(tmp: Path, source: str, target: str, name: str = "spec.yaml") -> Path:
    p = tmp / name
    p.write_text(textwrap.dedent(f"""\
        version: 1
        name: {name.removesuffix('.yaml')}
        source:
          {textwrap.indent(source, '          ').strip()}
        target:
          {textwrap.indent(target, '          ').strip()}
        strategy: {{type: big-bang, batch_size: 100}}
        validate:
          completeness: {{checksums: true}}
        """))
    return p


def jsonl(path: str, extra: str = "") -> str:
    return f"provider: jsonl\nconnection: {{path: {path}}}{extra}"


def parquet(path: str, extra: str = "") -> str:
    return f"provider: parquet\nconnection: {{path: {path}}}{extra}"


def pgv(dsn: str, table: str, extra: str = "") -> str:
    return f'provider: pgvector\nconnection: {{dsn: "{dsn}"}}\ncollection: {table}{extra}'


def apply(p: Path) -> tuple[int, str]:
    r = vecmig("apply", str(p), "--auto-approve")
    return r.returncode, r.stdout + r.stderr


def jsonl_records(p: Path) -> dict[Any, dict[str, Any]]:
    # stdlib json: exact integers, the reference the tool must match
    return {rec["id"]: rec for rec in map(json.loads, p.read_text().splitlines()) if rec}


def error_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("Error:")]
    assert lines, out
    return lines[-1]


# ---- integers beyond 64 bits ----------------------------------------------------------------


def test_big_integers_round_trip_exactly_through_jsonl_parquet_and_jsonb(tmp_path: Path, pg_db: str) -> None:
    meta = {"big": BIG, "neg": NEG, "nested": {"list": [BIG, 1]}, "title": "x"}
    write_source(tmp_path, [_line(1, meta), _line(2, {"big": 5, "title": "y"})])
    # jsonl -> jsonl, jsonl -> parquet (JSON column), jsonl -> pgvector jsonb
    for name, target in (("a", jsonl("a.jsonl")), ("b", parquet("b.parquet")),
                         ("c", pgv(pg_db, "docs", "\nfields: {metadata: metadata}"))):
        rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), target, f"{name}.yaml"))
        assert rc == 0, out
    assert jsonl_records(tmp_path / "a.jsonl")[1]["metadata"] == meta
    doc = pq.read_table(tmp_path / "b.parquet").to_pylist()[0]["metadata"]
    assert json.loads(doc) == meta and str(BIG) in doc
    with psycopg.connect(pg_db) as conn:
        got = conn.execute("SELECT metadata->>'big', metadata->>'neg' FROM docs WHERE id = 1").fetchone()
    assert got == (str(BIG), str(NEG))
    # and back: parquet -> jsonl, pgvector jsonb -> jsonl
    for name, source in (("d", parquet("b.parquet")), ("e", pgv(pg_db, "docs", "\nfields: {metadata: metadata}"))):
        rc, out = apply(spec(tmp_path, source, jsonl(f"{name}.jsonl", "\nfields: {metadata: metadata}"),
                             f"{name}.yaml"))
        assert rc == 0, out
        assert jsonl_records(tmp_path / f"{name}.jsonl")[1]["metadata"] == meta, name


def test_big_integer_into_a_bigint_column_is_refused_naming_record_and_field(tmp_path: Path, pg_db: str) -> None:
    # Past the plan's 200-record sample: refused at write time, not silently stored as a double
    # (the old parser made the field a float, and the table got a double precision column).
    lines = [_line(i, {"n": i}) for i in range(300)] + [_line(300, {"n": BIG})]
    write_source(tmp_path, lines)
    for name, target in (("pg", pgv(pg_db, "docs")), ("pq", parquet("t.parquet", "\nfields: {metadata: [n]}"))):
        rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), target, f"{name}.yaml"))
        assert rc == 1, out
        err = error_line(out)
        assert "record 300: metadata field 'n'" in err and str(BIG) in err and "FD004" in err, err
        assert "internal error" not in out and "different" not in out


def test_big_integer_in_the_sample_is_flagged_at_plan_time(tmp_path: Path, pg_db: str) -> None:
    write_source(tmp_path, [_line(1, {"n": 1}), _line(2, {"n": BIG})])
    r = vecmig("plan", str(spec(tmp_path, jsonl("src.jsonl"), pgv(pg_db, "docs"))))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FD004" in r.stdout and "record 2: metadata field 'n'" in r.stdout, r.stdout


def test_id_beyond_64_bits_kept_exact_in_jsonl_refused_by_bigint_and_int64(tmp_path: Path, pg_db: str) -> None:
    write_source(tmp_path, [_line(1, {"k": "a"}), _line(BIG, {"k": "b"})])
    rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), jsonl("out.jsonl"), "j.yaml"))
    assert rc == 0, out
    assert BIG in jsonl_records(tmp_path / "out.jsonl")
    for name, target in (("pg", pgv(pg_db, "docs")), ("pq", parquet("t.parquet"))):
        r = vecmig("plan", str(spec(tmp_path, jsonl("src.jsonl"), target, f"{name}.yaml")))
        assert r.returncode == 1 and "FD004" in r.stdout and f"record id {BIG}" in r.stdout, r.stdout + r.stderr
        assert "float" not in r.stdout + r.stderr


# ---- values PostgreSQL cannot hold --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["typed", "jsonb"])
def test_nul_character_refused_at_plan_and_at_write(tmp_path: Path, pg_db: str, mode: str) -> None:
    extra = "\nfields: {metadata: metadata}" if mode == "jsonb" else ""
    write_source(tmp_path, [_line(1, {"k": "a"}), _line(2, '{"k": "a\\u0000b"}')], "early.jsonl")
    r = vecmig("plan", str(spec(tmp_path, jsonl("early.jsonl"), pgv(pg_db, "t1", extra), "p.yaml")))
    assert r.returncode == 1 and "FD002" in r.stdout and "record 2: metadata field 'k'" in r.stdout, r.stdout
    lines = [_line(i, {"k": f"v{i}"}) for i in range(250)] + [_line(250, '{"k": "a\\u0000b"}')]
    write_source(tmp_path, lines, "late.jsonl")
    rc, out = apply(spec(tmp_path, jsonl("late.jsonl"), pgv(pg_db, "t2", extra), "a.yaml"))
    assert rc == 1
    err = error_line(out)
    assert "record 250: metadata field 'k' holds a NUL character" in err and "FD002" in err, err


def test_lone_surrogate_refused_not_an_internal_error(tmp_path: Path) -> None:
    lines = [_line(i, {"k": f"v{i}"}) for i in range(250)] + [_line(250, '{"k": "\\ud800"}')]
    write_source(tmp_path, lines)
    for name, target in (("j", jsonl("out.jsonl")), ("p", parquet("out.parquet"))):
        rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), target, f"{name}.yaml"))
        assert rc == 1, out
        err = error_line(out)
        # Refused where the line is read, naming it (line 251 holds record 250) and the key.
        assert "internal error" not in err and "src.jsonl:251" in err and "/metadata/k" in err, err
        assert "lone UTF-16 surrogate" in err, err


# ---- typed columns --------------------------------------------------------------------------


def test_fraction_into_int64_parquet_column_refused_not_truncated(tmp_path: Path) -> None:
    # The field is an int in the first 1000 records (the type sample); pyarrow truncated 1.5 to 1.
    lines = [_line(i, {"n": i}) for i in range(1100)] + [_line(1100, {"n": 1.5})]
    write_source(tmp_path, lines)
    rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), parquet("t.parquet", "\nfields: {metadata: [n]}")))
    assert rc == 1, out
    err = error_line(out)
    assert "record 1100: metadata field 'n' is a float (1.5), the column holds integers" in err, err
    assert "FD005" in err and "different" not in out


def test_bool_into_int_column_and_int_beyond_double_refused(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE docs (id bigint PRIMARY KEY, embedding vector(2), n bigint, x double precision,"
                     " r real)")
    cases = [({"n": True}, "metadata field 'n' is a boolean (True), the column holds integers", "FD005"),
             ({"x": 2**53 + 1}, f"metadata field 'x' = {2**53 + 1} would be rounded", "FD006"),
             ({"r": 0.1}, "metadata field 'r' = 0.1 would be rounded to 0.10000000149011612 in a real", "FD006")]
    for i, (meta, want, code) in enumerate(cases):
        write_source(tmp_path, [_line(1, meta)], f"s{i}.jsonl")
        rc, out = apply(spec(tmp_path, jsonl(f"s{i}.jsonl"), pgv(pg_db, "docs"), f"s{i}.yaml"))
        assert rc == 1, out
        err = error_line(out)
        assert f"record 1: {want}" in err and code in err, err


# ---- floats -----------------------------------------------------------------------------------


def test_edge_floats_round_trip_bit_exactly_through_jsonb_and_parquet(tmp_path: Path, pg_db: str) -> None:
    meta = {"precise": 0.1 + 0.2, "tiny": 5e-324, "huge": 1.7976931348623157e308, "sci": 6.02e23, "one": 1.0,
            "neg": -2.5e-300, "empty": [], "deep": {"a": [1, "b", None, {"c": True}]}, "": "empty key",
            "dotted.key": 1, "date": "2024-02-29T12:00:00Z"}
    write_source(tmp_path, [_line(1, meta)])
    rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), pgv(pg_db, "docs", "\nfields: {metadata: metadata}"), "a.yaml"))
    assert rc == 0, out
    rc, out = apply(spec(tmp_path, pgv(pg_db, "docs", "\nfields: {metadata: metadata}"),
                         parquet("b.parquet", "\nfields: {metadata: metadata}"), "b.yaml"))
    assert rc == 0, out
    rc, out = apply(spec(tmp_path, parquet("b.parquet"), jsonl("c.jsonl"), "c.yaml"))
    assert rc == 0, out
    back = jsonl_records(tmp_path / "c.jsonl")[1]["metadata"]
    assert back.keys() == meta.keys()
    # Floats stay floats, bit for bit: vecmig writes 6.02e23 to jsonb as 602000000000000000000000.0,
    # since a numeric keeps "6.02e+23" with scale 0 and gives it back as an int.
    for key in ("precise", "tiny", "neg", "one", "sci", "huge"):
        assert back[key] == meta[key] and type(back[key]) is float, key
    assert back["deep"] == meta["deep"] and back["empty"] == [] and back[""] == "empty key"


def test_nan_and_negative_zero_refused_where_json_cannot_hold_them(tmp_path: Path, pg_db: str) -> None:
    write_source(tmp_path, [_line(1, {"k": 1.0}), _line(2, '{"k": NaN}')], "nan.jsonl")
    jsonb = pgv(pg_db, "t_nan", "\nfields: {metadata: metadata}")
    for name, target in (("j", jsonl("o.jsonl")), ("p", parquet("o.parquet")), ("g", jsonb)):
        r = vecmig("plan", str(spec(tmp_path, jsonl("nan.jsonl"), target, f"{name}.yaml")))
        assert r.returncode == 1 and "FD001" in r.stdout and "record 2: metadata field 'k' is NaN" in r.stdout, \
            r.stdout + r.stderr
    write_source(tmp_path, [_line(1, {"k": -0.0, "s": "x"})], "z.jsonl")
    r = vecmig("plan", str(spec(tmp_path, jsonl("z.jsonl"), pgv(pg_db, "t_z", "\nfields: {metadata: metadata}"),
                                "z.yaml")))
    assert r.returncode == 1 and "FD007" in r.stdout, r.stdout
    rc, out = apply(spec(tmp_path, jsonl("z.jsonl"), parquet("z.parquet"), "zp.yaml"))  # Parquet keeps -0.0
    assert rc == 0, out
    # a double precision column holds NaN: stored and compared exactly
    rc, out = apply(spec(tmp_path, jsonl("nan.jsonl"), pgv(pg_db, "t_nan_typed"), "gt.yaml"))
    assert rc == 0, out


# ---- validation says what differs ------------------------------------------------------------


def test_validation_names_the_field_that_differs(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE docs (id bigint PRIMARY KEY, embedding vector(2), k text)")
        # Something outside vecmig rewrites what it stores: only validation can see it.
        conn.execute("CREATE FUNCTION bang() RETURNS trigger AS $$ BEGIN NEW.k := NEW.k || '!'; RETURN NEW; END $$ "
                     "LANGUAGE plpgsql")
        conn.execute("CREATE TRIGGER bang BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION bang()")
    write_source(tmp_path, [_line(1, {"k": "a"}), _line(2, {"k": "b"})])
    rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), pgv(pg_db, "docs")))
    assert rc == 1, out
    err = error_line(out)
    assert "2 different" in err and "id 1: metadata.k is 'a' in the source, 'a!' in the target" in err, err


# ---- the parser and Pinecone's rules (no store needed) ----------------------------------------


def test_json_parser_keeps_integers_beyond_64_bits_and_stays_on_the_fast_path_otherwise() -> None:
    from vecmig.providers.files.common import loads

    doc = loads(f'{{"a": {BIG}, "b": [{NEG}], "c": {{"d": {BIG * 10**30}}}, "vector": [1e30]}}'.encode(),
                ("vector",))
    assert doc == {"a": BIG, "b": [NEG], "c": {"d": BIG * 10**30}, "vector": [1e30]}
    assert type(doc["a"]) is int and type(doc["c"]["d"]) is int
    assert loads('{"x": 18446744073709551615}')["x"] == 2**64 - 1  # str input (Parquet's JSON column)


def test_pinecone_refuses_lone_surrogates_in_metadata() -> None:
    from vecmig.providers.pinecone.lint import clean_metadata

    clean, found = clean_metadata(7, {"a": "\ud800", "b": ["x", "\udc00"], "ok": "y"})
    assert clean == {"ok": "y"}
    assert [(f.code, f.record_id) for f in found] == [("PC016", 7), ("PC016", 7)]
    assert "metadata field 'a' holds a lone surrogate" in found[0].message


def test_empty_list_beside_strings_makes_a_document_column_not_a_text_one(tmp_path: Path, pg_db: str) -> None:
    # An empty list said nothing to type inference, so the field became text and the list was refused.
    write_source(tmp_path, [_line(1, {"k": "a"}), _line(2, {"k": []}), _line(3, {"k": "b"}),
                            _line(4, {"t": ["y"]}), _line(5, {"t": []})])
    rc, out = apply(spec(tmp_path, jsonl("src.jsonl"), pgv(pg_db, "docs")))
    assert rc == 0, out
    with psycopg.connect(pg_db) as conn:
        types = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                                  "WHERE attrelid = 'docs'::regclass AND attname IN ('k', 't')").fetchall())
    assert types == {"k": "jsonb", "t": "text[]"}
