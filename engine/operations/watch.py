"""watch: after a cutover, compare the live target with the old side round after round, and
switch readers back when a ``rollback_on`` trigger fires (see :mod:`vecmig.watch`).

spec → state → lock → the live cutover → queries → rounds until ``--for`` ends. Nothing to
watch (no state, no cutover, the old side decommissioned) is one line and exit 1; a trigger
that fired exits 3 (:data:`vecmig.watch.EXIT_TRIGGERED`) once readers are switched back; a
signal ends the watch after the round in flight (exit 128 + the signal's number).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from vecmig import watch as core
from vecmig.errors import Interrupted, VecmigError
from vecmig.executor import stop_on_signals
from vecmig.operations.common import load, open_state
from vecmig.operations.ui import Ui
from vecmig.spec_runs import shown
from vecmig.state.lock import Lock


@dataclass(frozen=True)
class WatchRequest:
    spec_path: Path
    duration: float  # seconds (--for)
    interval: float | None = None  # seconds between rounds; None: rollback_on.interval
    lock_timeout: float = 0.0


@dataclass(frozen=True)
class WatchResult:
    cutover: str  # the watched cutover's action id
    round: int  # its migration round
    rounds: tuple[core.Round, ...]


def watch(request: WatchRequest, ui: Ui) -> WatchResult:
    """Watch the live target for ``request.duration`` seconds; raises RollbackTriggered (exit 3)."""
    spec = load(request.spec_path, ui)
    rollback_on = spec.rollback_on
    if rollback_on is None:
        raise VecmigError("nothing to watch: the spec has no rollback_on, so nothing says when to switch back",
                          hint="add e.g. `rollback_on: {min_overlap: 0.9, max_p95_ratio: 2, max_error_rate: 0.01}`")
    why = core.searchable(spec)
    if why is not None:
        raise VecmigError(f"nothing to watch: {why}", where=spec.where("/rollback_on"),
                          hint="remove rollback_on for this pair of stores")
    state = open_state(spec)
    if state is None:
        raise VecmigError("nothing to watch: this migration was never applied (it has no state store)",
                          hint="`vecmig apply SPEC` migrates and cuts over; watch after that")
    lock = Lock(state, "watch")
    lock.acquire(timeout=request.lock_timeout)
    try:
        live = core.live_cutover(state)
        if live is None:
            raise VecmigError("nothing to watch: no cutover of this migration is live (none was made, or it was "
                              "rolled back)", hint="`vecmig apply SPEC` cuts over; watch after that")
        if core.decommissioned(state, live.round):
            raise VecmigError(f"nothing to watch: the old side {spec.source.label} was decommissioned in round "
                              f"{live.round}, so there is nothing to compare with or switch back to",
                              hint="watch before decommissioning (blue-green without strategy.decommission)")
        queries, _ = core.queries_for(spec, rollback_on.queries)
        interval = request.interval if request.interval is not None else rollback_on.interval
        triggers = ", ".join(f"{k} {v:g}" for k, v in rollback_on.triggers().items())
        ui.say(f"Watching {spec.target.label} against {spec.source.label} (cutover {live.action.id}, round "
               f"{live.round}) for {shown(request.duration)}, every {shown(interval)}: {len(queries)} queries a "
               f"round; switches back on {triggers}")
        stop = threading.Event()
        received: list[int] = []
        with stop_on_signals(stop, received):
            out = core.watch(spec, state, live, rollback_on, queries, duration=request.duration, interval=interval,
                             concurrency=rollback_on.concurrency, say=ui.say, stop=stop)
        if out.stopped:
            signum = received[0] if received else 2
            raise Interrupted(f"interrupted: the watch stopped after {len(out.rounds)} round(s); readers stay on "
                              f"{spec.target.label}", hint="run `vecmig watch` again to go on watching",
                              signum=signum)
        return WatchResult(live.action.id, live.round, out.rounds)
    finally:
        lock.release()
