"""The rules of ``strategy.waves`` (strategy phased) that the schema cannot say.

Waves must partition the records without doubt: each wave names exactly one selector; a
namespace named twice or two overlapping id ranges could only mean a mistake (the first-match
rule would silently leave the second empty), so both are refused; a filter is checked by the
filter language itself, the error pointing at the offending key inside it.
"""

from __future__ import annotations

from typing import Any

from vecmig import filters
from vecmig.specload.context import _Context

SELECTORS = ("namespace", "ids", "filter")
REST = "rest"  # the implicit last wave's name


def _check_waves(ctx: _Context, spec: dict[str, Any]) -> None:
    strategy = spec.get("strategy", {})
    kind = strategy.get("type")
    for key in ("waves", "rest"):
        if key in strategy and kind != "phased":
            raise ctx.error(f"strategy.{key} applies only to phased, not {kind or 'big-bang'}",
                            f"/strategy/{key}", f"remove {key}, or use `type: phased`")
    if kind != "phased":
        return
    waves = strategy.get("waves")
    if waves is None:
        raise ctx.error("strategy phased needs waves: which records move in which order", "/strategy/type",
                        "add e.g. `waves: [{name: eu, namespace: eu}, {name: w1, ids: {from: 0, to: 100000}}, "
                        "{name: drama, filter: {genre: drama}}]`, or `waves: {by: namespace}`")
    if isinstance(waves, dict):
        if spec["source"].get("namespace") != "*":
            raise ctx.error("waves: {by: namespace} needs a source read namespace by namespace",
                            "/strategy/waves", "set `namespace: \"*\"` under source (a store with namespaces), "
                                               "or list the waves")
        return
    names: dict[str, int] = {}
    spaces: dict[str, int] = {}
    ranges: list[tuple[int, Any, Any]] = []
    for i, wave in enumerate(waves):
        at = f"/strategy/waves/{i}"
        given = [k for k in SELECTORS if k in wave]
        if len(given) != 1:
            raise ctx.error(f"wave {wave['name']!r} must name exactly one of namespace, ids or filter"
                            + (f", not {' and '.join(given)}" if given else ""), at,
                            "split it into one wave per selector (a record goes to the first wave that takes it)")
        name = wave["name"]
        if "alias" in wave and "pointer" in wave:
            raise ctx.error(f"wave {name!r} takes either alias or pointer, not both", f"{at}/pointer",
                            "stores with aliases switch the alias; use pointer only for stores without them")
        if name in names:
            raise ctx.error(f"wave name {name!r} is used twice (waves {names[name] + 1} and {i + 1})",
                            f"{at}/name", "give every wave its own name: action ids and `rollback --wave` use it")
        if name == REST and strategy.get("rest", True):
            raise ctx.error("wave name 'rest' is taken by the last wave (records no other wave takes)",
                            f"{at}/name", "rename the wave, or set `rest: false`")
        names[name] = i
        if "namespace" in wave:
            ns = wave["namespace"]
            if ns in spaces:
                raise ctx.error(f"namespace {ns!r} is named by two waves ({waves[spaces[ns]]['name']!r} and "
                                f"{name!r})", f"{at}/namespace", "name each namespace in one wave only")
            spaces[ns] = i
        if "ids" in wave:
            lo, hi = wave["ids"]["from"], wave["ids"]["to"]
            if type(lo) is not type(hi):
                raise ctx.error(f"wave {name!r}: ids.from and ids.to must both be integers or both strings",
                                f"{at}/ids", "write e.g. `ids: {from: 0, to: 100000}` (to is excluded)")
            if not lo < hi:
                raise ctx.error(f"wave {name!r}: ids.from {lo!r} must be below ids.to {hi!r} (to is excluded)",
                                f"{at}/ids/to", "swap them, or widen the range")
            for j, a, b in ranges:
                if type(a) is type(lo) and lo < b and a < hi:
                    raise ctx.error(f"wave {name!r}: ids [{lo!r}, {hi!r}) overlap wave {waves[j]['name']!r}'s "
                                    f"[{a!r}, {b!r})", f"{at}/ids",
                                    "make the ranges disjoint (each is half-open: from included, to excluded)")
            ranges.append((i, lo, hi))
        if "filter" in wave:
            try:
                filters.check(wave["filter"])
            except filters.FilterError as e:
                where = f"{at}/filter/{e.path}" if e.path and ctx.has(f"{at}/filter/{e.path}") else f"{at}/filter"
                raise ctx.error(f"wave {name!r}: {e}", where,
                                'write a filter like {genre: drama} or {year: {$gte: 2020}} (vecmig.filters)') from None
    if spaces and spec["source"].get("namespace") != "*":
        i = min(spaces.values())
        raise ctx.error(f"wave {waves[i]['name']!r} selects namespace {waves[i]['namespace']!r}, but the source is "
                        "not read namespace by namespace", f"/strategy/waves/{i}/namespace",
                        "set `namespace: \"*\"` under source (a store with namespaces)")
