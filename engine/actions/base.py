"""What every action kind sees while it runs, and the interface it implements.

Each kind is one class with ``run`` and, right next to it, ``undo`` (its inverse): the
executor is only a dispatcher over kinds (SQLMesh's evaluator visiting plan stages).
``inverse`` turns a recorded action into the action that undoes it (kind ``undo``, whose run
calls this kind's ``undo``), so rollback runs through the same dispatcher as apply
(Alembic's ``reverse()``: an inverse is an action like any other).
"""

from __future__ import annotations

import contextlib
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


class Closeable(Protocol):
    def close(self) -> None: ...


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
    # What an action leaves open for the actions after it (cdc: the session holding the source's
    # write freeze until the feed is closed). In-process only: a killed run's sessions end with
    # it (the server releases their locks), and a resumed run takes them again (``resume``).
    holds: dict[str, Closeable] = field(default_factory=dict)
    # How the apply was approved ("auto-approve", "yes", "saved-plan"); strategy phased stops
    # between waves unless it is "auto-approve". ``paused``: set by a wave gate, the line to show.
    approval: str = ""
    paused: str | None = None

    def hold(self, key: str, thing: Closeable) -> None:
        old = self.holds.pop(key, None)
        if old is not None and old is not thing:
            old.close()
        self.holds[key] = thing

    def release_hold(self, key: str) -> bool:
        """Close what ``key`` holds; whether anything was held."""
        thing = self.holds.pop(key, None)
        if thing is None:
            return False
        thing.close()
        return True

    def release_holds(self) -> None:
        """At the end of a run, whatever happened: every session held is closed."""
        while self.holds:
            _, thing = self.holds.popitem()
            with contextlib.suppress(Exception):  # closing the rest matters more than one failure
                thing.close()

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

    def resume(self, ctx: RunContext, action: Action) -> None:
        """Called when a run resumes a round in which this action is already done, before any
        remaining action runs: an action whose effect lives in a session (a held lock) takes
        it again here. Default: nothing to take."""

    def inverse(self, action: Action, round_no: int) -> Action:
        """The action that undoes ``action`` of round ``round_no``: kind ``undo``, its params
        naming the original (run reads it back from state, as checked by the audit chain), its
        reason how it is undone. Every recorded action has one, even when its ``undo`` has
        nothing to do, so rollback marks it rolled back."""
        return Action(id=action.id, kind="undo", reason=action.reverse,
                      params={"action": action.id, "kind": action.kind, "round": round_no},
                      reversible=False, reverse="an undo is not undone")
