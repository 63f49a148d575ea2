"""Waves of strategy phased: which source records each wave takes.

A wave is defined by a source namespace, a half-open id range or a metadata filter
(vecmig.filters). The waves partition the records by the first-match rule: a record belongs
to the FIRST wave whose definition it matches, so overlapping filters never double a record;
what no wave takes goes to the last wave, ``rest`` (unless the spec sets ``rest: false``).

Each wave's predicate travels in its actions' params (``take``: its own definition, ``skip``:
those of every wave before it), so copy and validation decide membership from the plan alone,
on the source records as read (before the mapping renames anything).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vecmig import filters
from vecmig.records import Batch, RecordId
from vecmig.spec import Spec

REST = "rest"
ACTION_PREFIX = "wave["


@dataclass(frozen=True)
class Wave:
    name: str
    take: dict[str, Any] | None  # None: every record the earlier waves leave (the rest wave)
    skip: tuple[dict[str, Any], ...]
    alias: str | None = None
    pointer: bool = False  # the wave names a pointer of its own (the spec's WaveSpec holds it)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "take": self.take, "skip": list(self.skip)}

    @property
    def namespace(self) -> str | None:
        return self.take.get("namespace") if self.take else None

    @property
    def filter(self) -> dict[str, Any] | None:
        """The wave's metadata filter (a filter wave), else None."""
        flt = self.take.get("filter") if self.take else None
        return dict(flt) if isinstance(flt, dict) else None


def layout(spec: Spec, namespaces: Sequence[str]) -> list[Wave]:
    """The spec's waves in order, each with the definitions it must not take, and the rest
    wave last where the spec keeps it. ``namespaces``: the source's, in name order (``by: namespace``)."""
    s = spec.strategy
    defs: list[tuple[str, dict[str, Any], str | None, bool]] = (
        [(ns or "default", {"namespace": ns}, None, False) for ns in sorted(namespaces)] if s.waves_by_namespace
        else [(w.name, w.definition(), w.alias, w.pointer is not None) for w in s.waves])
    out = [Wave(name, d, tuple(x[1] for x in defs[:i]), alias, ptr)
           for i, (name, d, alias, ptr) in enumerate(defs)]
    if s.rest and not s.waves_by_namespace:
        out.append(Wave(REST, None, tuple(x[1] for x in defs)))
    return out


def action_id(wave: str, rest: str) -> str:
    return f"{ACTION_PREFIX}{wave}].{rest}"


def wave_of(action_id_: str) -> str | None:
    """The wave an action id belongs to (``wave[eu].copy.shard[0]`` → ``eu``); None: round-level."""
    if not action_id_.startswith(ACTION_PREFIX):
        return None
    return action_id_[len(ACTION_PREFIX):].split("]", 1)[0]


def matches(definition: Mapping[str, Any], record_id: RecordId, metadata: Mapping[str, Any] | None,
            namespace: str | None) -> bool:
    """Whether one wave definition takes a record (on its own, before the first-match rule)."""
    if "namespace" in definition:
        return (namespace or "") == (definition["namespace"] or "")
    if "ids" in definition:
        lo, hi = definition["ids"]["from"], definition["ids"]["to"]
        # An id of the other type is in no range: 5 is not in ["a", "m"), and "5" not in [0, 10).
        if isinstance(lo, bool) or isinstance(record_id, bool):
            return False
        if isinstance(lo, int) and isinstance(record_id, int):
            return bool(lo <= record_id < hi)
        if isinstance(lo, str) and isinstance(record_id, str):
            return bool(lo <= record_id < hi)
        return False
    if "filter" in definition:
        return filters.matches(metadata or {}, definition["filter"])
    raise ValueError(f"not a wave definition: {definition!r}")


def picks(wave: Mapping[str, Any], record_id: RecordId, metadata: Mapping[str, Any] | None,
          namespace: str | None) -> bool:
    """The first-match rule: the wave takes the record and no earlier wave does."""
    take = wave.get("take")
    if take is not None and not matches(take, record_id, metadata, namespace):
        return False
    return not any(matches(d, record_id, metadata, namespace) for d in wave.get("skip") or ())


def select(wave: Mapping[str, Any] | None, batch: Batch, namespace: str | None) -> Batch:
    """The records of ``batch`` that ``wave`` takes (the batch itself when all are, or no wave).
    ``namespace``: the source namespace when the batch does not carry one."""
    if wave is None:
        return batch
    ns = batch.extra.get("namespace", namespace)
    ns = ns if isinstance(ns, str) else None
    keep = [i for i, (rid, meta) in enumerate(zip(batch.ids, batch.metadata, strict=True))
            if picks(wave, rid, meta, ns)]
    if len(keep) == len(batch):
        return batch
    return batch.take(keep)


def shard_namespace(shard: Mapping[str, Any] | None) -> str | None:
    """The namespace a shard lies in, where the store cuts shards per namespace."""
    ns = (shard or {}).get("namespace")
    return ns if isinstance(ns, str) else None


def may_hold(wave: Wave, shard: Mapping[str, Any] | None) -> bool:
    """Whether a shard can hold records of ``wave`` (namespace waves read their namespace's shards only)."""
    ns = shard_namespace(shard)
    if ns is None:
        return True
    if wave.take is not None and "namespace" in wave.take:
        return (wave.take["namespace"] or "") == ns
    return not any("namespace" in d and (d["namespace"] or "") == ns for d in wave.skip)


def ids_may_overlap(wave: Wave, bounds: tuple[Any, Any] | None) -> bool:
    """Whether an id-range wave can take records of a shard covering ``[lo, hi)``. Only integer
    bounds are compared: text order in a store (a database collation) need not be Python's, and a
    shard skipped wrongly would lose the wave's records there."""
    take = wave.take or {}
    if bounds is None or "ids" not in take:
        return True
    lo, hi = bounds
    start, end = take["ids"]["from"], take["ids"]["to"]
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        return True
    if not all(x is None or (isinstance(x, int) and not isinstance(x, bool)) for x in (lo, hi)):
        return True
    return (lo is None or lo < end) and (hi is None or start < hi)
