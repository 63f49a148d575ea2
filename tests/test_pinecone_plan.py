"""Planning with Pinecone (and sparse values) in the engine: lint findings from a source
sample, cost and time estimates from the providers' hooks, copy batches that fill requests,
pointer cutovers; sparse values in checksums; the pointer file and command themselves.

Plans are made in process against the local Pinecone server (no CLI: that is
tests/test_e2e_pinecone.py), from JSONL sources written here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from tests.pinecone_local import PineconeLocal, reset_sdk_host_state
from vecmig import pointer
from vecmig.errors import TerminalError
from vecmig.model import Inventory
from vecmig.planner import make_plan
from vecmig.providers.pinecone import PineconeProvider
from vecmig.records import Batch, Checksum, canonical_id, canonical_metadata, record_digest
from vecmig.refresh import refresh
from vecmig.schemas import load as load_schema
from vecmig.spec_loader import load_spec_text

KEY = "pcsk_plan-test-key"


@pytest.fixture(scope="module")
def shared() -> Iterator[PineconeLocal]:
    with PineconeLocal(api_key=KEY) as server:
        yield server
    reset_sdk_host_state()


@pytest.fixture
def srv(shared: PineconeLocal) -> Iterator[PineconeLocal]:
    shared.reset()
    yield shared
    shared.reset()


def write_source(path: Path, n: int, dim: int, *, sparse: bool = False, nested: bool = False) -> None:
    rng = np.random.default_rng(1)
    with path.open("w") as f:
        for i in range(n):
            vec = rng.standard_normal(dim).astype(np.float32)
            rec: dict[str, Any] = {"id": i + 1, "vector": [float(v) for v in vec],
                                   "metadata": {"lang": "en", "n": i}, "text": f"text {i}"}
            if nested and i % 2:
                rec["metadata"]["author"] = {"name": "x"}
            if sparse and i % 3:
                rec["sparse"] = {"indices": [i % 7, 100 + i], "values": [0.5, float(np.float32(i / 3))]}
            f.write(json.dumps(rec) + "\n")


def spec_for(tmp: Path, target: str, extra: str = "", source: str = "src.jsonl") -> Any:
    text = f"""
