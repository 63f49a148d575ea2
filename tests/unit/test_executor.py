"""The executor on memory → memory: apply, interrupt and resume, retries, terminal faults.

"Nothing lost" is the target equal to the source record for record; "nothing doubled" is
every id upserted exactly once over all the runs (``Collection.writes``): ack before
checkpoint means an interrupted batch is either checkpointed or never written.
"""

from __future__ import annotations

import pytest

from tests.support.memory import Harness, StopAfter, capture_context, same
from vecmig.actions.copy_shard import MAX_ATTEMPTS
from vecmig.errors import Interrupted, TerminalError, TransientError

FAST_RETRY = {"retry_after": 0}  # transient faults ask for no delay: the retry loop runs at once


def written_once(h: Harness) -> None:
    writes = h.target.collections["docs_v2"].writes
    doubled = {rid: n for rid, n in writes.items() if n != 1}
    assert not doubled, f"ids written more than once: {dict(list(doubled.items())[:5])}"
    assert len(writes) == len(h.source.collections["docs"].records)


@pytest.mark.parametrize("strategy", ["big-bang", "blue-green"])
def test_apply_copies_every_record_exactly(h: Harness, strategy: str) -> None:
    h.seed(2500)
    spec = h.spec(strategy, concurrency=2)
    result = h.apply(spec)
    assert result["records"] == 2500
    same(h.source, "docs", h.target, "docs_v2")
    written_once(h)
    assert set(h.statuses(spec).values()) == {"done"}
    if strategy == "blue-green":
        assert h.target.aliases == {"docs_live": "docs_v2"}
    state = h.state(spec, create=False)
    assert state is not None and state.verify_chain()[0]
    assert [r["status"] for r in state.runs()] == ["succeeded"]
    assert h.plan(spec).actions == (), "a second plan has nothing left to do"


def test_interrupt_resumes_from_the_checkpoint(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.seed(2500)
    spec = h.spec("blue-green")
    stopper = StopAfter(batches=5)  # shard 0 is 4 batches of 250: stop inside shard 1
    with capture_context(monkeypatch, stopper), pytest.raises(Interrupted, match="checkpointed"):
        h.apply(spec, reporter=stopper)
    assert len(h.target.collections["docs_v2"].records) == 5 * 250, "the batch in flight is finished, no more"
    assert "docs_live" not in h.target.aliases, "nothing switches before validation"
    state = h.state(spec, create=False)
    assert state is not None
    assert state.runs()[-1]["status"] == "interrupted"
    assert state.cursor(1, "copy.shard[1]")["records_done"] == 250

    plan = h.plan(spec)
    assert plan.round == 1 and plan.notes[0].startswith("resuming round 1")
    assert [(a.id, a.status) for a in plan.actions if a.kind == "copy_shard"] == [
        ("copy.shard[1]", "resume"), ("copy.shard[2]", "planned")]
    h.apply(spec)
    same(h.source, "docs", h.target, "docs_v2")
    written_once(h)
    assert h.target.aliases == {"docs_live": "docs_v2"}


def test_terminal_fault_mid_shard_then_resume(h: Harness) -> None:
    h.seed(2500)
    broken = h.spec("big-bang", target_connection={"fail_after_batches": 6})  # one shard at a time
    with pytest.raises(TerminalError, match=r"failed after 6 acknowledged batch\(es\).*fail_after_batches"):
        h.apply(broken)
    assert h.target.stats.acked_batches == 6
    statuses = h.statuses(broken)
    assert (statuses["copy.shard[0]"], statuses["copy.shard[1]"]) == ("done", "failed")
    state = h.state(broken, create=False)
    assert state is not None
    run = state.runs()[-1]
    assert run["status"] == "failed" and "fail_after_batches" in run["error"]

    repaired = h.spec("big-bang", concurrency=2)
    h.apply(repaired)
    same(h.source, "docs", h.target, "docs_v2")
    written_once(h)
    assert set(h.statuses(repaired).values()) == {"done"}


def test_transient_faults_are_retried_from_the_checkpoint(h: Harness) -> None:
    h.seed(2500)
    stopper = StopAfter(batches=10**6)  # never stops: collects the retry notes
    spec = h.spec("big-bang", target_connection={"transient_every": 4, **FAST_RETRY})
    h.apply(spec, reporter=stopper)
    same(h.source, "docs", h.target, "docs_v2")
    written_once(h)
    # 10 batches acknowledged; calls 4, 8 and 12 failed and were tried again: 13 calls.
    stats = h.target.stats
    assert (stats.acked_batches, stats.transient_faults, stats.upsert_calls) == (10, 3, 13)
    retries = [n for n in stopper.notes if "retrying" in n]
    assert len(retries) == 3 and "injected fault transient_every" in retries[0]


def test_transient_faults_without_progress_give_up(h: Harness) -> None:
    h.seed(1000)  # one shard: it runs alone, so the count below is exact
    spec = h.spec("big-bang", target_connection={"transient_every": 1, **FAST_RETRY})
    with pytest.raises(TransientError, match="transient_every"):
        h.apply(spec)
    # The shard tried once and retried until MAX_ATTEMPTS failures in a row, then the action failed.
    assert h.target.stats.upsert_calls == MAX_ATTEMPTS + 1
    assert h.target.stats.acked_batches == 0
    assert h.statuses(spec)["copy.shard[0]"] == "failed"


def test_terminal_fault_on_a_record_fails_the_action_naming_it(h: Harness) -> None:
    h.seed(2500)
    spec = h.spec("big-bang", target_connection={"terminal_on_id": 1600})
    with pytest.raises(TerminalError) as e:
        h.apply(spec)
    assert e.value.one_line().startswith("record 1600 rejected by memory store 'dst'")
    state = h.state(spec, create=False)
    assert state is not None
    failed = {a["action_id"]: a["error"] for a in state.all_actions() if a["status"] == "failed"}
    assert list(failed) == ["copy.shard[1]"] and "record 1600" in failed["copy.shard[1]"]
    # Shard 1 checkpointed its batches before the one holding 1600 (1501-1750): 1001-1500.
    assert state.cursor(1, "copy.shard[1]")["records_done"] == 500
    held = h.target.collections["docs_v2"].records
    assert 1500 in held and 1501 not in held and 1600 not in held
    assert h.target.stats.terminal_faults == 1, "a terminal fault is not retried"
