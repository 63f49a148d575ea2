"""Saved plans: written by ``plan -out``, executed as they are by ``apply PLANFILE``.

A saved plan carries a checksum of itself; one that was edited, made by an incompatible
version, or made against a state or stores that have since changed is refused, each with
its own message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vecmig import __version__
from vecmig.errors import StalePlanError, VecmigError
from vecmig.model import PLAN_FORMAT_VERSION, Plan, canonical_json, sha256_hex
from vecmig.refresh import Refreshed
from vecmig.state.store import StateStore


def save(plan: Plan, path: Path, spec_dir: Path) -> None:
    text = plan.to_json_text()
    body = json.loads(text)
    # Where the spec lived, so relative paths in it resolve the same way at apply time.
    body["spec_dir"] = str(spec_dir.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def looks_like_plan(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(1)
        return head == b"{" and "format_version" in path.read_text()[:10_000]
    except OSError:
        return False


def load(path: Path) -> tuple[Plan, Path]:
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VecmigError(f"cannot read plan file {path}: {e}", hint="pass a file written by `vecmig plan -out`") from e
    if raw.get("format_version") != PLAN_FORMAT_VERSION:
        raise StalePlanError(f"plan file {path} has format version {raw.get('format_version')}; "
                             f"this vecmig ({__version__}) reads version {PLAN_FORMAT_VERSION}",
                             hint="re-create it with `vecmig plan -out`")
    spec_dir = Path(raw.pop("spec_dir", "."))
    claimed = raw.pop("checksum", None)
    if claimed != sha256_hex(canonical_json(raw)):
        raise StalePlanError(f"plan file {path} was modified after it was written (checksum mismatch)",
                             hint="re-create it with `vecmig plan -out`; never edit a saved plan")
    if raw.get("tool_version", "").split(".")[0] != __version__.split(".")[0]:
        raise StalePlanError(f"plan file {path} was made by vecmig {raw.get('tool_version')}, "
                             f"which is incompatible with {__version__}", hint="re-plan with this version")
    return Plan.from_json(raw), spec_dir


def check_fresh(plan: Plan, state: StateStore | None, seen: Refreshed) -> None:
    """Terraform's rule: a plan applies to exactly the world it was made from."""
    changes = []
    lineage = state.lineage if state else None
    serial = state.serial if state else 0
    if plan.state_lineage is None and state is not None and serial == 0 and not state.rounds():
        pass  # planned before any state existed; the store apply just created is that same nothing
    elif plan.state_lineage is not None and plan.state_lineage != lineage:
        changes.append(f"state lineage changed ({plan.state_lineage} → {lineage})")
    elif plan.state_serial != serial:
        changes.append(f"state serial changed ({plan.state_serial} → {serial}): something was applied since")
    if plan.source.fingerprint != seen.source.fingerprint:
        changes.append(f"source changed since planning ({_diff(plan.source.to_json(), seen.source.to_json())})")
    if plan.target.fingerprint != seen.target.fingerprint:
        changes.append(f"target changed since planning ({_diff(plan.target.to_json(), seen.target.to_json())})")
    if changes:
        raise StalePlanError("saved plan is stale: " + "; ".join(changes),
                             hint="run `vecmig plan -out FILE` again and apply the new plan")


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(before) | set(after)) if k != "fingerprint" and before.get(k) != after.get(k)]
    parts = [f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in keys[:3]]
    return ", ".join(parts) or "fingerprint differs"
