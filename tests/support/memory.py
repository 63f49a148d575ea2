"""The unit tier's harness: memory stores, a spec, a state file, and the engine called in-process.

Everything goes through the same functions the operations call (``engine/operations/``): ``load_spec_text``
→ ``refresh`` → ``planner.make_plan`` → ``executor.apply_plan`` / ``rollback.rollback``, with a
``StateStore`` on a SQLite file under the test's tmp directory. No subprocess, no server.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecmig import executor
from vecmig.actions import RunContext
from vecmig.executor import apply_plan
from vecmig.model import Action, Plan
from vecmig.planner import make_plan
from vecmig.providers.memory import store as memory
from vecmig.records import Batch
from vecmig.refresh import refresh
from vecmig.rollback import rollback
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

SOURCE, TARGET = "src", "dst"
DIM = 8


def records(n: int, *, start: int = 1, seed: int = 0, dim: int = DIM) -> Batch:
    """``n`` records with int ids from ``start`` and every value shape fidelity cares about:
    float32 edge values (-0.0, subnormals, the largest finite), metadata of each JSON type
    (1.0 stays a float, nested objects, lists), non-ASCII or missing text, some sparse values."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    if n:
        vectors[0, :3] = (-0.0, np.float32(1e-45), np.finfo(np.float32).max)
    metadata: list[dict[str, Any]] = []
    texts: list[str | None] = []
    sparse: list[Any] = []
    for i in range(n):
        meta: dict[str, Any] = {"lang": ("en", "de", "日本語")[i % 3], "year": 1990 + i % 35, "score": i / 7,
                                "whole": 1.0, "published": i % 2 == 0}
        if i % 5 == 0:
            meta["tags"] = ["a", "ü"]
        if i % 11 == 0:
            meta["nested"] = {"k": [1, {"deep": None}]}
        metadata.append(meta)
        texts.append(None if i % 13 == 0 else f"café paragraph {start + i}")
        sparse.append({"indices": [i % 17, 40], "values": [0.5, -1.25]} if i % 9 == 0 else None)
    batch = Batch(ids=list(range(start, start + n)), vectors=vectors, metadata=metadata, texts=texts)
    batch.extra["sparse"] = sparse
    return batch


def spec_text(strategy: str = "big-bang", *, target_connection: dict[str, Any] | None = None,
              alias: str | None = "docs_live", batch_size: int = 250, shard_size: int = 1000,
              concurrency: int = 1, extra: str = "") -> str:
    conn = {"name": TARGET, **(target_connection or {})}
    alias_line = f"\n  alias: {alias}" if alias and strategy == "blue-green" else ""
    return textwrap.dedent(f"""\
        version: 1
        name: unit
        state: {{path: state.db}}
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target:
          provider: memory
          connection: {json.dumps(conn)}
          collection: docs_v2""") + alias_line + textwrap.dedent(f"""
        strategy: {{type: {strategy}, batch_size: {batch_size}, concurrency: {concurrency}, shard_size: {shard_size}}}
        """) + extra


@dataclass
class Harness:
    tmp: Path
    states: list[StateStore] = field(default_factory=list)

    @property
    def source(self) -> memory.MemoryStore:
        return memory.get(SOURCE)

    @property
    def target(self) -> memory.MemoryStore:
        return memory.get(TARGET)

    def seed(self, n: int = 2500, **kw: Any) -> Batch:
        batch = records(n, **kw)
        self.source.seed("docs", batch)
        return batch

    def spec(self, strategy: str = "big-bang", **kw: Any) -> Spec:
        return load_spec_text(spec_text(strategy, **kw), file="spec.yaml", base_dir=self.tmp)

    def state(self, spec: Spec, *, create: bool) -> StateStore | None:
        st = StateStore.open(spec.name, spec.state_path, spec.state_url, create=create, redactor=spec.redactor)
        if st is not None:
            self.states.append(st)
        return st

    def plan(self, spec: Spec) -> Plan:
        """What ``vecmig plan`` computes: read-only, no state created."""
        return make_plan(spec, self.state(spec, create=False), refresh(spec))

    def apply(self, spec: Spec, **kw: Any) -> dict[str, Any]:
        """What ``vecmig apply SPEC --auto-approve`` runs (without the lock and the console)."""
        state = self.state(spec, create=True)
        assert state is not None
        return apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve", **kw)

    def rollback(self, spec: Spec) -> int:
        state = self.state(spec, create=False)
        assert state is not None, "nothing was applied"
        return rollback(spec, state, approval="auto-approve")

    def statuses(self, spec: Spec) -> dict[str, str]:
        state = self.state(spec, create=False)
        assert state is not None
        return {a["action_id"]: a["status"] for a in state.all_actions()}

    def close(self) -> None:
        for st in self.states:
            st.close()


def same(a: memory.MemoryStore, a_coll: str, b: memory.MemoryStore, b_coll: str) -> None:
    """Both collections hold exactly the same records: ids with their type, float32 bits,
    metadata types, text and sparse values."""
    left, right = a.snapshot(a_coll), b.snapshot(b_coll)
    assert left.keys() == right.keys(), (f"missing {sorted(left.keys() - right.keys(), key=str)[:5]}, "
                                         f"extra {sorted(right.keys() - left.keys(), key=str)[:5]}")
    differ = [k for k in left if left[k] != right[k]]
    assert not differ, f"{len(differ)} record(s) differ, e.g. {differ[:5]}"


class StopAfter:
    """A reporter that asks the run to stop (as SIGINT does: ``ctx.stop``) after ``batches``
    acknowledged batches; :func:`capture_context` hands it the executor's RunContext."""

    def __init__(self, batches: int) -> None:
        self.left = batches
        self.ctx: RunContext | None = None
        self.notes: list[str] = []

    def start(self, action: Action, total: int, done: int) -> None: ...

    def advance(self, action: Action, records: int) -> None:
        self.left -= 1
        if self.left <= 0 and self.ctx is not None:
            self.ctx.stop.set()

    def finish(self, action: Action, status: str, detail: str = "") -> None: ...

    def note(self, message: str) -> None:
        self.notes.append(message)


@contextmanager
def capture_context(monkeypatch: pytest.MonkeyPatch, reporter: StopAfter) -> Iterator[None]:
    """Give ``reporter`` the RunContext ``apply_plan`` makes, so it can set ``ctx.stop``."""
    real = RunContext

    def make(*args: Any, **kw: Any) -> RunContext:
        ctx = real(*args, **kw)
        reporter.ctx = ctx
        return ctx

    with monkeypatch.context() as m:
        m.setattr(executor, "RunContext", make)
        yield


# ---- golden plans ------------------------------------------------------------------------------

UPDATE_ENV = "VECMIG_UPDATE_GOLDENS"


def normalised(plan_json: str) -> str:
    """A plan's JSON without what differs between runs for reasons outside the plan: the state
    lineage (a fresh uuid per state store), the tool version, and the checksum over both."""
    body = json.loads(plan_json)
    body.pop("checksum", None)
    body["tool_version"] = "<version>"
    if body["state"]["lineage"] is not None:
        body["state"]["lineage"] = "<lineage>"
    return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
