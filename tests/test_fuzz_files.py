"""Fuzz tier: generated records through the real CLI, JSONL → JSONL and JSONL → Parquet → JSONL.

See ``tests/fuzz_support.py`` for the invariants and the profiles.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzz_support as fz
from tests.support.cli import vecmig

pytestmark = pytest.mark.fuzz


@st.composite
def specs(draw: st.DrawFn, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Random knobs that must not change what arrives: batch size, concurrency, strategy, source
    key names, metadata renames/drops, checksums on or off."""
    keys = {k: draw(st.sampled_from([k, f"{k}_x", k.upper()])) for k in ("id", "vector", "text", "metadata")}
    if len(set(keys.values())) < 4:
        keys = {k: k for k in keys}
    meta_keys = sorted({k for r in records for k in (r.get("metadata") or {})})
    plain = [k for k in meta_keys if k and k.isidentifier() and k.isascii()]
    drop = draw(st.lists(st.sampled_from(plain), unique=True, max_size=2)) if plain else []
    rename = {}
    for k in plain:
        if k not in drop and draw(st.integers(0, 3)) == 0:
            rename[k] = f"{k}_renamed_{len(rename)}"
    if any(v in meta_keys for v in rename.values()):
        rename = {}
    return {
        "keys": keys,
        "batch_size": draw(st.integers(1, 5)),
        "concurrency": draw(st.integers(1, 4)),
        "checksums": True,  # `checksums: false` is refused (validation always compares them)
        "drop": drop,
        "rename": rename,
    }


def spec_text(name: str, src: str, src_provider: str, dst: str, dst_provider: str, knobs: dict[str, Any],
              *, source_fields: bool = True) -> str:
    keys = knobs["keys"]
    fields = ""
    if source_fields and any(k != v for k, v in keys.items()):
        fields = (f', fields: {{id: {keys["id"]}, vector: {keys["vector"]}, text: {keys["text"]}, '
                  f'metadata: {keys["metadata"]}}}')
    mapping = ""
    if knobs["drop"] or knobs["rename"]:
        # Written by a YAML emitter: a key over 1,024 characters must be an explicit `? key`,
        # which hand-written flow mappings cannot say.
        mapping = yaml.safe_dump(
            {"mapping": {"metadata": {"rename": knobs["rename"], "drop": knobs["drop"]}}},
            allow_unicode=True, width=10**9, sort_keys=False,
        )
    return (
        f"version: 1\nname: {name}\nstate: {{path: .vecmig/{name}.db}}\n"
        f"source: {{provider: {src_provider}, connection: {{path: {src}}}{fields}}}\n"
        f"target: {{provider: {dst_provider}, connection: {{path: {dst}}}}}\n"
        f"{mapping}"
        f"strategy: {{type: big-bang, batch_size: {knobs['batch_size']}, concurrency: {knobs['concurrency']}}}\n"
        f"validate: {{completeness: {{checksums: {str(knobs['checksums']).lower()}}}}}\n"
    )


def expected(records: list[dict[str, Any]], knobs: dict[str, Any]) -> list[tuple[Any, ...]]:
    out = []
    for r in records:
        meta = {knobs["rename"].get(k, k): v for k, v in (r.get("metadata") or {}).items() if k not in knobs["drop"]}
        out.append(fz.canonical({**r, "metadata": meta}))
    return sorted(out, key=repr)


def names_of(records: list[dict[str, Any]]) -> list[str]:
    """What a refusal may name: a file, a record's id, a metadata key."""
    names = ["src.jsonl", "mid.parquet", "out.jsonl", "out.parquet", "vector", "metadata", "text", "id"]
    for r in records:
        names.append(repr(r["id"]))
        names.append(str(r["id"]))
        names.extend(str(k) for k in (r.get("metadata") or {}))
    return names


