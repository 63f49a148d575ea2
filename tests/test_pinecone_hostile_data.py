"""Pinecone as a source with hostile shapes, through the real CLI and the local server.

* ``namespace: "*"`` reads every namespace; ids are unique only within one, so the same id in
  two namespaces copied into one collection would land once while validation counted it twice.
  It is refused before anything is written, naming the id and the namespaces (VM110).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import API_KEY, pc_env, pinecone_block, seed_pinecone


def _same_ids_in_two_namespaces(srv: SpawnedPineconeLocal) -> None:
    # seed_pinecone numbers ids across namespaces; seeding twice gives the same ids in "a" and "b".
    seed_pinecone(srv, "shared", 40, 4, namespaces=("a",), seed=1)
    seed_pinecone(srv, "shared-b", 40, 4, namespaces=("b",), seed=2)  # (creates the index for "b" below)
    from vecmig.providers.pinecone import PineconeProvider
    from vecmig.spec import StoreSpec

    src = PineconeProvider(StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": srv.url},
                                     collection="shared-b", namespace="b"))
    dst = PineconeProvider(StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": srv.url},
                                     collection="shared", namespace="b"))
    try:
        for batch in src.scan(None, None, 100):
            dst.upsert(batch)
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize("target", ["jsonl", "parquet"])
def test_namespace_star_with_shared_ids_into_one_file_is_refused(pinecone_srv: SpawnedPineconeLocal, tmp_path: Path,
                                                                  target: str) -> None:
    _same_ids_in_two_namespaces(pinecone_srv)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-star
        source: {pinecone_block(pinecone_srv, "shared", ", namespace: '*'")}
        target: {{provider: {target}, connection: {{path: out.{target}}}}}
        strategy: {{type: big-bang, batch_size: 100}}
        validate: {{completeness: {{checksums: true}}}}
        """)
    env = pc_env()
    r = vecmig("plan", str(spec), "--json", env=env)
    body = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    codes = {w["code"] for w in body.get("warnings", [])}
    # The same id in two source namespaces is its own finding (VM110), not a repeat in the source.
    assert "VM110" in codes or "VM110" in r.stderr, r.stdout + r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "match" not in out and "VM110" in out, out
    assert "namespace 'a'" in out and "namespace 'b'" in out, out
    assert not (tmp_path / f"out.{target}").exists()


def test_namespace_star_into_namespace_star_keeps_shared_ids(pinecone_srv: SpawnedPineconeLocal,
                                                             tmp_path: Path) -> None:
    _same_ids_in_two_namespaces(pinecone_srv)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: pc-star-star
        source: {pinecone_block(pinecone_srv, "shared", ", namespace: '*'")}
        target: {pinecone_block(pinecone_srv, "shared-copy", ", namespace: '*', create: {metric: cosine}")}
        strategy: {{type: big-bang, batch_size: 100}}
        validate: {{completeness: {{checksums: true}}}}
        """)
    r = vecmig("apply", str(spec), "--auto-approve", env=pc_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "80 records match" in r.stdout, r.stdout
