"""Read ahead: the next batch is read while the current one is written.

The scan and the write each wait mostly on their store, and both release the GIL while
they wait, so overlapping them is close to free throughput. The queue is bounded (memory
stays flat) and the reader stops when the consumer does.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(source: Iterator[T], depth: int = 2) -> Iterator[T]:
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised in its thread
            q.put(_Failure(exc))

    reader = threading.Thread(target=pump, name="vecmig-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # Drain so a blocked put() notices the stop, then wait for the reader to let go of
        # the source's connection before the caller closes it.
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        reader.join()
