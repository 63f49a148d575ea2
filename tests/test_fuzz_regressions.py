"""Regressions for what the fuzz tier found (each failed on the code before its fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import vecmig
from vecmig.errors import SpecError
from vecmig.spec_loader import load_spec_text


def _files_spec(tmp_path: Path, src: str, dst: str, lines: str) -> Path:
    (tmp_path / "src.jsonl").write_text(lines)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"version: 1\nname: r\nsource: {{provider: {src}, connection: {{path: src.jsonl}}}}\n"
                    f"target: {{provider: {dst}, connection: {{path: out.{dst}}}}}\n")
    return spec


@pytest.mark.parametrize("dst", ["jsonl", "parquet"])
@pytest.mark.parametrize("line", [
    '{"id": 1, "vector": [1.0], "metadata": {"k": "\\ud800"}}',
    '{"id": "\\udfff", "vector": [1.0]}',
    '{"id": 1, "vector": [1.0], "text": "a\\udbffb"}',
])
def test_lone_surrogate_is_a_one_line_refusal_naming_the_line(tmp_path: Path, dst: str, line: str) -> None:
    r = vecmig("apply", str(_files_spec(tmp_path, "jsonl", dst, line + "\n")), "--auto-approve")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "src.jsonl:1:" in r.stderr and "lone UTF-16 surrogate" in r.stderr


def test_a_valid_surrogate_pair_round_trips(tmp_path: Path) -> None:
    r = vecmig("apply", str(_files_spec(tmp_path, "jsonl", "jsonl",
                                        '{"id": 1, "vector": [1.0], "text": "\\ud83d\\ude00"}\n')), "--auto-approve")
    assert r.returncode == 0, r.stderr
    assert "😀" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")


def test_vector_overflow_prints_no_python_warning(tmp_path: Path) -> None:
    r = vecmig("apply", str(_files_spec(tmp_path, "jsonl", "jsonl", '{"id": 1, "vector": [1e39]}\n')),
               "--auto-approve")
    assert r.returncode == 1 and "finite" in r.stderr
    assert "Warning" not in r.stderr, r.stderr


def test_parquet_names_the_record_whose_metadata_is_not_json(tmp_path: Path) -> None:
    lines = '{"id": 1, "vector": [1.0]}\n{"id": 7, "vector": [1.0], "metadata": {"score": NaN}}\n'
    r = vecmig("apply", str(_files_spec(tmp_path, "jsonl", "parquet", lines)), "--auto-approve")
    assert r.returncode == 1
    # Found at plan from the sample (FD001), naming the record and the field.
    assert "FD001" in r.stderr and "record 7: metadata field 'score' is NaN" in r.stderr, r.stderr


@pytest.mark.parametrize(("text", "where", "what"), [
    ("version: 1\nname: x\nstrategy: {batch_size: !!int x}\n", "spec.yaml:3:24", "cannot be read as its YAML type"),
    ("version: 1\nname: !!float abc\n", "spec.yaml:2:7", "cannot be read as its YAML type"),
    ("\x01version: 1\n", "spec.yaml:1:1", "U+0001"),
    ("version: 1\nname: x\x02\n", "spec.yaml:2:8", "U+0002"),
    ("version: 1\nname: \ud800\n", "spec.yaml:2:7", "U+D800"),
])
def test_spec_loader_locates_unreadable_values(tmp_path: Path, text: str, where: str, what: str) -> None:
    with pytest.raises(SpecError) as e:
        load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env={})
    assert e.value.where == where and what in e.value.message
    assert "\n" not in e.value.one_line()


def test_pgvector_text_column_named_in_the_spec_is_created_without_source_text(pg_db: str, tmp_path: Path) -> None:
    """Was: "table 't' has no column 'body'" at apply when no source record had text."""
    (tmp_path / "src.jsonl").write_text('{"id": 1, "vector": [1.0, 2.0], "metadata": {"a": {"b": null}}}\n')
    pg = '{provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: t, ' \
         'fields: {id: id, vector: embedding, text: body, metadata: meta}'
    (tmp_path / "there.yaml").write_text(
        "version: 1\nname: there\nsource: {provider: jsonl, connection: {path: src.jsonl}}\n"
        f"target: {pg}, create: {{index: {{type: none}}}}}}\n")
    r = vecmig("apply", str(tmp_path / "there.yaml"), "--auto-approve", env={"TARGET_DSN": pg_db})
    assert r.returncode == 0, r.stderr
    # Was: a jsonb metadata source refused for a JSONL target ("its keys are not known"), which
    # stores metadata as one object anyway.
    (tmp_path / "back.yaml").write_text(
        f"version: 1\nname: back\nsource: {pg}}}\ntarget: {{provider: jsonl, connection: {{path: out.jsonl}}}}\n")
    r = vecmig("apply", str(tmp_path / "back.yaml"), "--auto-approve", env={"TARGET_DSN": pg_db})
    assert r.returncode == 0, r.stderr
    assert '"metadata":{"a":{"b":null}}' in (tmp_path / "out.jsonl").read_text()


@pytest.mark.parametrize("key", ["", "k" * 64, "a\\u0000b"])
def test_pgvector_refuses_a_metadata_key_no_column_can_hold(pg_db: str, tmp_path: Path, key: str) -> None:
    """Was: a raw "zero-length delimited identifier" from PostgreSQL (or, for 64+ bytes, a column
    silently named by its first 63 bytes)."""
    (tmp_path / "src.jsonl").write_text('{"id": 1, "vector": [1.0], "metadata": {"' + key + '": 1}}\n')
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\nsource: {provider: jsonl, connection: {path: src.jsonl}}\n"
        'target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: t, '
        "create: {index: {type: none}}}\n")
    r = vecmig("apply", str(tmp_path / "s.yaml"), "--auto-approve", env={"TARGET_DSN": pg_db})
    assert r.returncode == 1
    assert "cannot be a column of 't'" in r.stderr and "mapping.metadata.rename" in r.stderr, r.stderr
