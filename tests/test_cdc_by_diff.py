"""Strategy cdc on a source without a change feed (Pinecone through the local server, files):
the snapshot copy, then record-level diffs pass after pass until one finds at most max_lag
records to move, with a writer changing the source meanwhile and a SIGKILL in between."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

from pinecone import Pinecone

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import spawn, vecmig
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import API_KEY, assert_same_records, jsonl_records, pinecone_records, seed_pinecone


def test_pinecone_source_caught_up_by_diffs_under_a_writer(pinecone_srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    seed_pinecone(pinecone_srv, "live", 1500, 8, seed=5)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: live
        source: {{provider: pinecone, connection: {{api_key: "${{env:PINECONE_API_KEY}}", host: "{pinecone_srv.url}"}},
                 collection: live}}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        strategy: {{type: cdc, max_lag: 0, batch_size: 100}}
        """)
    env = {"PINECONE_API_KEY": API_KEY}
    body = json.loads(vecmig("plan", str(spec), "--json", env=env).stdout)
    kinds = [a["kind"] for a in body["actions"]]
    assert "catch_up_diff" in kinds and kinds[-1] == "validate_completeness", kinds

    stop = threading.Event()
    rng = random.Random(7)

    def writer() -> None:
        with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
            idx = pc.Index(host=pc.describe_index("live").host)
            k = 0
            while not stop.is_set():
                k += 1
                i = rng.randrange(1500)
                if k % 5 == 0:
                    idx.delete(ids=[f"doc-{i:06d}"])
                else:
                    idx.upsert(vectors=[{"id": f"doc-{i:06d}" if k % 3 else f"new-{k}",
                                         "values": [rng.random() for _ in range(8)], "metadata": {"k": k}}])
                time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    try:
        proc = spawn("apply", str(spec), "--auto-approve", env=env, cwd=tmp_path)
        time.sleep(3.0)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        time.sleep(1.0)
        stop.set()
        t.join()
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_records(pinecone_records(pinecone_srv, "live"), jsonl_records(tmp_path / "out.jsonl"))
    assert vecmig("plan", str(spec), "--detailed-exitcode", env=env).returncode == 0


def test_seconds_lag_and_freeze_need_a_feed(tmp_path: Path) -> None:
    (tmp_path / "src.jsonl").write_text(json.dumps({"id": 1, "vector": [1.0, 2.0]}) + "\n")
    for extra, key in (("max_lag: 5s", "max_lag"), ("freeze_writes: true", "freeze_writes")):
        spec = write_spec(tmp_path, f"""
            version: 1
            name: nofeed
            source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
            target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
            strategy: {{type: cdc, {extra}}}
            """)
        r = vecmig("plan", str(spec))
        assert r.returncode == 1 and key in r.stderr and "change feed" in r.stderr, r.stdout + r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
