"""Namespaces mapped faithfully, through the CLI against the local Pinecone server (real SDK).

The hole this closes: a Pinecone ``namespace: "*"`` source whose two namespaces hold the same
ids, exported into one JSONL file, would keep one record per id. Now that is a plan error
(VM110) naming the namespaces and an id; ``mapping.namespace`` maps the namespace to a field
(with composite ids ``"<namespace>/<id>"``) and back, or renames namespaces between two
namespaced stores; and validation counts per (namespace, id), so a collision that got through
anyway fails it with honest counts. Records are read back with the SDK and from the file
directly, and compared by (namespace, id) bit for bit.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from pinecone import Pinecone

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import API_KEY, pinecone_block
from tests.test_kill_resume import kill_at, progress
from vecmig.actions.base import RunContext
from vecmig.actions.validate_completeness import ValidateCompleteness
from vecmig.errors import ValidationFailed
from vecmig.model import Action
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import PineconeProvider
from vecmig.records import Batch, canonical_metadata
from vecmig.spec import CreateSpec, StoreSpec
from vecmig.spec_loader import load_spec
from vecmig.state.store import StateStore

ENV = {"PINECONE_API_KEY": API_KEY}
Key = tuple[str, str]  # (namespace, id)
Rec = tuple[bytes, bytes, str | None]  # vector bits, canonical metadata, text


@pytest.fixture
def srv(pinecone_srv: SpawnedPineconeLocal) -> SpawnedPineconeLocal:
    """The session's local Pinecone server, empty (tests/support/pinecone.py)."""
    return pinecone_srv


def seed(srv: SpawnedPineconeLocal, index: str, ids: dict[str, list[str]], *, same_records: bool = False,
         dim: int = 8) -> None:
    """``ids`` per namespace; each namespace's records differ (vectors, metadata, text) unless
    ``same_records``, where every namespace holds identical copies."""
    for k, (ns, names) in enumerate(ids.items()):
        rng = np.random.default_rng(0 if same_records else k + 1)
        store = StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": srv.url}, collection=index,
                          namespace=ns, create=CreateSpec(dimension=dim, metric="cosine"), pointer="/source")
        p = PineconeProvider(store)
        try:
            if k == 0:
                p.create_collection(CollectionSchema(dimension=dim, metric="cosine", id_type="text"))
            tag = "same" if same_records else ns
            metadata = [{"title": f"{tag} {i}", "year": 1990 + i % 30, "score": i / 7, "ok": bool(i % 2),
                         "tags": [tag, f"t{i % 3}"]} for i in range(len(names))]
            texts: list[str | None] = [f"body {tag} {i} · café" if i % 5 else None for i in range(len(names))]
            p.upsert(Batch(ids=list(names), vectors=rng.standard_normal((len(names), dim)).astype(np.float32),
                           metadata=metadata, texts=texts))
        finally:
            p.close()


def pinecone_by_namespace(srv: SpawnedPineconeLocal, index: str) -> dict[Key, Rec]:
    """Every record of every namespace through the SDK, keyed by (namespace, id); the default
    namespace (listed as "__default__") as "", the name vecmig gives it."""
    out: dict[Key, Rec] = {}
    with Pinecone(api_key=API_KEY, host=srv.url) as pc, pc.Index(host=pc.describe_index(index).host) as idx:
        for ns in sorted(idx.describe_index_stats().namespaces):
            token: str | None = None
            while True:
                page = idx.list_paginated(namespace=ns, limit=100, pagination_token=token)
                ids = [v.id for v in page.vectors]
                got = idx.fetch(ids=ids, namespace=ns).vectors if ids else {}
                for rid in ids:
                    meta = dict(got[rid].metadata or {})
                    text = meta.pop("text", None)
                    vec = np.asarray(got[rid].values, dtype=np.float32).tobytes()
                    out[("" if ns == "__default__" else ns, rid)] = (vec, canonical_metadata(meta), text)
                token = page.pagination.next if page.pagination is not None else None
                if not token:
                    break
    return out


