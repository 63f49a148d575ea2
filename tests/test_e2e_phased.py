"""Strategy phased through the CLI: three namespaces of a Pinecone index (the local server,
the real SDK) moved wave by wave into another index.

The first apply stops after wave eu with exit 0 and says so; the second is SIGKILLed in the
middle of wave us's copy; a third (--auto-approve) resumes it and runs to the end. Every record
is then compared with the source bit for bit, per (namespace, id), and counted (nothing doubled).
Each wave repoints its tenant's pointer file. `rollback --wave last` removes exactly the last
wave's records (and its pointer); a full rollback the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

from pinecone import Pinecone

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import API_KEY, pinecone_block
from tests.test_kill_resume import kill_at, progress
from tests.test_namespace_mapping import assert_same, pinecone_by_namespace, seed

ENV = {"PINECONE_API_KEY": API_KEY}
IDS = {ns: [f"{ns}-{i:04d}" for i in range(240)] for ns in ("eu", "us", "apac")}


def run(*args: str, input: str | None = None) -> str:
    r = vecmig(*args, env=ENV, input=input)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return " ".join(out.split())


def total(srv: SpawnedPineconeLocal, index: str) -> int:
    """What the server counts, independently of how the records are listed: a doubled record shows here."""
    with Pinecone(api_key=API_KEY, host=srv.url) as pc, pc.Index(host=pc.describe_index(index).host) as idx:
        return int(idx.describe_index_stats().total_vector_count)


def test_three_namespaces_in_waves_with_a_kill_in_wave_two(pinecone_srv: SpawnedPineconeLocal,
                                                         tmp_path: Path) -> None:
    srv = pinecone_srv
    seed(srv, "src", IDS)
    source = pinecone_by_namespace(srv, "src")
    assert len(source) == 720
    spec = write_spec(tmp_path, f"""
        version: 1
        name: waves
        source: {pinecone_block(srv, "src", ", namespace: '*'")}
        target: {pinecone_block(srv, "dst", ", namespace: '*'")}
        strategy:
          type: phased
          batch_size: 40
          concurrency: 2
          rest: false
          waves:
            - {{name: eu, namespace: eu, pointer: {{file: eu-live.json}}}}
            - {{name: us, namespace: us, pointer: {{file: us-live.json}}}}
            - {{name: apac, namespace: apac, pointer: {{file: apac-live.json}}}}
        """)
    plan = run("plan", str(spec))
    assert "wave[eu].copy.shard[1]" in plan and "wave[us].approve" in plan and "wave[apac].approve" not in plan

    # 1. Not auto-approved: the first wave is copied and validated, then apply stops cleanly.
    out = run("apply", str(spec), input="yes\n")
    assert "wave eu (1 of 3) is done and validated; run `vecmig apply` again to start wave us" in out, out
    assert set(pinecone_by_namespace(srv, "dst")) == {k for k in source if k[0] == "eu"}
    # The tenant's readers follow their own pointer: switched with the wave, to its namespace.
    live = json.loads((tmp_path / "eu-live.json").read_text())
    assert (live["index"], live["namespace"]) == ("dst", "eu")
    assert not (tmp_path / "us-live.json").exists()

    # 2. The next apply goes on with wave us and is SIGKILLed in the middle of its copy.
    db = tmp_path / ".vecmig" / "waves.db"
    # Slow writes so that the kill lands while the wave's batch is in flight (pinecone packs a
    # namespace this small into one batch): sent, maybe acknowledged, never checkpointed.
    srv.set_faults(latency_ms=300, endpoints=("upsert",))
    try:
        assert kill_at(spec, ENV, db, ("action", "wave[us].copy.shard[2]"), 0.15)
    finally:
        srv.clear_faults()
    done, running = progress(db)
    assert running == {"wave[us].copy.shard[2]"} and done == 240, (done, running)  # only eu checkpointed
    landed = {k for k in pinecone_by_namespace(srv, "dst") if k[0] == "us"}
    print(f"killed in wave us: {len(landed)} of its 240 records in the target, none checkpointed")

    # 3. Resumed with --auto-approve to the end: wave eu is not copied again.
    out = run("apply", str(spec), "--auto-approve")
    assert "resuming round 1" in out and "wave[eu]" not in out.split("Apply complete")[0].split("to go")[1], out
    assert_same(source, pinecone_by_namespace(srv, "dst"))
    assert total(srv, "dst") == 720  # nothing doubled
    assert run("plan", str(spec), "--detailed-exitcode")

    # rollback --wave last: exactly wave apac's records go, the others stay as they are.
    out = run("rollback", str(spec), "--wave", "last", "--auto-approve")
    assert "wave apac" in out, out
    assert_same({k: v for k, v in source.items() if k[0] != "apac"}, pinecone_by_namespace(srv, "dst"))
    assert total(srv, "dst") == 480
    assert not (tmp_path / "apac-live.json").exists() and (tmp_path / "us-live.json").exists()

    # A full rollback removes the rest (vecmig created the index: it is dropped).
    run("rollback", str(spec), "--auto-approve")
    with Pinecone(api_key=API_KEY, host=srv.url) as pc:
        assert "dst" not in [i.name for i in pc.list_indexes()]
