"""A record with sparse values reaches a target without them only through its own upsert, and
the copy is not the only path that writes: strategy cdc on a source without a change feed
catches up by record-level diffs (``catch_up_diff``). Sparse values written to the source while
the snapshot copy runs must stop the apply, naming the record, in parquet as in pgvector (the
contract suite's ``test_sparse_values_are_refused_where_not_kept`` holds every store to it).
Before parquet's upsert refused them, the record was written without its sparse values, the next
diff found it different again, and the apply spun through 1000 passes to end on "the source
changes faster than it can be caught up", the target holding the stripped record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.support.memory import records
from vecmig.errors import TerminalError
from vecmig.executor import apply_plan
from vecmig.model import Action
from vecmig.planner import make_plan
from vecmig.providers.memory import store as memory
from vecmig.refresh import refresh
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore


class WriterDuringCopy:
    """A reporter that, after the first acknowledged batch, writes a record with sparse values
    to the source: what a live writer does while the snapshot copy runs."""

    def __init__(self, source: memory.MemoryStore) -> None:
        self.source = source
        self.written = False

    def start(self, action: Action, total: int, done: int) -> None: ...

    def advance(self, action: Action, records_done: int) -> None:
        if not self.written:
            late = records(1, start=10_000)
            late.extra["sparse"] = [{"indices": [3], "values": [0.5]}]
            self.source.seed("docs", late)
            self.written = True

    def finish(self, action: Action, status: str, detail: str = "") -> None: ...

    def note(self, message: str) -> None: ...


def test_sparse_values_written_during_the_copy_stop_the_catch_up(tmp_path: Path) -> None:
    source = memory.get("sparse-late-src")
    first = records(40)
    first.extra["sparse"] = [None] * 40  # the snapshot holds no sparse values: the copy passes
    source.seed("docs", first)
    text = json.dumps({
        "version": 1, "name": "late", "state": {"path": "state.db"},
        "source": {"provider": "memory", "connection": {"name": "sparse-late-src"}, "collection": "docs"},
        "target": {"provider": "parquet", "connection": {"path": "out.parquet"}},
        "strategy": {"type": "cdc", "batch_size": 10, "max_lag": 0},
    })
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
    assert state is not None
    reporter = WriterDuringCopy(source)
    try:
        with pytest.raises(TerminalError, match="record 10000 has sparse values, which parquet cannot store"):
            apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve",
                       reporter=reporter)  # type: ignore[arg-type]
    finally:
        state.close()
        source.collections.clear()
    assert reporter.written
    out = tmp_path / "out.parquet"
    ids: list[Any] = pq.read_table(out).column("id").to_pylist() if out.exists() else []
    assert 10000 not in ids, "the record was written without its sparse values"
