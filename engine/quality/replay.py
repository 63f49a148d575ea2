"""A query log replayed against two stores over a window, compared as it goes.

The log is cycled (the second pass's queries are named ``<name>#2``) until the window's
duration or query count is reached, whichever comes first; queries go out in small batches
to both sides at once (:class:`vecmig.quality.shadow.Shadow`), paced to ``rate`` queries/s
when one is set. After each batch :class:`Running` holds the comparison so far (overlap,
p95 each side, errors, queries/s), which the caller shows live. ``stop`` set: the batch in
flight is answered and the replay ends (``stopped``); a window is only meaningful whole,
so the caller replays it again from the start rather than resuming.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from vecmig.providers.base import Provider
from vecmig.quality import metrics
from vecmig.quality.compare import Report, compare
from vecmig.quality.queries import Query
from vecmig.quality.runner import Answer
from vecmig.quality.shadow import NOT_SENT, Shadow
from vecmig.search import Hit

BATCH_PER_WORKER = 4  # queries per worker in one batch: small enough to pace, large enough to keep workers busy


@dataclass(frozen=True)
class Window:
    duration: float | None = None  # seconds
    queries: int | None = None
    concurrency: int = 4
    rate: float | None = None  # queries/s to each side at most


@dataclass
class Running:
    """The comparison so far."""

    done: int = 0
    overlap_sum: float = 0.0
    overlap_n: int = 0
    ms_source: list[float] = field(default_factory=list)
    ms_target: list[float] = field(default_factory=list)
    errors_source: int = 0
    errors_target: int = 0
    seconds: float = 0.0
    k: int = 0  # the largest k asked so far (what overlap@k is shown as)

    def add(self, queries: Sequence[Query], src: Sequence[Answer], tgt: Sequence[Answer]) -> None:
        for q, s, t in zip(queries, src, tgt, strict=True):
            self.done += 1
            self.k = max(self.k, q.k)
            if s.error is None and t.error is None:
                self.overlap_sum += metrics.overlap(s.hits, t.hits, q.k)
                self.overlap_n += 1
            if s.error is None:
                self.ms_source.append(s.seconds * 1000.0)
            else:
                self.errors_source += 1
            if t.error is None:
                self.ms_target.append(t.seconds * 1000.0)
            else:
                self.errors_target += 1

    @property
    def overlap(self) -> float | None:
        return self.overlap_sum / self.overlap_n if self.overlap_n else None

    def p95(self, side: str) -> float | None:
        return metrics.percentile(self.ms_source if side == "source" else self.ms_target, 95)

    def line(self) -> str:
        """One line for people: where the comparison stands."""
        ov, k = self.overlap, self.k
        ps, pt = self.p95("source"), self.p95("target")
        qps = self.done / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.done:,} queries · overlap@{k} {ov:.3f}" if ov is not None else
                f"{self.done:,} queries · overlap@{k} –") + (
            f" · p95 {_ms(ps)} source / {_ms(pt)} target · errors {self.errors_source} / {self.errors_target}"
            f" · {qps:,.0f} queries/s")


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f} ms"


@dataclass(frozen=True)
class Outcome:
    report: Report
    running: Running
    stopped: bool


def cycled(log: Sequence[Query]) -> Iterator[tuple[int, Query]]:
    """(index in the log, query) forever: the log again and again, later passes renamed."""
    n = 0
    while True:
        for i, q in enumerate(log):
            yield i, (q if n == 0 else replace(q, name=f"{q.name}#{n + 1}"))
        n += 1


def replay(open_source: Callable[[], Provider], open_target: Callable[[], Provider], log: Sequence[Query],
           window: Window, *, exact: Sequence[Sequence[Hit]] | None = None, stop: threading.Event | None = None,
           on_batch: Callable[[Running], None] | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Replay ``log`` against both sides over ``window``; ``exact`` holds each log query's
    true top-k (index-aligned with ``log``) when recall is to be measured."""
    if window.duration is None and window.queries is None:
        raise ValueError("a window needs a duration or a query count")
    per_batch = max(1, window.concurrency * BATCH_PER_WORKER)
    if window.rate is not None:
        per_batch = max(1, min(per_batch, math.ceil(window.rate / 4)))  # ~4 batches a second keeps the pace even
    sent: list[Query] = []
    where: list[int] = []
    src: list[Answer] = []
    tgt: list[Answer] = []
    running = Running()
    stopped = False
    source_of = cycled(log)
    started = clock()
    with Shadow(open_source, open_target, window.concurrency) as shadow:
        while True:
            elapsed = clock() - started
            if window.duration is not None and elapsed >= window.duration:
                break
            left = per_batch if window.queries is None else min(per_batch, window.queries - len(sent))
            if left <= 0:
                break
            if stop is not None and stop.is_set():
                stopped = True
                break
            if window.rate is not None:
                due = started + len(sent) / window.rate
                if due > clock():
                    sleep(due - clock())
            picked = [next(source_of) for _ in range(left)]
            batch = [q for _, q in picked]
            pair = shadow.ask(batch, stop)
            if any(a.error == NOT_SENT for a in (*pair.source, *pair.target)):
                stopped = True  # the stop came mid-batch: what was answered is not a whole window either
                break
            sent.extend(batch)
            where.extend(i for i, _ in picked)
            src.extend(pair.source)
            tgt.extend(pair.target)
            running.add(batch, pair.source, pair.target)
            running.seconds = clock() - started
            if on_batch is not None:
                on_batch(running)
    seconds = max(clock() - started, 1e-9)
    running.seconds = seconds
    truth = [exact[i] for i in where] if exact is not None else None
    # Both sides answered over the same window, side by side: each side's rate is queries per
    # second of that window.
    report = compare(sent, src, tgt, truth, wall_source=seconds, wall_target=seconds)
    return Outcome(report, running, stopped)
