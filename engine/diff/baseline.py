"""The baseline drift is measured against: what the target held when vecmig last left it equal
to the source (the per-bucket digests a passing completeness validation recorded)."""

from __future__ import annotations

import json
from typing import Any

from vecmig.state.reader import StateReader

# Kinds that leave the target's records as they were: a round of only these keeps the baseline.
READ_ONLY = frozenset({"validate_ids", "validate_completeness", "validate_queries", "validate_retrieval",
                       "build_index", "cutover"})


def last_baseline(state: StateReader | None) -> dict[str, Any] | None:
    """The baseline of the latest round still on record, if it completed with a passing
    validation; None otherwise (a later write by vecmig would look like drift)."""
    if state is None:
        return None
    live = [r for r in state.rounds() if r["status"] != "rolled_back"]
    if not live:
        return None
    for past in sorted(live, key=lambda r: r["round"], reverse=True):
        if past["status"] != "complete":
            return None
        rows = state.actions(past["round"])
        for row in rows:
            if row["kind"] == "validate_completeness" and row["status"] == "done" and row["result_json"]:
                found = json.loads(row["result_json"]).get("baseline")
                return found if isinstance(found, dict) else None
        if any(row["kind"] not in READ_ONLY for row in rows):
            return None  # it wrote without validating: what it left is not known
    return None


def last_versions(state: StateReader | None, before_round: int | None = None) -> dict[str, Any] | None:
    """The newest baseline that recorded row versions, from any round (before ``before_round``).

    Unlike drift, the versions shortcut needs no "nothing written since": whatever vecmig or
    anyone else wrote since moved the versions of the buckets it touched, and those are hashed.
    A baseline only has to be true of the moment it was recorded, which a passing validation
    made it; its version schemes say whether the stores can still be compared with it."""
    if state is None:
        return None
    for past in sorted(state.rounds(), key=lambda r: r["round"], reverse=True):
        if before_round is not None and past["round"] >= before_round:
            continue
        for row in state.actions(past["round"]):
            if row["kind"] == "validate_completeness" and row["status"] == "done" and row["result_json"]:
                found = json.loads(row["result_json"]).get("baseline")
                if isinstance(found, dict) and isinstance(found.get("versions"), dict):
                    return found
    return None


def diff_wanted(state: StateReader | None) -> bool:
    """Whether a plan should diff the records: not while a round is open (it resumes with the
    actions it started with, and its validation reads the source afresh), so a resume after a
    kill does not read every record of both sides first."""
    return state is None or state.open_round() is None
