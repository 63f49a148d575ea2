"""Shadow reads: the same queries sent to two stores at the same time, each at the concurrency asked.

Both sides run together, each on its own pool of workers, so each answers under the same
outside load, as readers of both would see during a parallel run. A :class:`Side` keeps its
workers and their connections (one provider per worker thread, as the copy's workers do)
from one batch of queries to the next: a replay sends thousands of small batches, and a new
connection per batch would be measured as the store's latency. Errors are kept per query
(a transient one is retried first, its wait counted: readers wait too), as
:func:`vecmig.quality.runner.run_queries` keeps them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from vecmig.errors import VecmigError
from vecmig.providers.base import Provider
from vecmig.quality.queries import Query
from vecmig.quality.runner import Answer, Call
from vecmig.retry import with_retries

NOT_SENT = "not sent (stopped)"


def calls(queries: Sequence[Query]) -> list[Call]:
    return [Call(q.array(), q.k, q.filter) for q in queries]


class Side:
    """One store's workers: ``concurrency`` threads, each with its own provider, until closed."""

    def __init__(self, opener: Callable[[], Provider], concurrency: int, name: str) -> None:
        self.opener = opener
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix=f"vecmig-{name}")
        self.local = threading.local()
        self.opened: list[Provider] = []
        self.lock = threading.Lock()

    def _provider(self) -> Provider:
        p: Provider | None = getattr(self.local, "provider", None)
        if p is None:
            p = self.opener()
            self.local.provider = p
            with self.lock:
                self.opened.append(p)
        return p

    def _one(self, call: Call, stop: threading.Event | None) -> Answer:
        if stop is not None and stop.is_set():
            return Answer(error=NOT_SENT)
        try:
            p = self._provider()  # opening a session (connect, start an embedded server) is not query latency
        except VecmigError as e:
            return Answer(seconds=0.0, error=e.one_line())
        started = time.perf_counter()
        try:
            hits = with_retries(lambda: p.query(call.vector, call.k, call.filter), budget=60.0)
            return Answer(hits=hits, seconds=time.perf_counter() - started)
        except VecmigError as e:
            return Answer(seconds=time.perf_counter() - started, error=e.one_line())

    def submit(self, todo: Sequence[Call], stop: threading.Event | None) -> list[Future[Answer]]:
        return [self.pool.submit(self._one, c, stop) for c in todo]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for p in self.opened:
            with contextlib.suppress(Exception):  # closing every other session matters more than one failure
                p.close()
        self.opened.clear()


@dataclass(frozen=True)
class Pair:
    source: list[Answer]
    target: list[Answer]
    wall: float  # seconds from the first query sent to the last answer, both sides together


class Shadow:
    """Both stores, each with its workers; :meth:`ask` sends a batch to both at once."""

    def __init__(self, open_source: Callable[[], Provider], open_target: Callable[[], Provider],
                 concurrency: int) -> None:
        self.source = Side(open_source, concurrency, "source")
        self.target = Side(open_target, concurrency, "target")

    def ask(self, queries: Sequence[Query], stop: threading.Event | None = None) -> Pair:
        todo = calls(queries)
        started = time.perf_counter()
        fs = self.source.submit(todo, stop)
        ft = self.target.submit(todo, stop)
        src = [f.result() for f in fs]
        tgt = [f.result() for f in ft]
        return Pair(src, tgt, time.perf_counter() - started)

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.target.close()

    def __enter__(self) -> Shadow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
