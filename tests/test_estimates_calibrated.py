"""Estimates from past rounds: apply once, change the source, plan again; the second plan's
estimates say they come from the first round's measurements, are at most 2× wide, and are
byte-identical when planned twice from the same state.

Whether the measured time falls inside the range is printed here (``-s``) but not asserted:
tests assert behaviour, never wall-clock time (a loaded machine moves it), and the delta copy
of a later round differs in kind from round 1's full copy. The containment is measured by the
benchmarks in bench/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from vecmig.actions import Reporter, SilentReporter
from vecmig.calibrate import MODEL_BASIS
from vecmig.model import Action, Plan
from vecmig.operations.apply import ApplyRequest, ApplyResult, apply
from vecmig.operations.common import open_state
from vecmig.operations.ui import Approval
from vecmig.planner import make_plan
from vecmig.refresh import refresh
from vecmig.spec_loader import load_spec
from vecmig.state.redact import Redactor
from vecmig.state.store import StateStore

DIM = 64


class QuietUi:
    def redact_with(self, redactor: Redactor) -> None:
        pass

    def show_plan(self, plan: Plan, state: StateStore | None) -> None:
        pass

    def show_undo(self, steps: tuple[Action, ...]) -> None:
        pass

    def confirm(self, question: str) -> Approval:
        return "interactive"

    @contextmanager
    def progress(self, actions: tuple[Action, ...]) -> Iterator[Reporter]:
        yield SilentReporter()

    def say(self, line: str) -> None:
        pass


def pg_spec(tmp: Path) -> Path:
    return write_spec(tmp, """
        version: 1
        name: est
        source:
          provider: pgvector
          connection: {dsn: "${env:SOURCE_DSN}"}
          collection: docs
          fields: {id: id, vector: embedding, text: body}
        target:
          provider: pgvector
          connection: {dsn: "${env:TARGET_DSN}"}
          collection: docs_v2
          fields: {id: id, vector: embedding, text: body}
          create: {index: {type: none}}
        strategy: {type: big-bang, batch_size: 2000, concurrency: 2, shard_size: 3000}
        """)


def jsonl_spec(tmp: Path) -> Path:
    return write_spec(tmp, """
        version: 1
        name: est-jsonl
        source:
          provider: jsonl
          connection: {path: docs.jsonl}
        target:
          provider: pgvector
          connection: {dsn: "${env:TARGET_DSN}"}
          collection: docs_v2
          create: {index: {type: none}}
        strategy: {type: big-bang, batch_size: 2000, concurrency: 2, shard_size: 3000}
        """)


def write_jsonl(path: Path, n: int, *, start: int = 1, seed: int = 0, mode: str = "w") -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    with path.open(mode) as f:
        for i in range(n):
            f.write(json.dumps({"id": start + i, "vector": [float(x) for x in vectors[i]],
                                "metadata": {"lang": ("en", "de")[i % 2], "n": i}}) + "\n")


def plan_of(spec_path: Path, env: dict[str, str]) -> Plan:
    spec = load_spec(spec_path, env)
    return make_plan(spec, open_state(spec), refresh(spec))


def run_apply(spec_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ApplyResult:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return apply(ApplyRequest(spec_path, auto_approve=True), QuietUi())


def copy_range(plan: Plan) -> tuple[float, float]:
    copies = [a.estimate for a in plan.actions if a.kind == "copy_shard"]
    return sum(e.seconds_low for e in copies), sum(e.seconds_high for e in copies)


def report(label: str, previous: ApplyResult, now: ApplyResult) -> None:
    plan = now.plan
    t = plan.totals
    low, high = copy_range(plan)
    before = previous.plan.totals
    print(f"\n{label}: round {previous.plan.round} planned {before.seconds_low:.2f}-{before.seconds_high:.2f}s, "
          f"took {previous.seconds:.2f}s (copy {previous.copy_seconds:.2f}s); "
          f"round {plan.round} planned {t.seconds_low:.2f}-{t.seconds_high:.2f}s (copy {low:.2f}-{high:.2f}s), "
          f"took {now.seconds:.2f}s (copy {now.copy_seconds:.2f}s)")
    state = StateStore.open(plan.migration, Path(str(now.state_location)), None, create=False)
    assert state is not None
    actual = {r["action_id"]: r["actual_seconds"] for r in state.actions(plan.round)}
    for a in plan.actions:
        print(f"  {a.id}: {a.estimate.seconds_low}-{a.estimate.seconds_high}s from {a.estimate.basis}; "
              f"took {actual.get(a.id)}s")


def check_copy(now: ApplyResult) -> None:
    """The copy's range (its shards' estimates are shares of the copy's wall time) comes from history."""
    plan = now.plan
    low, high = copy_range(plan)
    copies = [a for a in plan.actions if a.kind == "copy_shard"]
    assert copies and all("measured" in a.estimate.basis for a in copies)
    assert high <= 2 * low + 1e-9


