"""What the ``validate_retrieval`` action needs, frozen into the plan (never re-read from the spec).

The evaluation file is kept as written (relative to the spec) with the sha256 of its bytes, so
apply measures exactly the queries that were reviewed or refuses. ``old_model`` embeds the
queries that carry no old vector; ``new`` is the copy's frozen ``transform.embed`` (None: the
copy keeps the vectors, and the target is searched with the same vectors as the source). Each
model's identity as planning loaded it is kept: apply refuses a model that became another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where it is needed: vecmig.actions imports the kind that imports this
    from vecmig.actions.params import EmbedParams


@dataclass(frozen=True)
class RetrievalParams:
    k: int
    file: str
    sha256: str
    queries: int
    gate: dict[str, float] = field(default_factory=dict)  # RetrievalGate.to_json()
    old_model: str | None = None
    old_identity: str | None = None
    old_device: str = "auto"
    new: EmbedParams | None = None
    renames: dict[str, str] = field(default_factory=dict)  # source field -> target field, for filters
    concurrency: int = 4

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "file": self.file, "sha256": self.sha256, "queries": self.queries,
                "gate": dict(self.gate), "old_model": self.old_model, "old_identity": self.old_identity,
                "old_device": self.old_device, "new": None if self.new is None else self.new.to_json(),
                "renames": dict(self.renames), "concurrency": self.concurrency}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RetrievalParams:
        from vecmig.actions.params import EmbedParams

        new = d.get("new")
        return cls(k=int(d["k"]), file=str(d["file"]), sha256=str(d["sha256"]), queries=int(d.get("queries") or 0),
                   gate={str(a): float(b) for a, b in (d.get("gate") or {}).items()},
                   old_model=d.get("old_model"), old_identity=d.get("old_identity"),
                   old_device=str(d.get("old_device") or "auto"),
                   new=None if new is None else EmbedParams.from_json(new),
                   renames={str(a): str(b) for a, b in (d.get("renames") or {}).items()},
                   concurrency=int(d.get("concurrency") or 1))
