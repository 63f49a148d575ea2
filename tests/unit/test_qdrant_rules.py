"""Qdrant without a server: how ids become point ids and back, the lint rules (QD001-QD005 and
the shared FD codes) and the spec keys a qdrant store takes."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import numpy as np
import pytest

from vecmig.errors import SpecError, TerminalError
from vecmig.providers.qdrant import ids, kit, lint
from vecmig.records import Batch, RecordId
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text

KEY = "qd-unit-S3cret-key"
URL = "https://user:pa55@qdrant.example:6333"


def test_native_ids_stay_and_others_map_to_distinct_uuid5s() -> None:
    assert ids.point_id(0) == 0 and ids.point_id(2**64 - 1) == 2**64 - 1
    mapped = [ids.point_id(r) for r in ("5", -5, 2**64, "", "doc-1", "00000000-0000-0000-0000-000000000001")]
    assert len(set(mapped)) == len(mapped), "a string and an int of the same digits never collide"
    assert all(isinstance(m, str) and uuid.UUID(m).version == 5 for m in mapped)
    assert ids.point_id("doc-1") == ids.point_id("doc-1"), "deterministic: a replayed batch hits the same points"
    assert ids.point_id("doc-1") == str(uuid.uuid5(ids.NAMESPACE, "str:doc-1"))


def test_order_keys_put_ints_before_uuids() -> None:
    points = ["ffffffff-0000-0000-0000-000000000000", 2**64 - 1, 3, "00000000-0000-0000-0000-000000000002"]
    assert sorted(points, key=ids.order_key) == [3, 2**64 - 1, "00000000-0000-0000-0000-000000000002",
                                                 "ffffffff-0000-0000-0000-000000000000"]


def test_record_ids_map_back_and_tampering_is_caught() -> None:
    payload = {ids.ID_KEY: -7, "a": 1}
    assert ids.record_id(ids.point_id(-7), payload, "c") == -7 and payload == {"a": 1}
    assert ids.record_id(12, {"a": 1}, "c") == 12
    with pytest.raises(TerminalError, match="not the id it was stored under"):
        ids.record_id(ids.point_id("a"), {ids.ID_KEY: "b"}, "c")


def sample(ids_: list[RecordId], metadata: list[dict[str, object]], vectors: np.ndarray | None = None,
           texts: list[str | None] | None = None) -> Batch:
    vecs = vectors if vectors is not None else np.ones((len(ids_), 2), np.float32)
    return Batch(ids=ids_, vectors=vecs, metadata=metadata, texts=texts)


def codes(batch: Batch, metric: str = "dotproduct") -> dict[str, str]:
    return {f.code: f.severity for f in lint.lint_sample(batch, metric, "text", "c")}


def test_a_clean_sample_has_no_findings() -> None:
    meta = {"i": 1, "f": 1.0, "b": True, "n": None, "s": "x", "l": ["a"], "o": {"k": [1]}, "u64": 2**64 - 1}
    assert codes(sample([1, 2], [meta, {}], texts=["t", None])) == {}


def test_each_rule_has_its_code() -> None:
    vectors = np.array([[1, 2], [np.nan, 0], [1, 1]], np.float32)
    found = codes(sample(["a", 2, 3], [{ids.ID_KEY: 1}, {"text": "x"}, {"big": [2**70]}], vectors), "cosine")
    assert found == {"QD001": "info", "QD002": "error", "QD003": "error", "QD004": "error", "QD005": "error"}
    assert codes(sample([1, 2], [{"x": float("inf")}, {"s": "\ud800"}])) == {"FD001": "error", "FD003": "error"}


def test_upsert_refuses_the_first_bad_record_by_name() -> None:
    with pytest.raises(TerminalError) as exc:
        lint.check_batch(sample([1, "doc-2"], [{}, {"n": -(2**63) - 1}]), "text", "docs")
    line = exc.value.one_line()
    assert line.startswith("record 'doc-2': metadata field 'n' is an integer beyond 64 bits [QD004]")
    assert "Qdrant collection 'docs'" in line and exc.value.hint


def test_the_kit_imports_no_client_library() -> None:
    tree = ast.parse(Path(kit.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith("qdrant_client") for m in imported)


SPEC = """\
version: 1
name: qd
source:
  provider: qdrant
  connection: {url: "${env:QDRANT_URL}", api_key: "${env:QDRANT_API_KEY}", timeout: 30}
  collection: docs
  fields: {text: body}
target:
  provider: jsonl
  connection: {path: out.jsonl}
"""


def load(text: str) -> Spec:
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp/specs"),
                          env={"QDRANT_URL": URL, "QDRANT_API_KEY": KEY})


def test_a_qdrant_spec_loads_and_masks_its_secrets() -> None:
    spec = load(SPEC)
    source = spec.source
    assert source.connection == {"url": URL, "api_key": KEY, "timeout": 30} and source.fields.text == "body"
    masked = spec.redactor(f"{URL} {KEY}")
    assert KEY not in masked and "pa55" not in masked


@pytest.mark.parametrize(("change", "message"), [
    (("timeout: 30", "timeout: 30, region: eu"), "region"),
    (("url: \"${env:QDRANT_URL}\", ", ""), "url"),
    (("collection: docs", "collection: a/b"), "Qdrant collection name"),
    (("fields: {text: body}", "fields: {id: pk}"), "fields/id is ignored"),
])
def test_malformed_qdrant_specs_say_what_and_where(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        load(SPEC.replace(*change))
    line = exc.value.one_line()
    assert message in line and "s.yaml:" in line and KEY not in line, line