def check_total(now: ApplyResult) -> None:
    t = now.plan.totals
    # Kinds that ran in an earlier round are estimated from it (a delete_extra may run first now:
    # the record-level diff plans one only when there are extras).
    assert all("measured" in a.estimate.basis for a in now.plan.actions
               if a.kind in ("copy_shard", "validate_completeness")), "steps with history use it"
    assert t.seconds_high <= 2 * t.seconds_low + 1e-9


def test_pgvector_later_rounds_estimate_from_history(pg_db: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make_docs_table(pg_db, "docs", 12_000, DIM)
    env = env_for(pg_db)
    spec_path = pg_spec(tmp_path)
    first_plan = plan_of(spec_path, env)
    assert {a.estimate.basis for a in first_plan.actions} <= {MODEL_BASIS, ""}
    first = run_apply(spec_path, env, monkeypatch)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        # The source grows by a third and a tenth of it changes.
        conn.execute("INSERT INTO docs SELECT id + 50000, embedding, title, lang, year, score, published, tags, body "
                     "FROM docs WHERE id <= 4000")
        conn.execute("UPDATE docs SET score = score + 1 WHERE id % 10 = 0")
    a, b = plan_of(spec_path, env), plan_of(spec_path, env)
    assert a.to_json_text() == b.to_json_text(), "two plans from the same state must be byte-identical"
    second = run_apply(spec_path, env, monkeypatch)
    report("pgvector -> pgvector", first, second)
    assert second.plan.round == 2
    # Round 2 upserts into the table round 1 filled: its copy is round 1's rate, as upserts.
    check_copy(second)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs SELECT id + 100000, embedding, title, lang, year, score, published, tags, body "
                     "FROM docs WHERE id <= 3000")
        conn.execute("DELETE FROM docs WHERE id % 50 = 1")
    third = run_apply(spec_path, env, monkeypatch)
    report("pgvector -> pgvector", second, third)
    # Round 3: every step (delete_extra first ran in round 2) has a measured rate.
    check_copy(third)
    check_total(third)


def test_jsonl_later_rounds_estimate_from_history(pg_db: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "docs.jsonl", 6_000)
    env = env_for(pg_db)
    spec_path = jsonl_spec(tmp_path)
    first = run_apply(spec_path, env, monkeypatch)
    write_jsonl(tmp_path / "docs.jsonl", 2_000, start=20_001, seed=1, mode="a")
    a, b = plan_of(spec_path, env), plan_of(spec_path, env)
    assert a.to_json_text() == b.to_json_text(), "two plans from the same state must be byte-identical"
    second = run_apply(spec_path, env, monkeypatch)
    report("jsonl -> pgvector", first, second)
    assert second.plan.round == 2
    check_copy(second)
    write_jsonl(tmp_path / "docs.jsonl", 1_500, start=40_001, seed=2, mode="a")
    third = run_apply(spec_path, env, monkeypatch)
    report("jsonl -> pgvector", second, third)
    check_copy(third)
    check_total(third)
