"""Send queries to one store at a given concurrency and time each answer.

Each worker thread opens its own provider (connections are per thread, as the copy's
workers do) and keeps it for every query it sends; all are closed at the end. A transient
error is retried like any provider call (its wait counts in the latency: readers wait too); a
terminal one is kept as the query's error, so an error rate can be measured and gated
instead of the run stopping at the first failed query.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecmig.errors import VecmigError
from vecmig.filters import Filter
from vecmig.providers.base import Provider
from vecmig.retry import with_retries
from vecmig.search import Hit


@dataclass(frozen=True)
class Call:
    vector: np.ndarray
    k: int
    filter: Filter | None = None


@dataclass
class Answer:
    hits: list[Hit] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def run_queries(open_provider: Callable[[], Provider], calls: Sequence[Call], *, concurrency: int,
                stop: threading.Event | None = None,
                on_answer: Callable[[int, Answer], None] | None = None) -> list[Answer]:
    """One :class:`Answer` per call, in the calls' order. ``stop`` set: calls not yet sent are
    answered with the error "not sent (stopped)"; ``on_answer`` sees each answer as it comes."""
    answers: list[Answer] = [Answer() for _ in calls]
    local = threading.local()
    opened: list[Provider] = []
    lock = threading.Lock()

    def provider() -> Provider:
        p = getattr(local, "provider", None)
        if p is None:
            p = open_provider()
            local.provider = p
            with lock:
                opened.append(p)
        return p

    def one(i: int) -> None:
        call = calls[i]
        if stop is not None and stop.is_set():
            answers[i] = Answer(error="not sent (stopped)")
            return
        try:
            p = provider()  # opened before the clock starts: a connect is not a query's latency
        except VecmigError as e:
            answers[i] = Answer(error=e.one_line())
            if on_answer is not None:
                on_answer(i, answers[i])
            return
        started = time.perf_counter()
        try:
            hits = with_retries(lambda: p.query(call.vector, call.k, call.filter), budget=60.0)
            answers[i] = Answer(hits=hits, seconds=time.perf_counter() - started)
        except VecmigError as e:
            answers[i] = Answer(seconds=time.perf_counter() - started, error=e.one_line())
        if on_answer is not None:
            on_answer(i, answers[i])

    try:
        workers = max(1, min(int(concurrency), len(calls) or 1))
        if workers == 1:
            for i in range(len(calls)):
                one(i)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecmig-query") as pool:
                list(pool.map(one, range(len(calls))))
    finally:
        for p in opened:
            _close(p)
    return answers


def _close(p: Any) -> None:
    with contextlib.suppress(Exception):  # closing every other session matters more than one failure
        p.close()
