"""What every action kind sees while it runs, and the interface it implements.

Each kind is one class with ``run`` and, right next to it, ``undo`` (its inverse): the
executor is only a dispatcher over kinds (SQLMesh's evaluator visiting plan stages).
``inverse`` turns a recorded action into the action that undoes it (kind ``undo``, whose run
calls this kind's ``undo``), so rollback runs through the same dispatcher as apply
(Alembic's ``reverse()``: an inverse is an action like any other).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from vecmig.model import Action
from vecmig.providers import Provider, provider_class
from vecmig.spec import Spec, StoreSpec
from vecmig.state.rows import ActionRow
from vecmig.state.store import StateStore


class Reporter(Protocol):
    def start(self, action: Action, total: int, done: int) -> None: ...
    def advance(self, action: Action, records: int) -> None: ...
    def finish(self, action: Action, status: str, detail: str = "") -> None: ...
    def note(self, message: str) -> None: ...


class SilentReporter:
    def start(self, action: Action, total: int, done: int) -> None: ...
    def advance(self, action: Action, records: int) -> None: ...
    def finish(self, action: Action, status: str, detail: str = "") -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunContext:
    spec: Spec
    state: StateStore
    round: int
    reporter: Reporter = field(default_factory=SilentReporter)
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by rollback when the target collection itself will be dropped, so record-level
    # undo of the copies is skipped (dropping is the undo).
    target_will_be_dropped: bool = False
    # Seconds spent per phase of the copy loop, summed over shards (profiling and benchmarks).
    timings: dict[str, float] = field(default_factory=dict)
    _timings_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spent(self, phase: str, seconds: float) -> None:
        with self._timings_lock:
            self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def provider(self, store: StoreSpec) -> Provider:
        p = provider_class(store.provider)(store)
        p.connect()
        return p

    def source(self) -> Provider:
        return self.provider(self.spec.source)

    def target(self) -> Provider:
        return self.provider(self.spec.target)


class ActionKind:
    kind: ClassVar[str]

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        raise NotImplementedError

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        """Reverse a done or partly done run of this action; must be idempotent."""

    def inverse(self, action: Action, round_no: int) -> Action:
        """The action that undoes ``action`` of round ``round_no``: kind ``undo``, its params
        naming the original (run reads it back from state, as checked by the audit chain), its
        reason how it is undone. Every recorded action has one, even when its ``undo`` has
        nothing to do, so rollback marks it rolled back."""
        return Action(id=action.id, kind="undo", reason=action.reverse,
                      params={"action": action.id, "kind": action.kind, "round": round_no},
                      reversible=False, reverse="an undo is not undone")
