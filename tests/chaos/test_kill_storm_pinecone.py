"""50 SIGKILLs across one long pgvector → Pinecone apply, each followed by `apply` again; then a
last apply completes, and every record in the index equals the source (ids, float32 bits,
metadata, text), nothing is doubled or extra, the audit chain verifies, no lock is left, and
the plan says "No changes".

The local Pinecone server runs in its own process for the whole storm: only vecmig is killed,
so the index keeps what was acknowledged (and whatever was in flight when the client died).
Its upserts are slowed by a few tens of ms, so that requests stay in flight for a while, and a
new index takes a moment to become ready, so that a kill can land while vecmig waits for it.

Shards are as small as the spec allows (1000 records: one engine batch, one upsert request;
two shards copy at a time), so the copy checkpoints often. Before each apply the storm picks
what its kill waits for:

* ``start-up``: a random moment in the first 1.6 s (imports, spec, refresh, the first plan);
* ``planning``: the apply holding the lock, refreshing and planning, before its run starts;
* ``create``: the create action running (the index is being created or is not ready yet);
* ``checkpoint``: the first checkpoint this apply commits, plus a jitter (lands between
  upserts, or with the next shards' requests in flight); these kills carry the copy forward;
* ``in-flight``: the first or second upsert request of this apply reaching the server, plus
  a few ms (the request is still being served);
* ``validate``: the completeness validation running, plus a jitter well short of its end.

While records remain, a kill waits for a checkpoint only when the copy is behind a schedule
that ends it after about COPY_KILLS mid-copy kills; once it is done, kills go to validation,
planning and start-up, so that the migration is never finished before the 50th kill. Where
each kill really landed is read from the state (and the server's request counters) just
before the signal, and printed (run with ``-s``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pinecone import Pinecone

from tests.chaos.storm import Aim, AimedReport, Watch, action_status, aimed_storm, assert_settled
from tests.pinecone_local import PineconeLocal, SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.specs import write_spec
from tests.test_e2e_pinecone import (
    API_KEY,
    PG_SOURCE,
    assert_same_records,
    make_source,
    pc_env,
    pg_records,
    pinecone_block,
    pinecone_records,
)

KILLS = int(os.environ.get("VECMIG_CHAOS_KILLS", "50"))
SEED = int(os.environ.get("VECMIG_CHAOS_SEED", "7"))
RECORDS = 20_000
DIM = 48
SHARD = 1000  # records per shard (the least allowed): one engine batch, one upsert request
UPSERT_LATENCY_MS = 40
READY_DELAY_S = 0.6
COPY_KILLS = 28  # kills aimed mid-copy (checkpoint, in-flight)
START_UP_SHARE = 0.2  # of the kills while records remain: start-up and planning
DEADLINE = 20.0  # seconds after the spawn: the kill goes then if its aim's moment has not come (a
# loaded machine takes well over 6 s to reach the copy: kills that should land mid-copy landed in start-up)
INDEX = "docs-storm"


@pytest.fixture(scope="module")
def server() -> Iterator[SpawnedPineconeLocal]:
    with PineconeLocal.spawn(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def srv(server: SpawnedPineconeLocal) -> Iterator[SpawnedPineconeLocal]:
    server.reset()
    yield server
    server.reset()


def upserts(srv: SpawnedPineconeLocal) -> tuple[int, int]:
    """Upsert requests that reached the server, and those of them still unanswered."""
    stats = srv.stats()
    arrived = int(stats["requests"].get("upsert", 0))
    return arrived, arrived - sum(stats["responses"].get("upsert", {}).values())


class Aims:
    """The kill points of this storm (see the module docstring). Aims that wait for something
    have a deadline, so that no apply can run to its end because its moment never came."""

    def __init__(self, srv: SpawnedPineconeLocal, db: Path) -> None:
        self.srv = srv
        self.db = db

    def start_up(self, rng: random.Random, latest: float = 1.6) -> Aim:
        at = rng.uniform(0.02, latest)  # a resumed apply starts copying after ~1.1-1.6 s here
        return Aim("start-up", lambda w: w.elapsed() >= at)

    def planning(self) -> Aim:
        return Aim("planning", lambda w: w.phase() == "planning", jitter=(0.0, 0.05), deadline=DEADLINE)

    def create(self) -> Aim:
        return Aim("create", lambda w: w.phase() == "create", jitter=(0.0, READY_DELAY_S * 0.8), deadline=DEADLINE)

    def checkpoint(self) -> Aim:
        return Aim("checkpoint", lambda w: w.done() > w.done_at_start, jitter=(0.0, 0.12), deadline=DEADLINE)

    def in_flight(self, rng: random.Random, done: int) -> Aim:
        arrived, _ = upserts(self.srv)
        shards_left = -(-(RECORDS - done) // SHARD)  # one upsert request per shard
        nth = arrived + rng.randint(1, max(1, min(2, shards_left)))

        def reached(w: Watch) -> bool:
            return upserts(self.srv)[0] >= nth

        return Aim("in-flight", reached, jitter=(0.0, UPSERT_LATENCY_MS / 1000 * 0.6), deadline=DEADLINE)

    def validate(self) -> Aim:
        # Validating 20,000 records takes ~3 s here: the kill comes well before its end.
        return Aim("validate", lambda w: w.phase() == "validate", jitter=(0.05, 0.8), deadline=DEADLINE)

    def choose(self, rng: random.Random, report: AimedReport, done: int) -> Aim:
        if report.cycles == 1:
            return self.start_up(rng, latest=1.0)  # before any state exists
        if action_status(self.db, "create_collection.target") != "done" and "create" not in report.by_aim():
            return self.create()
        pick = rng.random()
        if done >= RECORDS:  # copied: validation (never to its end) and start-up until the storm is over
            return self.validate() if pick < 0.5 else self.planning() if pick < 0.65 else self.start_up(rng)
        if pick < START_UP_SHARE:
            return self.planning() if pick < START_UP_SHARE / 3 else self.start_up(rng)
        # Mid-copy kills: a kill waits for a checkpoint (carrying the copy forward) whenever
        # the copy is behind a schedule that ends it after about COPY_KILLS mid-copy kills,
        # whatever the machine's speed; otherwise it lands with upserts in flight.
        aimed = report.by_aim()
        copy_kills = aimed.get("checkpoint", 0) + aimed.get("in-flight", 0)
        if done / RECORDS < (copy_kills + 1) / COPY_KILLS or rng.random() < 0.1:
            return self.checkpoint()
        return self.in_flight(rng, done)


def test_storm_pgvector_to_pinecone(pg_db: str, srv: SpawnedPineconeLocal, tmp_path: Path) -> None:
    make_source(pg_db, "docs", RECORDS, DIM, seed=SEED)
    spec = write_spec(tmp_path, f"""
        version: 1
        name: storm-pc
        source: {PG_SOURCE}
        target: {pinecone_block(srv, INDEX, ", create: {metric: cosine}")}
        strategy: {{type: big-bang, batch_size: {SHARD}, concurrency: 2, shard_size: {SHARD}}}
        """)
    env = pc_env(pg_db)
    db = tmp_path / ".vecmig" / "storm-pc.db"
    srv.set_faults(latency_ms=UPSERT_LATENCY_MS, endpoints=["upsert"])
    srv.set_ready_delay(READY_DELAY_S)
    aims = Aims(srv, db)

    def detail() -> str:
        return "upsert in flight" if upserts(srv)[1] else "between upserts"

    t0 = time.monotonic()
    report = aimed_storm(spec, env, db, KILLS, SEED, aims.choose, detail=detail,
                         logs=tmp_path / "logs", budget=420)
    print(f"\npgvector→Pinecone storm: {report.summary()}")
    for i, x in enumerate(report.landings, 1):
        print(f"  kill {i:2d}: aimed {x.aim:<10} landed {x.phase:<32} after {x.seconds:5.2f}s, "
              f"checkpointed {x.done_before:,} → {x.done_at_kill:,}")
    assert report.kills == KILLS, report.summary()
    assert report.finished_before_kill == 0, \
        f"an apply ended before its kill point, so later kills hit applies with nothing left to do: {report.summary()}"
    # The kills spread over the phases (a storm that degenerated into one kind would say little).
    phases = report.by_phase()
    copy = sum(v for k, v in phases.items() if k.startswith("copy"))
    early = phases.get("start-up", 0) + phases.get("planning", 0)
    assert copy >= 15 and early >= 3 and phases.get("validate", 0) >= 1, report.summary()

    final = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "Apply complete" in final.stdout, final.stdout  # the storm left the migration unfinished
    written = srv.stats()["vectors_upserted"]
    srv.clear_faults()

    want, got = pg_records(pg_db, "docs"), pinecone_records(srv, INDEX)
    assert len(want) == RECORDS
    assert_same_records(want, got)  # same ids, vector bits, metadata and text; listing saw no id twice
    with Pinecone(api_key=API_KEY, host=srv.url) as pc, pc.Index(host=pc.indexes.describe(INDEX).host) as idx:
        stats = idx.describe_index_stats()
    assert stats.total_vector_count == RECORDS, f"{stats.total_vector_count} records in the index"
    assert set(stats.namespaces) <= {"", "__default__"}, f"records outside the default namespace: {stats.namespaces}"
    print(f"  {written:,} records written for {RECORDS:,} ({written - RECORDS:,} rewritten after kills)")
    assert_settled(spec, env, db)
    print(f"  storm {report.seconds:.1f}s, whole test {time.monotonic() - t0:.1f}s after the source was made")
