"""Golden plans: one JSON file per strategy × target state, compared byte for byte.

Regenerate after an intended change with ``VECMIG_UPDATE_GOLDENS=1 pytest tests/unit`` and
review the diff of ``tests/unit/golden/`` like code. The state lineage (a fresh uuid per
store), the tool version and the checksum over them are normalised (``normalised``); every
other byte is the planner's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.memory import UPDATE_ENV, Harness, normalised, records
from vecmig.errors import TerminalError, VecmigError

GOLDEN = Path(__file__).parent / "golden"


def absent(h: Harness, strategy: str) -> None:
    """Nothing at the target: the collection is created."""


def empty(h: Harness, strategy: str) -> None:
    """The target collection exists and holds nothing (vecmig did not create it)."""
    h.target.create("docs_v2", dimension=8)


def foreign(h: Harness, strategy: str) -> None:
    """The target holds records vecmig did not write: 5 ids the source has, 5 it has not."""
    h.target.seed("docs_v2", records(5, start=1, seed=9))
    h.target.seed("docs_v2", records(5, start=9001, seed=9))


def complete(h: Harness, strategy: str) -> None:
    """An earlier round created the target and completed; nothing changed since."""
    h.apply(h.spec(strategy))


def complete_source_changed(h: Harness, strategy: str) -> None:
    """An earlier round completed; the source has gained records since."""
    h.apply(h.spec(strategy))
    h.source.seed("docs", records(10, start=5001, seed=3))


def open_round(h: Harness, strategy: str) -> None:
    """An earlier apply stopped mid-shard (a terminal fault after 6 batches): the round resumes."""
    with pytest.raises(TerminalError):
        h.apply(h.spec(strategy, target_connection={"fail_after_batches": 6}))


STATES: dict[str, Callable[[Harness, str], None]] = {
    "absent": absent,
    "empty": empty,
    "foreign": foreign,
    "complete": complete,
    "complete-source-changed": complete_source_changed,
    "open-round": open_round,
}
CASES = [(strategy, state) for strategy in ("big-bang", "blue-green") for state in STATES]


def plan_text(h: Harness, strategy: str) -> str:
    """The plan as ``vecmig plan --json`` prints it, or the one-line error planning stops with."""
    spec = h.spec(strategy)
    try:
        return h.plan(spec).to_json_text()
    except VecmigError as e:
        return f'{{"error": "{e.one_line()}"}}\n'


@pytest.mark.parametrize(("strategy", "state"), CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_golden_plan(h: Harness, strategy: str, state: str) -> None:
    h.seed(2500)
    STATES[state](h, strategy)
    first = plan_text(h, strategy)
    assert plan_text(h, strategy) == first, "the same inputs must give a byte-identical plan"
    got = normalised(first) if not first.startswith('{"error"') else first
    path = GOLDEN / f"{strategy}-{state}.json"
    if os.environ.get(UPDATE_ENV):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden plan {path.name}: run with {UPDATE_ENV}=1 to write it, then review it"
    assert got == path.read_text(), (f"the plan differs from {path.name}; if the change is intended, rerun with "
                                     f"{UPDATE_ENV}=1 and review the diff")


def test_plans_are_identical_across_fresh_stores(tmp_path: Path) -> None:
    """Two separate runs (fresh registry, fresh state file) give the same normalised plan."""
    from vecmig.providers.memory import store as memory

    texts = []
    for run in ("a", "b"):
        memory.reset()
        (tmp_path / run).mkdir()
        h = Harness(tmp_path / run)
        h.seed(2500)
        complete_source_changed(h, "blue-green")
        texts.append(normalised(plan_text(h, "blue-green")))
        h.close()
    assert texts[0] == texts[1]


def test_plan_is_read_only(h: Harness) -> None:
    h.seed(100)
    h.plan(h.spec("blue-green"))
    assert not (h.tmp / "state.db").exists(), "plan must not create state"
    assert "docs_v2" not in h.target.collections and not h.target.aliases
