"""A client-side tokens-per-minute limit shared by every request thread (a token bucket)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to ``per_minute`` tokens and refills at ``per_minute / 60`` a second. A request
    larger than the whole bucket waits for a full bucket and then goes (it could never fit)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._level = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, tokens: int) -> None:
        need = min(float(tokens), self.capacity)
        while True:
            with self._lock:
                self._refill()
                if self._level >= need:
                    self._level -= tokens  # may go below zero for an oversized request: later ones wait
                    return
                wait = (need - self._level) / self.rate
            self.waited += wait
            self._sleep(wait)

    def settle(self, reserved: int, actual: int) -> None:
        """The server's count replaces the estimate the request reserved."""
        with self._lock:
            self._level -= actual - reserved
