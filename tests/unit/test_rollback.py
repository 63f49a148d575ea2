"""Rollback on memory → memory: exact restore, idempotence, and undoing a partial apply.

"Exactly" is the whole target store as it was: the same collections, aliases and records
(ids with their type, float32 bits, metadata types, text, sparse values).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.memory import Harness, records, same
from vecmig.actions import SilentReporter
from vecmig.errors import TerminalError
from vecmig.model import Action
from vecmig.rollback import inverses, pending_undo, rollback


def store_image(h: Harness) -> dict[str, Any]:
    return {"aliases": dict(h.target.aliases),
            "collections": {name: h.target.snapshot(name) for name in sorted(h.target.collections)}}


def seed_foreign(h: Harness) -> None:
    """A target holding records vecmig did not write: 300 the source also has (different
    values: overwritten, so before-images are kept) and 20 it has not (deleted by the copy)."""
    h.target.seed("docs_v2", records(300, start=1, seed=9))
    h.target.seed("docs_v2", records(20, start=9001, seed=9))


def test_rollback_restores_an_absent_target(h: Harness) -> None:
    h.seed(2500)
    h.target.create("docs_old", dimension=8)
    h.target.aliases["docs_live"] = "docs_old"
    before = store_image(h)
    spec = h.spec("blue-green")
    h.apply(spec)
    assert h.target.aliases["docs_live"] == "docs_v2"
    assert h.rollback(spec) == 6
    assert store_image(h) == before, "the collection is dropped and the alias points back at docs_old"


def test_rollback_restores_a_foreign_target_exactly(h: Harness) -> None:
    h.seed(2500)
    seed_foreign(h)
    before = store_image(h)
    spec = h.spec("big-bang")
    h.apply(spec)
    same(h.source, "docs", h.target, "docs_v2")
    h.rollback(spec)
    assert store_image(h) == before


def test_rollback_twice_is_idempotent(h: Harness) -> None:
    h.seed(2500)
    seed_foreign(h)
    before = store_image(h)
    spec = h.spec("big-bang")
    h.apply(spec)
    first = h.rollback(spec)
    assert first > 0
    assert h.rollback(spec) == 0, "nothing is left to undo"
    assert store_image(h) == before
    state = h.state(spec, create=False)
    assert state is not None
    assert {r["status"] for r in state.rounds()} == {"rolled_back"}
    assert [r["status"] for r in state.runs() if r["operation"] == "rollback"] == ["succeeded", "succeeded"]
    assert state.verify_chain()[0]


@pytest.mark.parametrize("target", ["absent", "foreign"])
def test_rollback_after_a_partial_apply(h: Harness, target: str) -> None:
    h.seed(2500)
    if target == "foreign":
        seed_foreign(h)
    before = store_image(h)
    with pytest.raises(TerminalError):
        h.apply(h.spec("big-bang", target_connection={"fail_after_batches": 5}))
    assert store_image(h) != before, "the partial apply wrote something"
    spec = h.spec("big-bang")
    assert h.rollback(spec) > 0
    assert store_image(h) == before


def test_apply_again_after_rollback_starts_a_new_round(h: Harness) -> None:
    h.seed(2500)
    spec = h.spec("big-bang")
    h.apply(spec)
    h.rollback(spec)
    plan = h.plan(spec)
    assert plan.round == 2 and plan.actions[0].kind == "create_collection"
    h.apply(spec)
    same(h.source, "docs", h.target, "docs_v2")


def test_rollback_runs_inverse_actions_through_the_executor(h: Harness) -> None:
    h.seed(2500)
    spec = h.spec("blue-green")
    h.apply(spec)
    state = h.state(spec, create=False)
    assert state is not None
    todo = pending_undo(state)
    steps = inverses(todo)
    assert {s.kind for s in steps} == {"undo"}
    assert [(s.params["round"], s.params["action"], s.params["kind"]) for s in steps] == \
        [(r, a.id, a.kind) for r, a, _ in todo], "newest round first, reverse plan order"
    assert [s.reason for s in steps] == [a.reverse for _, a, _ in todo]

    seen: list[tuple[str, str, str, str]] = []

    class Recording(SilentReporter):
        def finish(self, action: Action, status: str, detail: str = "") -> None:
            seen.append((action.kind, action.id, status, detail))

    assert rollback(spec, state, approval="auto-approve", reporter=Recording()) == len(steps)
    assert seen == [("undo", s.id, "rolled back", s.reason) for s in steps]
    assert {a["status"] for a in state.actions(1)} == {"rolled_back"}, "the original rows are marked"
    assert state.verify_chain()[0]
