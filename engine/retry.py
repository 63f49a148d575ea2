"""Retry transient provider errors with exponential backoff and full jitter, bounded in total."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from vecmig.errors import TransientError

T = TypeVar("T")


def with_retries(fn: Callable[[], T], *, attempts: int = 8, base: float = 0.2, cap: float = 10.0,
                 budget: float = 120.0, on_retry: Callable[[TransientError, float], None] | None = None) -> T:
    deadline = time.monotonic() + budget
    for attempt in range(attempts):
        try:
            return fn()
        except TransientError as e:
            delay = e.retry_after if e.retry_after is not None else random.uniform(0, min(cap, base * 2**attempt))
            if attempt == attempts - 1 or time.monotonic() + delay > deadline:
                raise
            if on_retry:
                on_retry(e, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
