"""What a record-level diff found: counts per shard, the ids that differ, drift, and its cost.

Immutable and JSON round-trippable like the rest of the plan model: the planner copies the
counts into the plan (``"records"``) and the ids into the copy/delete actions' parameters,
so the saved plan carries exactly what apply will move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecmig.records import RecordId


@dataclass(frozen=True)
class RecordCounts:
    """Records to add (missing from the target), change (differ), delete (only in the
    target) and unchanged (equal on both sides)."""

    add: int = 0
    change: int = 0
    delete: int = 0
    unchanged: int = 0

    def __add__(self, other: RecordCounts) -> RecordCounts:
        return RecordCounts(self.add + other.add, self.change + other.change, self.delete + other.delete,
                            self.unchanged + other.unchanged)

    @property
    def moves(self) -> int:
        """Records apply writes or removes."""
        return self.add + self.change + self.delete

    def to_json(self) -> dict[str, int]:
        return {"add": self.add, "change": self.change, "delete": self.delete, "unchanged": self.unchanged}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecordCounts:
        return cls(int(d.get("add", 0)), int(d.get("change", 0)), int(d.get("delete", 0)),
                   int(d.get("unchanged", 0)))


@dataclass(frozen=True)
class ShardDelta:
    """One source shard against the target.

    ``ids`` are the source ids to write (added, then changed), in a stable order; None when
    the diff did not list them (the shard is copied whole). ``namespace`` is set where
    records are keyed by namespace and id.
    """

    index: int
    counts: RecordCounts
    ids: tuple[RecordId, ...] | None = None
    examples: tuple[dict[str, Any], ...] = ()  # the first few changed records: id and what differs


@dataclass(frozen=True)
class Drift:
    """Records that differ because the target changed after vecmig last wrote it."""

    records: int = 0  # differing records whose target side changed outside vecmig
    both: int = 0  # differing records where the source and the target changed near each other
    known: bool = False  # a baseline from the last validated round existed and was comparable
    why_unknown: str = ""
    examples: tuple[RecordId, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"known": self.known, "records": self.records}
        if self.both:
            out["both_sides"] = self.both
        if self.examples:
            out["examples"] = [_json_id(i) for i in self.examples]
        if not self.known:
            out["why_unknown"] = self.why_unknown
        return out


@dataclass(frozen=True)
class RecordDiff:
    """The whole diff: per source shard, the target's extras, drift and how it was computed."""

    method: str  # "server-hash" | "scan"
    shards: tuple[ShardDelta, ...]
    # Target records the source lacks: ids, or (namespace, id) where records are kept per
    # namespace; None: too many to list.
    delete_ids: tuple[Any, ...] | None
    delete_count: int
    source_records: int  # read (scan) or hashed (server) on each side
    target_records: int
    drift: Drift = field(default_factory=Drift)
    # What the diff read, in the providers' own units, for the plan's cost line (deterministic).
    reads: dict[str, int] = field(default_factory=dict)
    # Content digests of both sides as the diff saw them: a changed record changes them, so the
    # plan's fingerprints go stale when a record is edited in place between plan and apply.
    source_digest: str = ""
    target_digest: str = ""
    # Per-bucket digests of the target as the diff saw them, for drift (see drift.py).
    buckets: str = ""
    bucket_scheme: str = ""

    @property
    def counts(self) -> RecordCounts:
        total = RecordCounts(delete=self.delete_count)
        for s in self.shards:
            total = total + s.counts
        return total

    def summary_json(self) -> dict[str, Any]:
        """What the plan's ``diff`` section shows: no id lists (those live on the actions)."""
        return {"method": self.method, "records_read": {"source": self.source_records, "target": self.target_records},
                "reads": dict(sorted(self.reads.items())), "drift": self.drift.to_json()}


def _json_id(rid: Any) -> Any:
    return rid if isinstance(rid, int | str) else str(rid)
