"""Random filters of the query language (``vecmig.filters``) over values where a store's SQL and
Python part ways unless the translation is careful: what the filter-translation tests of each
store compare with ``vecmig.filters.matches``."""

from __future__ import annotations

import math
import random
from typing import Any

# Values chosen where Python and SQL disagree unless the translation is careful: strings that
# look like numbers, bools beside 0/1, ints float8 cannot hold, floats numeric would round.
INTS = [0, 1, -1, 5, 7, 2**31, 2**53, 2**53 + 1, 2**62 + 7, -(2**63)]
FLOATS = [0.0, -0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 1e-7, 1e300, float(2**53), 9007199254740994.0, math.inf]
STRINGS = ["", "5", "a", "b", "B", "ab", "Zürich", "zebra", "日本語", "true", "0.1", "a b", "é"]
BOOLS = [True, False]
ARGS: list[Any] = INTS + FLOATS[:-1] + STRINGS + BOOLS + [math.inf, -math.inf, 2**70, 0.30000000000000004]


def random_filter(rng: random.Random, names: dict[str, list[Any]], depth: int = 0) -> dict[str, Any]:
    """A filter over ``names`` (field -> the arguments of its own kind, mostly drawn from)."""
    if depth < 2 and rng.random() < 0.25:
        return {rng.choice(["$and", "$or"]): [random_filter(rng, names, depth + 1) for _ in range(rng.randint(1, 3))]}
    out: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice(sorted(names))
        pool = names[name] if rng.random() < 0.7 else ARGS
        op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "short"])
        if op == "short":
            out[name] = rng.choice(pool)
        elif op == "$exists":
            out[name] = {op: rng.choice(BOOLS)}
        elif op in ("$in", "$nin"):
            out[name] = {op: [rng.choice(pool) for _ in range(rng.randint(0, 4))]}
        elif op in ("$eq", "$ne"):
            out[name] = {op: rng.choice(pool)}
        else:
            out[name] = {op: rng.choice([a for a in pool if not isinstance(a, bool)] or INTS)}
    return out
