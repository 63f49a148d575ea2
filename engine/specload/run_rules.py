"""The parallel-run replay, its gate and ``rollback_on``: rules beyond the schema, and assembly.

A setting that would be accepted and then ignored is refused here: a gate on recall without
``replay.exact`` (nothing would measure it), a replay or gate outside parallel-run, triggers
without a cutover to switch back.
"""

from __future__ import annotations

import math
from typing import Any

from vecmig.spec_runs import EXACT_KEYS, GATE_KEYS, QuerySourceSpec, ReplaySpec, RollbackOnSpec, seconds
from vecmig.specload.context import _Context

# The longest window, interval or watch a duration may name (the schema's maximum for a number).
MAX_DURATION_S = 604800.0


def _check_values(ctx: _Context, section: Any, where: str) -> None:
    """A NaN or infinity passes the schema's minimum/maximum (every comparison with NaN is false) and
    then silently disables a gate or trigger, or breaks the replay's rate; a duration string such as
    ``0s`` or ``9999h`` passes the schema's pattern though its value is out of range."""
    if not isinstance(section, dict):
        return
    for key, value in section.items():
        at = f"{where}/{key}"
        if isinstance(value, dict):
            _check_values(ctx, value, at)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ctx.error(f"{at.lstrip('/').replace('/', '.')} must be a finite number, not {value}", at,
                            "write a number")
        elif key in ("duration", "interval", "watch") and isinstance(value, str):
            try:
                s = seconds(value)
            except ValueError:
                continue  # the schema names the shape
            if not 0 < s <= MAX_DURATION_S:
                raise ctx.error(f"{at.lstrip('/').replace('/', '.')} {value!r} is out of range", at,
                                "write a duration from 1ms to 7 days (168h)")


def check_runs(ctx: _Context, spec: dict[str, Any]) -> None:
    strategy = spec.get("strategy", {})
    for key in ("replay", "gate"):
        _check_values(ctx, strategy.get(key), f"/strategy/{key}")
    _check_values(ctx, spec.get("rollback_on"), "/rollback_on")
    _check_values(ctx, spec.get("cost"), "/cost")  # a .nan price printed `$nan` in the plan
    kind = strategy.get("type", "big-bang")
    for key in ("replay", "gate"):
        if key in strategy and kind != "parallel-run":
            raise ctx.error(f"strategy.{key} applies only to parallel-run, not {kind}", f"/strategy/{key}",
                            f"remove {key}, or use `type: parallel-run`")
    if kind == "parallel-run":
        replay = strategy.get("replay")
        if replay is None:
            raise ctx.error("strategy parallel-run needs strategy.replay, the query log replayed against both stores",
                            "/strategy/type", "add `replay: {file: queries.jsonl, duration: 10m}` under strategy")
        if "duration" not in replay and "queries" not in replay:
            raise ctx.error("strategy.replay needs duration or queries: how long the window lasts",
                            "/strategy/replay", "add `duration: 10m` or `queries: 5000` (or both: the first "
                            "reached ends the window)")
        gate = strategy.get("gate") or {}
        for key in EXACT_KEYS:
            if key in gate and not replay.get("exact"):
                raise ctx.error(f"strategy.gate.{key} needs recall against exact search, which the replay does not "
                                "measure", f"/strategy/gate/{key}",
                                "add `exact: true` under strategy.replay (one scan of the source), or remove "
                                f"{key}")
    # NaN passes the schema's bounds and then no comparison with it ever fails: refused.
    for at, values in (("/strategy/gate", strategy.get("gate") if kind == "parallel-run" else None),
                       ("/rollback_on", spec.get("rollback_on"))):
        for key, value in (values or {}).items() if isinstance(values, dict) else ():
            if isinstance(value, float) and math.isnan(value):
                raise ctx.error(f"{at[1:].replace('/', '.')}.{key} is .nan, which no measure can cross: it would "
                                "never trigger", f"{at}/{key}", f"set a number, or remove {key}")
    rollback_on = spec.get("rollback_on")
    if rollback_on is None:
        return
    if not any(k in rollback_on for k in ("min_overlap", "max_p95_ratio", "max_error_rate")):
        raise ctx.error("rollback_on names no trigger", "/rollback_on",
                        "add at least one of min_overlap, max_p95_ratio, max_error_rate")
    target = spec["target"]
    if "alias" not in target and "pointer" not in target:
        raise ctx.error("rollback_on switches readers back after a cutover, but the target has no alias or pointer "
                        "to switch", "/rollback_on", "add target.alias (or target.pointer), or remove rollback_on")


def assemble_replay(data: dict[str, Any] | None) -> ReplaySpec | None:
    if data is None:
        return None
    return ReplaySpec(
        file=str(data["file"]),
        duration=seconds(data["duration"]) if "duration" in data else None,
        queries=int(data["queries"]) if "queries" in data else None,
        concurrency=int(data.get("concurrency", ReplaySpec.concurrency)),
        rate=float(data["rate"]) if "rate" in data else None,
        k=int(data.get("k", ReplaySpec.k)),
        exact=bool(data.get("exact", False)),
    )


def assemble_gate(data: dict[str, Any] | None) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(data[k])) for k in GATE_KEYS if data and k in data)


def assemble_rollback_on(data: dict[str, Any] | None) -> RollbackOnSpec | None:
    if data is None:
        return None
    q = data.get("queries")
    queries = RollbackOnSpec.queries if q is None else QuerySourceSpec(
        sample=int(q["sample"]) if "sample" in q else None, seed=int(q.get("seed", 0)),
        file=str(q["file"]) if "file" in q else None, k=int(q.get("k", QuerySourceSpec.k)))
    return RollbackOnSpec(
        min_overlap=float(data["min_overlap"]) if "min_overlap" in data else None,
        max_p95_ratio=float(data["max_p95_ratio"]) if "max_p95_ratio" in data else None,
        max_error_rate=float(data["max_error_rate"]) if "max_error_rate" in data else None,
        queries=queries,
        interval=seconds(data["interval"]) if "interval" in data else RollbackOnSpec.interval,
        concurrency=int(data.get("concurrency", RollbackOnSpec.concurrency)),
        watch=seconds(data["watch"]) if "watch" in data else None,
    )
