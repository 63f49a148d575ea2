"""Fuzz tier: generated records through the real CLI, JSONL → pgvector → JSONL.

See ``tests/fuzz_support.py`` for the invariants and the profiles.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzz_support as fz
from tests.support.cli import count, vecmig

pytestmark = pytest.mark.fuzz


def _spec(name: str, source: str, target: str) -> str:
    return (f"version: 1\nname: {name}\nstate: {{path: .vecmig/{name}.db}}\nsource: {source}\ntarget: {target}\n"
            "strategy: {type: big-bang, batch_size: 3, concurrency: 2}\nvalidate: {completeness: {checksums: true}}\n")


def _pg(table: str, fields: str, create: bool) -> str:
    return ('{provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: ' + table
            + f", fields: {fields}" + (", create: {index: {type: none}}" if create else "") + "}")


@settings(max_examples=fz.examples(10))
@given(
    records=fz.record_sets(
        id_kinds=("int", "str", "mixed"),
        id_int_bits=None, meta_int_bits=None,
        max_size=6,
    ),
    metadata_column=st.booleans(),
)
def test_jsonl_to_pgvector_and_back(pg_db: str, tmp_path: Path, records: list[dict[str, Any]],
                                    metadata_column: bool) -> None:
    work = tmp_path / uuid.uuid4().hex[:12]
    work.mkdir()
    table = f"t_{uuid.uuid4().hex[:10]}"
    fields = "{id: id, vector: embedding, text: body" + (", metadata: meta}" if metadata_column else "}")
    env = {"TARGET_DSN": pg_db}
    (work / "src.jsonl").write_bytes(fz.jsonl_bytes(records))
    (work / "there.yaml").write_text(
        _spec("there", "{provider: jsonl, connection: {path: src.jsonl}}", _pg(table, fields, True)), encoding="utf-8")
    r = vecmig("apply", "there.yaml", "--auto-approve", cwd=work, env=env, timeout=120)
    names = ["src.jsonl", table, "vector", "metadata", "text", "id", "column"]
    for rec in records:
        names += [repr(rec["id"]), str(rec["id"]), *(str(k) for k in rec.get("metadata") or {})]
    if r.returncode != 0:
        fz.check_one_line_refusal(r, names)
        return
    assert fz.storable(records), f"exit 0 although a vector value is not a finite float32: {records}"
    assert fz.acceptable_ids(records), f"exit 0 although ids are repeated or of two types: {records}"
    assert count(pg_db, table) == len(records), "exit 0 with a different number of records in the target"

    (work / "back.yaml").write_text(
        _spec("back", _pg(table, fields, False), "{provider: jsonl, connection: {path: out.jsonl}}"), encoding="utf-8")
    r = vecmig("apply", "back.yaml", "--auto-approve", cwd=work, env=env, timeout=120)
    assert r.returncode == 0, f"pgvector accepted records it cannot give back: {r.stderr}"
    got = sorted((fz.canonical(x) for x in fz.read_jsonl((work / "out.jsonl").read_bytes())), key=repr)
    assert got == sorted((fz.canonical(x) for x in records), key=repr)