version: 1
name: plan-test
source: {{provider: jsonl, connection: {{path: {source}}}}}
target: {target}
{extra}
"""
    return load_spec_text(text, file="spec.yaml", base_dir=tmp, env={"PINECONE_API_KEY": KEY})


def pinecone_target(srv: PineconeLocal, extra: str = "") -> str:
    return (f'{{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{srv.url}"}}, '
            f"collection: docs{extra}}}")


def plan_for(spec: Any) -> Any:
    return make_plan(spec, None, refresh(spec))


# ---- lint on a sample ----------------------------------------------------------------------------


def test_pinecone_rules_become_plan_warnings_with_hints(srv: PineconeLocal, tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 300, 8, nested=True)
    plan = plan_for(spec_for(tmp_path, pinecone_target(srv)))
    found = {w.code: w for w in plan.warnings}
    assert found["PC003"].severity == "error"
    assert "nested_metadata: json" in found["PC003"].hint, "the hint names the spec option that fixes it"
    assert "first 200 source records" in found["PC003"].message, "findings come from a sample"
    assert "100 record(s)" in found["PC003"].message
    assert found["PC015"].severity == "info"
    # The spec option that applies the fix makes the finding go away.
    fixed = plan_for(spec_for(tmp_path, pinecone_target(srv).replace(
        'host: "', 'nested_metadata: json, host: "')))
    assert "PC003" not in {w.code for w in fixed.warnings}


def test_plans_are_byte_identical_and_leave_no_index(srv: PineconeLocal, tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 500, 16)
    spec = spec_for(tmp_path, pinecone_target(srv))
    a, b = plan_for(spec).to_json_text(), plan_for(spec).to_json_text()
    assert a == b
    jsonschema.validate(json.loads(a), load_schema("plan.v1"))  # PC codes, hints and cost lines included
    assert PineconeProvider(spec.target).inventory().exists is False
    assert KEY not in a


def test_sparse_values_a_target_cannot_hold_are_a_lint_error(tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 50, 4, sparse=True)
    plan = plan_for(spec_for(tmp_path, "{provider: parquet, connection: {path: out.parquet}}"))
    vm104 = next(w for w in plan.warnings if w.code == "VM104")
    assert vm104.severity == "error" and "33 record(s)" in vm104.message and "parquet" in vm104.message
    assert vm104.hint
    # A target that holds them (jsonl) plans cleanly.
    plan = plan_for(spec_for(tmp_path, "{provider: jsonl, connection: {path: out.jsonl}}"))
    assert "VM104" not in {w.code for w in plan.warnings}


def test_sparse_source_into_pinecone_needs_dotproduct_and_gets_a_sparse_index(srv: PineconeLocal,
                                                                              tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 50, 4, sparse=True)
    plan = plan_for(spec_for(tmp_path, pinecone_target(srv)))
    assert {w.code: w.severity for w in plan.warnings}.get("PC009") == "error"
    plan = plan_for(spec_for(tmp_path, pinecone_target(srv, ", create: {metric: dotproduct}")))
    assert "PC009" not in {w.code for w in plan.warnings}
    create = next(a for a in plan.actions if a.kind == "create_collection")
    assert create.params["schema"]["sparse"] is True, "the index is created with a sparse field"


# ---- estimates -----------------------------------------------------------------------------------


def test_cost_lines_time_and_request_filling_batches(srv: PineconeLocal, tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 2000, 384)
    spec = spec_for(tmp_path, pinecone_target(srv), "strategy: {batch_size: 500}\ncost: {transition_days: 60}")
    plan = plan_for(spec)
    copy = next(a for a in plan.actions if a.kind == "copy_shard")
    assert copy.params["batch_size"] == 10_000
    assert any("copy batches hold 10,000 records, not strategy.batch_size 500" in n for n in plan.notes)
    cost = copy.estimate.cost
    assert set(cost) == {"pinecone_write_units", "pinecone_storage"}
    validate = next(a for a in plan.actions if a.kind == "validate_completeness")
    assert set(validate.estimate.cost) == {"pinecone_read_units"}
    assert plan.totals.cost["pinecone_write_units"] == cost["pinecone_write_units"]
    # Storage covers the transition: twice the days, twice the storage line.
    shorter = plan_for(spec_for(tmp_path, pinecone_target(srv), "cost: {transition_days: 30}"))
    short_copy = next(a for a in shorter.actions if a.kind == "copy_shard")
    assert cost["pinecone_storage"] == pytest.approx(2 * short_copy.estimate.cost["pinecone_storage"], rel=0.01)
    # Prices from the spec replace the list prices.
    dear = plan_for(spec_for(tmp_path, pinecone_target(srv), "cost: {pinecone: {write_units_per_million: 40}}"))
    dear_copy = next(a for a in dear.actions if a.kind == "copy_shard")
    assert dear_copy.estimate.cost["pinecone_write_units"] == pytest.approx(10 * cost["pinecone_write_units"],
                                                                            rel=0.01)
    assert 0 < copy.estimate.seconds_low < copy.estimate.seconds_high


def test_throughput_model_follows_request_size_and_requests_in_flight() -> None:
    from vecmig.spec import StoreSpec

    def model(dim: int, in_flight: int, workers: int = 1) -> Any:
        inv = Inventory(provider="pgvector", collection="docs", exists=True, dimension=dim,
                        bytes_per_record=4 * dim + 300)
        store = StoreSpec(provider="pinecone", connection={"concurrency": in_flight}, collection="x")
        return PineconeProvider.throughput_for(inv, workers, store)

    # Small records: more requests in flight, more records per second (until the namespace caps).
    assert model(128, 1).write_records_per_s < model(128, 4).write_records_per_s
    # Wide records: fewer per request, so fewer per second at the same requests in flight.
    assert model(3072, 1).write_records_per_s < model(128, 1).write_records_per_s
    # Workers beyond what the namespace limits admit do not count.
    assert model(384, 16, workers=8).max_parallel == 1
    assert model(64, 1, workers=8).max_parallel > 1


# ---- pointer cutover in the plan -----------------------------------------------------------------


def test_pointer_cutover_reads_the_current_pointer(srv: PineconeLocal, tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 20, 4)
    (tmp_path / "live.json").write_text(json.dumps({"index": "docs-old"}))
    target = pinecone_target(srv, ", pointer: {file: live.json}")
    plan = plan_for(spec_for(tmp_path, target, "strategy: {type: blue-green}"))
    cut = plan.actions[-1]
    assert (cut.id, cut.kind) == ("cutover.pointer", "cutover")
    assert (cut.params["from"], cut.params["to"]) == ("docs-old", "docs")
    assert "docs-old" in cut.reverse
    # A pointer that already names the new index needs no cutover.
    (tmp_path / "live.json").write_text(json.dumps({"index": "docs"}))
    plan = plan_for(spec_for(tmp_path, target, "strategy: {type: blue-green}"))
    assert all(a.kind != "cutover" for a in plan.actions)
    # big-bang repoints too when a pointer is configured.
    (tmp_path / "live.json").unlink()
    plan = plan_for(spec_for(tmp_path, target))
    assert plan.actions[-1].id == "cutover.pointer" and plan.actions[-1].params["from"] is None


def test_pointer_command_in_the_plan_keeps_its_placeholders(srv: PineconeLocal, tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", 20, 4)
    spec = load_spec_text(f"""
