"""Everything apply needs is frozen into the plan's action parameters, never re-read from the spec.

A saved plan is applied with a spec whose strategy and validate values were changed after
planning: the batch sizes, workers and shard sizes the stores see are the plan's.
"""

from __future__ import annotations

import ast
import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.memory import Harness, same
from vecmig import planfile
from vecmig.actions.params import (
    CONCURRENCY,
    CatchUpDiffParams,
    CatchUpParams,
    CopyShardParams,
    DeleteExtraParams,
    ValidateCompletenessParams,
)
from vecmig.executor import apply_plan
from vecmig.model import Plan
from vecmig.providers.memory.provider import MemoryProvider
from vecmig.records import Batch

ENGINE = Path(__file__).resolve().parents[2] / "engine"
WAIT_S = 20.0  # only how long a broken barrier takes to fail the test; nothing is timed


def saved(h: Harness, plan: Plan) -> Plan:
    """The plan as ``apply PLANFILE`` reads it back."""
    path = h.tmp / "plan.json"
    planfile.save(plan, path, h.tmp)
    return planfile.open_saved(path).plan


def test_apply_uses_the_plans_batch_size_and_workers_not_the_live_specs(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.seed(2000)
    spec = h.spec(batch_size=250, shard_size=1000, concurrency=2)  # 2 shards of 4 batches
    plan = saved(h, h.plan(spec))
    # Changed after planning: apply must not see any of it.
    live = dataclasses.replace(spec, strategy=dataclasses.replace(spec.strategy, batch_size=7, concurrency=1,
                                                                  shard_size=300),
                               validate=dataclasses.replace(spec.validate, checksums=False))
    upserts: list[int] = []
    scans: list[int] = []
    both_shards = threading.Barrier(2, timeout=WAIT_S)  # breaks unless two shards copy at once
    first_write: set[str] = set()
    lock = threading.Lock()
    real_upsert, real_scan = MemoryProvider.upsert, MemoryProvider.scan

    def upsert(self: MemoryProvider, batch: Batch) -> None:
        me = threading.current_thread().name
        with lock:
            upserts.append(len(batch))
            wait = me not in first_write
            first_write.add(me)
        if wait:
            both_shards.wait()
        real_upsert(self, batch)

    def scan(self: MemoryProvider, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Any:
        with lock:
            scans.append(batch_size)
        return real_scan(self, shard, cursor, batch_size)

    monkeypatch.setattr(MemoryProvider, "upsert", upsert)
    monkeypatch.setattr(MemoryProvider, "scan", scan)
    state = h.state(live, create=True)
    assert state is not None
    apply_plan(live, plan, state, approval="saved-plan")
    assert upserts == [250] * 8, "every copy batch has the plan's size"
    assert scans and set(scans) == {250}, "copy and validation read in the plan's batches"
    assert len(first_write) == 2, "two shards were copied at once: the plan's concurrency, not the live 1"
    same(h.source, "docs", h.target, "docs_v2")
    result = state.action(plan.round, "validate.completeness")
    assert result is not None and result["status"] == "done"


def test_the_plan_shows_what_apply_will_use(h: Harness) -> None:
    h.seed(1500)
    plan = h.plan(h.spec(batch_size=250, shard_size=1000, concurrency=3))
    copies = [CopyShardParams.from_json(a.params) for a in plan.actions if a.kind == "copy_shard"]
    assert [(p.batch_size, p.concurrency) for p in copies] == [(250, 3), (250, 3)]
    check = next(a for a in plan.actions if a.kind == "validate_completeness")
    v = ValidateCompletenessParams.from_json(check.params)
    assert (v.batch_size, v.concurrency, v.shard_size, v.checksums) == (250, 3, 1000, True)


def test_a_plan_saved_before_the_keys_were_frozen_applies_with_the_defaults(h: Harness) -> None:
    h.seed(1200)
    spec = h.spec(batch_size=250, shard_size=1000, concurrency=2)
    plan = h.plan(spec)
    new_keys = {"concurrency", "shard_size"}
    old = dataclasses.replace(plan, actions=tuple(
        dataclasses.replace(a, params={k: v for k, v in a.params.items()
                                       if k not in new_keys and not (k == "batch_size" and a.kind != "copy_shard")})
        for a in plan.actions))
    check = next(a for a in old.actions if a.kind == "validate_completeness")
    assert ValidateCompletenessParams.from_json(check.params).concurrency == CONCURRENCY
    state = h.state(spec, create=True)
    assert state is not None
    apply_plan(spec, old, state, approval="auto-approve")
    same(h.source, "docs", h.target, "docs_v2")


@pytest.mark.parametrize("params", [
    CopyShardParams(shard={"lo": 1, "hi": 9}, index=2, before_images=True, fresh_target=False, batch_size=10,
                    concurrency=3, ids=[1, "a"]),
    CopyShardParams(shard=None, index=0),
    DeleteExtraParams(before_images=True, batch_size=5, ids=[["ns", 1]]),
    DeleteExtraParams(),
    ValidateCompletenessParams(shards=[None], checksums=False, batch_size=9, concurrency=2, shard_size=7),
    CatchUpParams(feed="f", batch_size=3, max_lag=0, max_lag_seconds=1.5, freeze_writes=True, closed_by="x"),
    CatchUpDiffParams(shards=[{"lo": 0}], batch_size=4, max_lag=2, passes=1, concurrency=5, shard_size=6),
    CatchUpDiffParams(shards=[]),
])
def test_params_round_trip_through_the_plans_json(params: Any) -> None:
    assert type(params).from_json(params.to_json()) == params
    assert ("ids" in params.to_json()) == (getattr(params, "ids", None) is not None)


def _spec_reads(path: Path) -> list[str]:
    """``<...>spec.strategy`` / ``.validate`` / ``.cost`` attribute reads in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Attribute) and node.attr in ("strategy", "validate", "cost")):
            continue
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
        if name.endswith("spec"):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def _function_at(path: Path, read: str) -> str:
    """The function holding the read ``file:line: ...`` reports."""
    line = int(read.split(":")[1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef) and node.lineno <= line <= (node.end_lineno or node.lineno):
            return node.name
    return ""


def test_no_action_executor_or_rollback_module_reads_the_specs_strategy_validate_or_cost() -> None:
    modules = [*sorted((ENGINE / "actions").glob("*.py")), ENGINE / "executor.py", ENGINE / "rollback.py",
               ENGINE / "schedule.py"]
    assert len(modules) > 10
    # A wave's pointer is read from the spec as target.pointer is (StoreSpec.live_pointer): its
    # resolved file and command may hold values a plan never carries; the plan holds them as written.
    allowed = {("cutover.py", "_pointer_spec")}
    reads = [r for m in modules for r in _spec_reads(m) if (m.name, _function_at(m, r)) not in allowed]
    assert not reads, "apply must read these from the plan's action params (vecmig.actions.params): " + \
        "; ".join(reads)


def test_the_check_itself_finds_such_a_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(ctx):\n    return ctx.spec.strategy.batch_size, spec.validate\n")
    assert len(_spec_reads(bad)) == 2
