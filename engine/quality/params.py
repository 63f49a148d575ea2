"""What the ``validate_queries`` action needs, frozen into the plan (never re-read from the spec).

Round-trips through the JSON dict ``Action.params`` holds. The query file is kept as written
(``${env:...}`` intact, relative to the spec) with the sha256 of its bytes when planned, so
apply runs exactly the queries that were reviewed or refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueryGateParams:
    k: int
    metric: str  # the source's: the exact top-k is computed by it
    sample: int = 0
    seed: int = 0
    concurrency: int = 4
    filter: dict[str, Any] | None = None  # for queries without their own, in the source's field names
    renames: dict[str, str] = field(default_factory=dict)  # source field -> target field, for filters
    gate: dict[str, float] = field(default_factory=dict)  # Gate.to_json()
    batch_size: int = 1000  # records per page of the source scans
    file: str | None = None
    sha256: str | None = None
    file_queries: int = 0
    # A wave of strategy phased: every query (and the sample) is kept to the wave's records, by
    # its filter (ANDed with each query's own) or its namespace (both sides searched in it).
    restrict: dict[str, Any] | None = None
    namespace: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "metric": self.metric, "sample": self.sample, "seed": self.seed,
                "concurrency": self.concurrency, "filter": self.filter, "renames": dict(self.renames),
                "gate": dict(self.gate), "batch_size": self.batch_size, "file": self.file, "sha256": self.sha256,
                "file_queries": self.file_queries,
                **({"restrict": self.restrict} if self.restrict is not None else {}),
                **({"namespace": self.namespace} if self.namespace is not None else {})}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> QueryGateParams:
        return cls(k=int(d["k"]), metric=str(d["metric"]), sample=int(d.get("sample") or 0),
                   seed=int(d.get("seed") or 0), concurrency=int(d.get("concurrency") or 1),
                   filter=d.get("filter"), renames={str(a): str(b) for a, b in (d.get("renames") or {}).items()},
                   gate={str(a): float(b) for a, b in (d.get("gate") or {}).items()},
                   batch_size=int(d.get("batch_size") or 1000), file=d.get("file"), sha256=d.get("sha256"),
                   file_queries=int(d.get("file_queries") or 0), restrict=d.get("restrict"),
                   namespace=d.get("namespace"))
