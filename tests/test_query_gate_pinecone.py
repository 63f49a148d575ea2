"""validate.queries on the Pinecone pair, through the CLI, against the local Pinecone server
with the real SDK: the plan shows what the gate checks and what its queries cost; a faithful
copy passes and the pointer is repointed; a target made beforehand with another metric fails with exit
1, the pointer left alone and the report in state and in `vecmig report`; filtered queries from
a query file reach Pinecone's filter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.pinecone import API_KEY
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import pc_env, pinecone_block, seed_pinecone
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import PineconeProvider
from vecmig.spec import StoreSpec

N, DIM = 300, 16


def spec_for(pinecone_srv: SpawnedPineconeLocal, tmp_path: Path, *, metric: str | None = "cosine",
             queries: str = "{sample: 25, seed: 1, k: 10, min_overlap: 0.95, min_recall: 0.9}") -> Path:
    create = f", create: {{metric: {metric}}}" if metric else ""
    return write_spec(tmp_path, f"""
        version: 1
        name: gate-pc
        source: {pinecone_block(pinecone_srv, "docs-blue")}
        target: {pinecone_block(pinecone_srv, "docs-green", create + ", pointer: {file: live.json}")}
        strategy: {{type: blue-green, batch_size: 100}}
        validate: {{queries: {queries}}}
        """)


def test_a_faithful_copy_passes_the_gate_and_the_pointer_moves(pinecone_srv: SpawnedPineconeLocal,
                                                               tmp_path: Path) -> None:
    seed_pinecone(pinecone_srv, "docs-blue", N, DIM, seed=3)
    rng = np.random.default_rng(9)
    lines = [{"id": f"q{i}", "vector": rng.standard_normal(DIM).astype(np.float32).tolist(),
              "filter": {"year": {"$gte": 2010}}, "k": 5} for i in range(4)]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = spec_for(pinecone_srv, tmp_path, queries="{sample: 25, file: queries.jsonl, min_overlap: 0.95, "
                                                     "min_recall: 0.9}")
    env = pc_env()
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    gate = next(a for a in json.loads(r.stdout)["actions"] if a["id"] == "validate.queries")
    assert gate["reason"] == ("25 sampled + 4 file queries, k=10: overlap ≥ 0.95, recall ≥ 0.9, recall drop ≤ 0.05, "
                              "errors ≤ 0%")
    assert gate["depends_on"] == ["validate.completeness"]
    # 29 queries on each side at Pinecone's minimum of 0.25 read units (a namespace far under 1 GB),
    # plus the source read twice (sample and exact answers).
    assert gate["estimate"]["cost"]["pinecone_read_units"] > 0
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "live.json").read_text())["index"] == "docs-green"
    r = vecmig("report", str(spec), "--format", "json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["status"] == "done" and report["failures"] == []
    agg = report["report"]["aggregate"]
    assert agg["queries"] == 29 and agg["overlap"] == 1.0 and agg["recall_target"] == 1.0
    filtered = [q for q in report["report"]["queries"] if q["name"].startswith("q")]
    assert len(filtered) == 4 and all(q["filter"] == {"year": {"$gte": 2010}} and q["k"] == 5 for q in filtered)
    assert report["search_settings"]["target"]["index_type"] == "serverless"
    md = vecmig("report", str(spec), env=env)
    assert md.returncode == 0 and "**Gate: passed**" in md.stdout


def test_a_changed_metric_fails_the_gate_and_nothing_switches(pinecone_srv: SpawnedPineconeLocal,
                                                              tmp_path: Path) -> None:
    """vecmig refuses to create a target with another metric than the source's; a target made
    beforehand (here: empty, euclidean) is what the gate catches."""
    seed_pinecone(pinecone_srv, "docs-blue", N, DIM, seed=4)
    target = StoreSpec(provider="pinecone", connection={"api_key": API_KEY, "host": pinecone_srv.url},
                       collection="docs-green", pointer="/target")
    PineconeProvider(target).create_collection(CollectionSchema(dimension=DIM, metric="euclidean", id_type="text"))
    spec = spec_for(pinecone_srv, tmp_path, metric=None)
    env = pc_env()
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert any("query parity failed: overlap@10" in line and "metric=euclidean" in line for line in err), r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "live.json").exists(), "the pointer must not move after a failed gate"
    r = vecmig("state", "list", str(spec), env=env)
    assert r.returncode == 0
    report = json.loads(vecmig("report", str(spec), "--format", "json", env=env).stdout)
    assert report["status"] == "failed" and report["failures"]
    assert report["report"]["aggregate"]["overlap"] < 0.95
    assert report["search_settings"]["target"]["metric"] == "euclidean"