version: 1
name: plan-test
source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
target: {pinecone_target(srv, ', pointer: {command: "./repoint.sh --token ${env:DEPLOY_TOKEN}"}')}
strategy: {{type: blue-green}}
""", file="spec.yaml", base_dir=tmp_path, env={"PINECONE_API_KEY": KEY, "DEPLOY_TOKEN": "tok-123-secret"})
    text = make_plan(spec, None, refresh(spec)).to_json_text()
    assert "${env:DEPLOY_TOKEN}" in text and "tok-123-secret" not in text
    assert spec.target.live_pointer is not None and "tok-123-secret" in spec.target.live_pointer.command


# ---- sparse values in checksums -------------------------------------------------------------------


def _digest_before_sparse(rid: Any, vec: np.ndarray, meta: dict[str, Any], text: str | None) -> int:
    """record_digest as it was before sparse values were covered, to pin existing checksums."""
    h = hashlib.blake2b(digest_size=16)
    h.update(canonical_id(rid))
    h.update(b"\x00")
    h.update(np.ascontiguousarray(vec, dtype="<f4").tobytes())
    h.update(b"\x00")
    h.update(canonical_metadata(meta))
    h.update(b"\x00")
    h.update((text or "").encode())
    return int.from_bytes(h.digest(), "big")


def test_records_without_sparse_values_hash_as_before() -> None:
    vec = np.arange(4, dtype=np.float32)
    for sparse in (None, {"indices": [], "values": []}):
        assert record_digest(7, vec, {"a": 1}, "t", sparse) == _digest_before_sparse(7, vec, {"a": 1}, "t")
    batch = Batch(ids=[1, 2], vectors=np.ones((2, 4), np.float32), metadata=[{}, {"x": "y"}], texts=[None, "z"])
    c = Checksum()
    c.add_batch(batch)
    want = sum(_digest_before_sparse(r, v, m, t) for r, v, m, t in batch.rows()) % (1 << 128)
    assert c.total == want


def test_sparse_values_are_part_of_the_digest_in_canonical_order() -> None:
    vec = np.ones(4, dtype=np.float32)
    a = record_digest("x", vec, {}, None, {"indices": [3, 1], "values": [0.5, 0.25]})
    b = record_digest("x", vec, {}, None, {"indices": [1, 3], "values": [0.25, 0.5]})

    class Sdk:  # the SDK's SparseValues: attributes, not keys; doubles of the same float32
        indices = (1, 3)
        values = (float(np.float32(0.25)), float(np.float32(0.5)))

    assert a == b == record_digest("x", vec, {}, None, Sdk())
    assert a != record_digest("x", vec, {}, None, None)
    assert a != record_digest("x", vec, {}, None, {"indices": [1, 3], "values": [0.25, 0.75]})
    assert a != record_digest("x", vec, {}, None, {"indices": [1, 4], "values": [0.25, 0.5]})
    with_sparse = Batch(ids=["x"], vectors=vec[None, :], metadata=[{}], extra={"sparse": [{"indices": [1],
                                                                                           "values": [1.0]}]})
    without = Batch(ids=["x"], vectors=vec[None, :], metadata=[{}])
    c1, c2 = Checksum(), Checksum()
    c1.add_batch(with_sparse)
    c2.add_batch(without)
    assert c1.hex != c2.hex


# ---- the pointer file and command ----------------------------------------------------------------


def test_pointer_file_is_replaced_atomically_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "live.json"
    live = pointer.Live(index="docs-v2", host="https://h", namespace="prod")
    pointer.switch(pointer.PointerSpec(file="conf/live.json"), tmp_path, live, pointer.Live("docs-v1"),
                   migration="m", secrets=())
    body = json.loads(path.read_text())
    assert (body["index"], body["host"], body["namespace"], body["previous"]) == ("docs-v2", "https://h", "prod",
                                                                                   "docs-v1")
    assert body["switched_at"] and oct(path.stat().st_mode & 0o777) == oct(0o644)
    path.chmod(0o640)
    pointer.write_atomic(path, "{}")
    assert path.read_text() == "{}" and oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in path.parent.iterdir()] == ["live.json"], "no temporary file is left behind"
    pointer.restore(pointer.PointerSpec(file="conf/live.json"), tmp_path, {"file": None}, live, secrets=())
    assert not path.exists(), "a pointer file that did not exist before is removed by rollback"


def test_pointer_command_gets_the_index_but_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "literal-key")
    monkeypatch.setenv("TARGET_DSN", "postgresql://u:resolved-secret@h/db")
    monkeypatch.setenv("UNRELATED", "kept")
    spec = pointer.PointerSpec(command="env > env.out")
    pointer.switch(spec, tmp_path, pointer.Live("docs-v2", "https://h", "ns"), pointer.Live("docs-v1"),
                   migration="m", secrets=["postgresql://u:resolved-secret@h/db"])
    env = dict(line.split("=", 1) for line in (tmp_path / "env.out").read_text().splitlines() if "=" in line)
    assert (env["VECMIG_INDEX"], env["VECMIG_HOST"], env["VECMIG_NAMESPACE"], env["VECMIG_PREVIOUS_INDEX"],
            env["VECMIG_OPERATION"]) == ("docs-v2", "https://h", "ns", "docs-v1", "cutover")
    assert "PINECONE_API_KEY" not in env and "TARGET_DSN" not in env and env["UNRELATED"] == "kept"


def test_failing_pointer_command_is_a_terminal_error_without_secrets(tmp_path: Path) -> None:
    spec = pointer.PointerSpec(command="echo 'cannot reach deploy api with s3cr3t' >&2; exit 3")
    with pytest.raises(TerminalError) as err:
        pointer.switch(spec, tmp_path, pointer.Live("docs-v2"), None, migration="m", secrets=["s3cr3t"])
    assert "status 3" in err.value.message and "***" in err.value.message and "s3cr3t" not in err.value.message
    slow = pointer.PointerSpec(command="sleep 5", timeout=0.2)
    with pytest.raises(TerminalError, match=r"did not finish within 0\.2s"):
        pointer.switch(slow, tmp_path, pointer.Live("docs-v2"), None, migration="m", secrets=())
    assert os.environ.get("VECMIG_INDEX") is None