def jsonl_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def jsonl_by_field(path: Path, field: str, composite: bool) -> dict[Key, Rec]:
    """The file's records keyed by (the namespace its field names, the id it stands for)."""
    out: dict[Key, Rec] = {}
    for rec in jsonl_lines(path):
        meta = dict(rec.get("metadata") or {})
        ns = meta.pop(field)
        rid = rec["id"]
        if composite:
            assert rid.startswith(f"{ns}/"), rid
            rid = rid[len(ns) + 1:]
        assert (ns, rid) not in out, f"{(ns, rid)} twice"
        out[(ns, rid)] = (np.asarray(rec["vector"], dtype=np.float32).tobytes(), canonical_metadata(meta),
                          rec.get("text"))
    return out


def assert_same(want: dict[Key, Rec], got: dict[Key, Rec]) -> None:
    assert len(got) == len(want), f"{len(got)} records, expected {len(want)}"
    assert got.keys() == want.keys(), f"keys differ: {sorted(set(want) ^ set(got))[:5]}"
    for key, rec in want.items():
        assert got[key] == rec, f"record {key} differs"


def run(*args: str) -> Any:
    return vecmig(*args, env=ENV)


def apply_ok(spec: Path) -> None:
    r = run("apply", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr


def settled(spec: Path) -> None:
    r = run("plan", str(spec), "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr


SHARED = [f"doc-{i:04d}" for i in range(400)]


def test_the_same_ids_in_two_namespaces_into_one_file_is_a_plan_error(srv: SpawnedPineconeLocal,
                                                                       tmp_path: Path) -> None:
    """The reproduction: 400 ids in both 'a' and 'b', into one JSONL file, no mapping."""
    seed(srv, "src", {"a": SHARED, "b": SHARED})
    spec = write_spec(tmp_path, f"""
        version: 1
        name: repro
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        """)
    r = run("plan", str(spec))
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "error VM110: ids collide across source namespaces: id 'doc-0000' appears twice (namespace 'a' and " \
           "namespace 'b')" in " ".join(out.split()), out
    assert "composite_ids: true" in out and "Traceback" not in out
    assert "warning VM112: the source's 2 namespaces ('a', 'b') are merged into one place" in " ".join(out.split())
    r = run("apply", str(spec), "--auto-approve")
    assert r.returncode == 1 and "VM110" in r.stdout + r.stderr
    assert not (tmp_path / "out.jsonl").exists()
    # A field alone does not keep them apart in a store keyed by id: still refused, saying so.
    spec.write_text(spec.read_text() + "mapping: {namespace: {to: field, name: tenant}}\n")
    r = run("plan", str(spec))
    assert r.returncode == 1 and "VM110" in r.stdout
    assert "keys records by id alone" in " ".join(r.stdout.split())
    # Even past the plan (the finding lowered by policy), apply's id check refuses before writing.
    spec.write_text(spec.read_text() + "policy: {warn: [VM110]}\n")
    r = run("apply", str(spec), "--auto-approve")
    assert r.returncode == 1 and "[VM110]" in r.stdout + r.stderr and "nothing was written" in r.stdout + r.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_to_field_with_composite_ids_and_back_into_namespaces(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    few = SHARED[:150]
    seed(srv, "src", {"a": few, "b": few, "": few[:30]})  # "" is the default namespace
    source = pinecone_by_namespace(srv, "src")
    assert len(source) == 330
    out_dir, back_dir = tmp_path / "out", tmp_path / "back"
    out_dir.mkdir()
    back_dir.mkdir()
    export = write_spec(out_dir, f"""
        version: 1
        name: export
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        mapping: {{namespace: {{to: field, name: tenant, composite_ids: true}}}}
        """)
    apply_ok(export)
    lines = jsonl_lines(out_dir / "out.jsonl")
    assert len(lines) == 330
    assert {"a/doc-0007", "b/doc-0007", "/doc-0007"} <= {r["id"] for r in lines}
    assert_same(source, jsonl_by_field(out_dir / "out.jsonl", "tenant", composite=True))
    settled(export)
    # An edit in one namespace is a change of that one record only: the diff keys (namespace, id).
    with Pinecone(api_key=API_KEY, host=srv.url) as pc, pc.Index(host=pc.describe_index("src").host) as idx:
        idx.update(id="doc-0001", set_metadata={"title": "edited in b"}, namespace="b")
    r = run("plan", str(export), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"] == {"add": 0, "change": 1, "delete": 0, "unchanged": 329}
    apply_ok(export)
    source = pinecone_by_namespace(srv, "src")
    assert_same(source, jsonl_by_field(out_dir / "out.jsonl", "tenant", composite=True))
    settled(export)

    back = write_spec(back_dir, f"""
        version: 1
        name: back
        source: {{provider: jsonl, connection: {{path: ../out/out.jsonl}}}}
        target: {pinecone_block(srv, "dst", ", namespace: '*'")}
        mapping: {{namespace: {{from: field, name: tenant, composite_ids: true}}}}
        """)
    apply_ok(back)
    assert_same(source, pinecone_by_namespace(srv, "dst"))
    settled(back)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_to_field_with_plain_ids_and_back(srv: SpawnedPineconeLocal, tmp_path: Path, fmt: str) -> None:
    """Ids unique across namespaces need no composite: the field alone says where each goes back.
    Parquet keeps the field as a typed column the plan adds to the schema."""
    seed(srv, "src", {"x": SHARED[:100], "y": SHARED[100:200]})
    source = pinecone_by_namespace(srv, "src")
    (tmp_path / "back").mkdir()
    export = write_spec(tmp_path, f"""
        version: 1
        name: export
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {{provider: {fmt}, connection: {{path: out.{fmt}}}}}
        mapping: {{namespace: {{to: field, name: tenant}}}}
        """)
    apply_ok(export)
    if fmt == "jsonl":
        assert sorted(r["id"] for r in jsonl_lines(tmp_path / "out.jsonl")) == SHARED[:200]
        assert_same(source, jsonl_by_field(tmp_path / "out.jsonl", "tenant", composite=False))
    else:
        rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
        # Typed columns, or one column of canonical JSON: the tenant is a field either way.
        tenants = [r["tenant"] if "tenant" in r else json.loads(r["metadata"])["tenant"] for r in rows]
        assert sorted(zip(tenants, [r["id"] for r in rows], strict=True)) == sorted(source)
    settled(export)
    back = write_spec(tmp_path / "back", f"""
        version: 1
        name: back
        source: {{provider: {fmt}, connection: {{path: ../out.{fmt}}}}}
        target: {pinecone_block(srv, "dst", ", namespace: '*'")}
        mapping: {{namespace: {{from: field, name: tenant}}}}
        """)
    apply_ok(back)
    assert_same(source, pinecone_by_namespace(srv, "dst"))
    settled(back)


def test_a_record_without_its_namespace_field_stops_the_plan(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    vec = [0.5] * 8
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": "r1", "vector": vec, "metadata": {"tenant": "a"}}) + "\n"
        + json.dumps({"id": "r2", "vector": vec, "metadata": {"other": 1}}) + "\n")
    spec = write_spec(tmp_path, f"""
        version: 1
        name: back
        source: {{provider: jsonl, connection: {{path: in.jsonl}}}}
        target: {pinecone_block(srv, "dst", ", namespace: '*'", )}
        mapping: {{namespace: {{from: field, name: tenant}}}}
        """)
    r = run("plan", str(spec))
    assert r.returncode == 1
    assert "VM111: record 'r2' has no metadata field 'tenant' to name its namespace" in " ".join(r.stdout.split())


def test_namespaces_renamed_between_two_namespaced_indexes(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    seed(srv, "src", {"a": SHARED[:100], "b": SHARED[:100]})
    spec = write_spec(tmp_path, f"""
        version: 1
        name: rename
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {pinecone_block(srv, "dst", ", namespace: '*'")}
        mapping: {{namespace: {{names: {{a: tenant-a}}}}}}
        """)
    apply_ok(spec)
    want = {("tenant-a" if ns == "a" else ns, rid): rec for (ns, rid), rec in pinecone_by_namespace(srv, "src").items()}
    assert_same(want, pinecone_by_namespace(srv, "dst"))
    settled(spec)
    # Renamed into a namespace the source also has: two namespaces would become one.
    spec.write_text(spec.read_text().replace("{a: tenant-a}", "{a: b}"))
    r = run("plan", str(spec))
    assert r.returncode == 1
    assert "VM110: source namespaces 'a' and 'b' both go to target namespace 'b'" in " ".join(r.stdout.split())


def test_validation_counts_per_namespace_and_id(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    """If a collision ever got past the plan and the id check (the same records in two
    namespaces, so every record matches by id), validation still fails with honest counts."""
    seed(srv, "src", {"a": SHARED, "b": SHARED}, same_records=True)
    rows = [{"id": rid, "vector": np.frombuffer(vec, dtype=np.float32).tolist(), "metadata": json.loads(meta),
             **({"text": text} if text is not None else {})}
            for (ns, rid), (vec, meta, text) in sorted(pinecone_by_namespace(srv, "src").items()) if ns == "a"]
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec_path = write_spec(tmp_path, f"""
        version: 1
        name: collided
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        """)
    spec = load_spec(spec_path, env=ENV)
    src = PineconeProvider(spec.source)
    try:
        shards = src.shards(src.inventory(), spec.strategy.shard_size)
    finally:
        src.close()
    assert [s["namespace"] for s in shards] == ["a", "b"]
    state = StateStore.open(spec.name, tmp_path / "state.db", None, create=True, redactor=spec.redactor)
    ctx = RunContext(spec=spec, state=state, round=1, stop=threading.Event())
    action = Action(id="validate.completeness", kind="validate_completeness", reason="test",
                    params={"shards": shards})
    with pytest.raises(ValidationFailed) as info:
        ValidateCompleteness().run(ctx, action)
    message = info.value.message
    assert "800 source records, 400 in the target" in message, message
    assert "'doc-0000' (namespace 'b')" in message, message
    assert info.value.result is not None and info.value.result["ok"] is False


def test_rollback_puts_each_namespace_back_as_it_was(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    """An existing target that keeps namespaces: before-images of overwritten and deleted records
    are taken and restored per (namespace, id), so namesakes in two namespaces each get their own
    record back, and what vecmig added (namespace c) is removed again."""
    seed(srv, "src", {"a": SHARED[:60], "b": SHARED[:60]})
    seed(srv, "dst", {"a": SHARED[30:90], "b": SHARED[:20]}, same_records=True)  # other values, same ids
    before = pinecone_by_namespace(srv, "dst")
    spec = write_spec(tmp_path, f"""
        version: 1
        name: into-existing
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {pinecone_block(srv, "dst", ", namespace: '*'")}
        mapping: {{namespace: {{names: {{b: c}}}}}}
        """)
    r = run("apply", str(spec), "--auto-approve", "--allow-destructive")
    assert r.returncode == 0, r.stdout + r.stderr
    # The target mirrors the source: a's 30 extra ids and b's 20 (its records went to c) are deleted.
    want = {("c" if ns == "b" else ns, rid): rec for (ns, rid), rec in pinecone_by_namespace(srv, "src").items()}
    assert_same(want, pinecone_by_namespace(srv, "dst"))
    r = run("rollback", str(spec), "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same(before, pinecone_by_namespace(srv, "dst"))


def test_from_field_survives_sigkill_and_resume(srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    """Every source batch is split into one upsert per namespace and checkpointed once all are
    acknowledged: a SIGKILL between them (some namespaces written, the batch not checkpointed)
    and the resumed apply lose and double nothing."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(600):
        ns = ("red", "green", "blue")[i % 3]  # interleaved: every batch goes to three namespaces
        rows.append({"id": f"{ns}/r{i // 3:04d}", "vector": rng.standard_normal(8).astype(np.float32).tolist(),
                     "metadata": {"tenant": ns, "n": i}, "text": f"t{i}"})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = write_spec(tmp_path, f"""
        version: 1
        name: back-killed
        source: {{provider: jsonl, connection: {{path: in.jsonl}}}}
        target: {pinecone_block(srv, "dst", ", namespace: '*', create: {dimension: 8, metric: cosine}")}
        mapping: {{namespace: {{from: field, name: tenant, composite_ids: true}}}}
        strategy: {{type: big-bang, concurrency: 1}}
        """)
    db = tmp_path / ".vecmig" / "back-killed.db"
    # Slow upserts (nothing timed is asserted): the kill lands while the batch's parts are written.
    srv.set_faults(latency_ms=300, endpoints=("upsert",))
    try:
        assert kill_at(spec, ENV, db, ("action", "copy.shard[0]"), 0.45)
        print("after the kill:", progress(db), len(pinecone_by_namespace(srv, "dst")), "records in the target")
    finally:
        srv.clear_faults()
    apply_ok(spec)
    want = {(r["metadata"]["tenant"], r["id"].split("/", 1)[1]):
            (np.asarray(r["vector"], dtype=np.float32).tobytes(), canonical_metadata({"n": r["metadata"]["n"]}),
             r["text"]) for r in rows}
    assert_same(want, pinecone_by_namespace(srv, "dst"))
    settled(spec)
