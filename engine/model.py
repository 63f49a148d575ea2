"""Inventories, actions and plans: immutable, JSON round-trippable, deterministic.

A plan's JSON is byte-identical for identical inputs, so nothing here carries a clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

PLAN_FORMAT_VERSION = 1


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Inventory:
    """What a provider can say about a collection without reading every record."""

    provider: str
    collection: str | None
    exists: bool
    dimension: int | None = None
    metric: str | None = None
    count: int | None = None  # exact when cheap, else an estimate (see count_exact)
    count_exact: bool = False
    id_type: str | None = None  # "int" | "text"
    fields: dict[str, str] = field(default_factory=dict)  # column/field -> type
    index: dict[str, Any] | None = None
    aliases: dict[str, str | None] = field(default_factory=dict)  # alias -> collection it points at
    bytes_per_record: int | None = None
    # What the engine reads beyond counts and shapes; each store fills in what it knows.
    has_text: bool = False  # records carry text
    # The store keeps all metadata as one JSON document in this column: its keys are not
    # known without reading every record.
    metadata_column: str | None = None
    sparse: bool = False  # the collection has room for sparse values
    address: str | None = None  # where readers reach the collection (a data-plane host): pointers name it
    namespace: str | None = None  # the namespace read or written, where the store has them
    content: str | None = None  # digest of every record, set where a record-level diff ran
    # The store's own notes (bounds, layout), read by the store alone, never by the engine.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        # bytes_per_record is an estimate from the table's size, which PostgreSQL changes on
        # its own (extension by several pages during COPY, trimmed later by vacuum): it must
        # not make a plan look stale when no record changed.
        d = asdict(self)
        d.pop("bytes_per_record", None)
        return sha256_hex(canonical_json(d))[:16]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["fingerprint"] = self.fingerprint
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Inventory:
        d = {k: v for k, v in d.items() if k != "fingerprint"}
        return cls(**_lift_legacy(d))


# Keys earlier versions kept in ``extra`` that are typed fields now: a plan or round saved by
# them reads the same (and fingerprints the same as a fresh refresh of the same collection).
_LEGACY_EXTRA = {"content": "content", "host": "address", "namespace": "namespace", "sparse": "sparse",
                 "metadata_column": "metadata_column", "has_text": "has_text", "text": "has_text"}


def _lift_legacy(d: dict[str, Any]) -> dict[str, Any]:
    extra = dict(d.get("extra") or {})
    if not any(k in extra for k in _LEGACY_EXTRA) or "has_text" in d:
        return d
    lifted = {**d}
    for old, new in _LEGACY_EXTRA.items():
        if old in extra:
            value = extra.pop(old)
            lifted[new] = bool(value) if new in ("has_text", "sparse") else value
    if extra.get("text_column"):
        lifted["has_text"] = True
    lifted["extra"] = extra
    return lifted


@dataclass(frozen=True)
class Estimate:
    records: int = 0
    bytes: int = 0
    seconds_low: float = 0.0
    seconds_high: float = 0.0
    cost: dict[str, float] = field(default_factory=dict)  # line item -> USD
    basis: str = ""  # what the time is from (vecmig.calibrate): a past round's measured rate, or the models

    def __add__(self, other: Estimate) -> Estimate:
        cost = dict(self.cost)
        for k, v in other.cost.items():
            cost[k] = round(cost.get(k, 0.0) + v, 6)
        return Estimate(
            self.records + other.records,
            self.bytes + other.bytes,
            round(self.seconds_low + other.seconds_low, 3),
            round(self.seconds_high + other.seconds_high, 3),
            cost,
            # A sum keeps the one basis its parts share ("mixed" otherwise).
            other.basis if not self.basis else (self.basis if other.basis in ("", self.basis) else "mixed"),
        )


@dataclass(frozen=True)
class Action:
    """One node of the plan's DAG. ``params`` is everything an executor needs, with state."""

    id: str
    kind: str
    reason: str
    depends_on: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    reversible: bool = True
    reverse: str = ""  # how it is undone, in words, for reviewers
    destructive: bool = False
    estimate: Estimate = field(default_factory=Estimate)
    status: str = "planned"  # planned | resume (partly done in an earlier run) | recopy (validation failed)
    # What the record-level diff says this action moves: {"add", "change", "delete", "unchanged"}
    # (copy and delete actions only).
    records: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["depends_on"] = list(self.depends_on)
        if self.records is None:
            del d["records"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Action:
        d = dict(d)
        d["depends_on"] = tuple(d.get("depends_on", ()))
        d["estimate"] = Estimate(**d.get("estimate", {}))
        return cls(**d)


@dataclass(frozen=True)
class Warning_:
    code: str
    message: str
    severity: str = "warning"
    hint: str = ""  # the one-line fix (lint findings: and the spec option that applies it)


@dataclass(frozen=True)
class Plan:
    format_version: int
    tool_version: str
    migration: str
    spec_hash: str
    spec: dict[str, Any]  # public spec: placeholders, never secret values
    strategy: str
    source: Inventory
    target: Inventory
    state_lineage: str | None
    state_serial: int
    round: int
    actions: tuple[Action, ...]
    warnings: tuple[Warning_, ...] = ()
    notes: tuple[str, ...] = ()
    # The record-level diff: {"add", "change", "delete", "unchanged"} over the whole plan, and
    # how it was computed (method, what it read, drift). None: not computed (no source yet).
    records: dict[str, int] | None = None
    diff: dict[str, Any] | None = None
    # What `vecmig apply SPEC` spends besides running the actions (interpreter start-up, the
    # plan's reads of both stores, its record-level diff): totals + start_up is the command's
    # wall time. None for stores whose timings mean nothing (the in-memory test store).
    start_up: Estimate | None = None
    # transform.embed: what is re-embedded, with which model, and what it takes (vecmig.embed_plan).
    embedding: dict[str, Any] | None = None

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def totals(self) -> Estimate:
        total = Estimate()
        for a in self.actions:
            total = total + a.estimate
        return total

    def counts(self) -> dict[str, int]:
        """Terraform-style tallies: what gets created, changed, destroyed."""
        add = sum(1 for a in self.actions if a.kind in ("create_collection", "build_index"))
        destroy = sum(1 for a in self.actions if a.destructive)
        change = len(self.actions) - add - destroy
        return {"add": add, "change": change, "destroy": destroy}

    def body(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "tool_version": self.tool_version,
            "migration": self.migration,
            "spec_hash": self.spec_hash,
            "spec": self.spec,
            "strategy": self.strategy,
            "source": self.source.to_json(),
            "target": self.target.to_json(),
            "state": {"lineage": self.state_lineage, "serial": self.state_serial, "round": self.round},
            "actions": [a.to_json() for a in self.actions],
            "totals": asdict(self.totals),
            "summary": self.counts(),
            "warnings": [asdict(w) for w in self.warnings],
            "notes": list(self.notes),
            **({"records": self.records} if self.records is not None else {}),
            **({"diff": self.diff} if self.diff is not None else {}),
            **({"start_up": asdict(self.start_up)} if self.start_up is not None else {}),
            **({"embedding": self.embedding} if self.embedding is not None else {}),
        }

    def to_json_text(self) -> str:
        body = self.body()
        body["checksum"] = sha256_hex(canonical_json(body))
        return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @property
    def plan_hash(self) -> str:
        return sha256_hex(canonical_json(self.body()))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        return cls(
            format_version=d["format_version"],
            tool_version=d["tool_version"],
            migration=d["migration"],
            spec_hash=d["spec_hash"],
            spec=d["spec"],
            strategy=d["strategy"],
            source=Inventory.from_json(d["source"]),
            target=Inventory.from_json(d["target"]),
            state_lineage=d["state"]["lineage"],
            state_serial=d["state"]["serial"],
            round=d["state"]["round"],
            actions=tuple(Action.from_json(a) for a in d["actions"]),
            warnings=tuple(Warning_(**w) for w in d.get("warnings", [])),
            notes=tuple(d.get("notes", [])),
            records=d.get("records"),
            diff=d.get("diff"),
            start_up=Estimate(**d["start_up"]) if d.get("start_up") else None,
            embedding=d.get("embedding"),
        )
