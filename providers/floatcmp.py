"""Python's exact comparison of an int with a float, for stores that compare in float64.

``2**53 + 1 > 9007199254740992.0`` is true in Python (it compares exactly), false once the int
is rounded to a float. A store whose comparison converts the argument to float64 gets Python's
answer by comparing with the floats around the int instead: ``x > n`` is ``x >= above``,
``x < n`` is ``x <= below``, and ``x == n`` is false (no float equals it).
"""

from __future__ import annotations

import math


def bracket(n: int) -> tuple[float, float] | float:
    """``n`` as a float when float64 holds it exactly, else the two adjacent floats around it."""
    try:
        near = float(n)
    except OverflowError:
        near = math.inf if n > 0 else -math.inf
    if near == n:
        return near
    if near > n:
        return math.nextafter(near, -math.inf), near
    return near, math.nextafter(near, math.inf)