def migrate(work: Path, name: str, src: str, src_provider: str, dst: str, dst_provider: str,
            knobs: dict[str, Any], **kw: Any) -> Any:
    spec = work / f"{name}.yaml"
    spec.write_text(spec_text(name, src, src_provider, dst, dst_provider, knobs, **kw), encoding="utf-8")
    return vecmig("apply", str(spec), "--auto-approve", cwd=work, timeout=120)


def round_trip(tmp_path: Path, records: list[dict[str, Any]], knobs: dict[str, Any], via: str | None,
               must_succeed: bool) -> None:
    work = tmp_path / uuid.uuid4().hex[:12]
    work.mkdir()
    (work / "src.jsonl").write_bytes(fz.jsonl_bytes(records, knobs["keys"]))
    if via is None:
        r = migrate(work, "direct", "src.jsonl", "jsonl", "out.jsonl", "jsonl", knobs)
    else:
        r = migrate(work, "there", "src.jsonl", "jsonl", f"mid.{via}", via, knobs)
        if r.returncode == 0:
            back = {**knobs, "keys": {k: k for k in knobs["keys"]}, "drop": [], "rename": {}}
            r = migrate(work, "back", f"mid.{via}", via, "out.jsonl", "jsonl", back)
            assert r.returncode == 0, f"{via} accepted records it cannot give back: {r.stderr}"
    if r.returncode != 0:
        assert not must_succeed, f"refused plain records: {r.stderr}"
        fz.check_one_line_refusal(r, names_of(records))
        return
    assert fz.storable(records), f"exit 0 although a vector value is not a finite float32: {records}"
    assert fz.acceptable_ids(records), f"exit 0 although ids are repeated or of two types: {records}"
    got = sorted((fz.canonical(x) for x in fz.read_jsonl((work / "out.jsonl").read_bytes())), key=repr)
    assert len(got) == len(records), "exit 0 with a different number of records in the target"
    assert got == expected(records, knobs)


# Every kind of record: refusal allowed, internal errors and silent changes not.
ANY_RECORDS = fz.record_sets(
    id_kinds=("int", "str", "mixed"),
    id_int_bits=None, meta_int_bits=None,
)
# Records every file store must carry: a refusal here is a failure.
PLAIN_RECORDS = fz.record_sets(id_kinds=("int", "str"), id_int_bits=64, meta_int_bits=64, poison=False)


@settings(max_examples=fz.examples(25))
@given(data=st.data(), records=ANY_RECORDS)
def test_jsonl_to_jsonl(tmp_path: Path, data: st.DataObject, records: list[dict[str, Any]]) -> None:
    round_trip(tmp_path, records, data.draw(specs(records)), None, must_succeed=False)


@settings(max_examples=fz.examples(12))
@given(data=st.data(), records=ANY_RECORDS)
def test_jsonl_to_parquet_and_back(tmp_path: Path, data: st.DataObject, records: list[dict[str, Any]]) -> None:
    round_trip(tmp_path, records, data.draw(specs(records)), "parquet", must_succeed=False)


def _plain_text(records: list[dict[str, Any]]) -> bool:
    def ok(v: Any) -> bool:
        if isinstance(v, str):
            return "\x00" not in v and fz.utf8_ok(v)
        if isinstance(v, list):
            return all(ok(x) for x in v)
        if isinstance(v, dict):
            return all(ok(k) and ok(x) for k, x in v.items())
        return True
    return all(ok(r["id"]) and r["id"] != "" and ok(r.get("metadata") or {}) and ok(r.get("text") or "")
               for r in records)


@settings(max_examples=fz.examples(8))
@given(data=st.data(), records=PLAIN_RECORDS, via=st.sampled_from([None, "parquet"]))
def test_plain_records_always_arrive(tmp_path: Path, data: st.DataObject, records: list[dict[str, Any]],
                                     via: str | None) -> None:
    if not _plain_text(records):
        records = [{**r, "id": i, "metadata": {}, "text": None} for i, r in enumerate(records)]
    round_trip(tmp_path, records, data.draw(specs(records)), via, must_succeed=True)
