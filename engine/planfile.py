"""Saved plans: written by ``plan -out``, executed as they are by ``apply PLANFILE``.

A saved plan is self-contained: the spec as written (placeholders, never secret values),
the inventories and fingerprints it was made from, state lineage and serial, the tool
version, where the spec file was, and a checksum over all of that. ``apply PLANFILE``
refuses one that was edited, made by an incompatible version, made against a state or
stores that have since changed, or whose spec file has since been edited — each with its
own message. A changed secret (an environment value) changes nothing in the spec as
written, so it does not make a plan stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecmig import __version__, safe_paths
from vecmig.errors import SpecError, StalePlanError, VecmigError
from vecmig.model import PLAN_FORMAT_VERSION, Plan, canonical_json, sha256_hex
from vecmig.refresh import Refreshed
from vecmig.schedule import check_graph
from vecmig.state.store import StateStore


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    spec_dir: Path  # relative paths in the spec resolve against it, as at plan time
    spec_file: Path | None  # the spec the plan was made from, checked for edits at apply


def save(plan: Plan, path: Path, spec_dir: Path, spec_file: Path | None = None) -> None:
    body = plan.body()
    body["spec_dir"] = str(spec_dir.resolve())
    if spec_file is not None:
        body["spec_file"] = str(spec_file.resolve())
    # The checksum covers the locations too: pointing a plan at another spec is an edit.
    body["checksum"] = sha256_hex(canonical_json(body))
    check_out_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def check_out_path(path: Path) -> None:
    """``plan -out``: a regular file or a new one; checked before planning, and again before writing."""
    safe_paths.ensure_file(path, "plan file (-out)",
                           hint=f"write the plan to a regular file; {safe_paths.REGULAR_ONLY}")


def looks_like_plan(path: Path) -> bool:
    """A saved plan is a JSON object with format_version and actions; a spec is YAML.

    The whole file is parsed: keys are sorted, so with thousands of shards "format_version"
    comes long after the first few kilobytes. A path that is no regular file (a FIFO, a
    device) is refused here, before anything opens it.
    """
    safe_paths.ensure_file(path, "plan or spec file", hint=f"pass a spec or a saved plan; {safe_paths.REGULAR_ONLY}")
    try:
        with safe_paths.open_read(path, "plan or spec file") as f:
            if f.read(1) != b"{":
                return False
        raw = json.loads(_read(path))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and "format_version" in raw and "actions" in raw


def _read(path: Path) -> bytes:
    return safe_paths.read_bytes(path, "plan file", safe_paths.PLAN_MAX_BYTES,
                                 hint="pass a file written by `vecmig plan -out`")


def open_saved(path: Path) -> SavedPlan:
    try:
        raw: dict[str, Any] = json.loads(_read(path))
    except (OSError, ValueError) as e:
        shown = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise VecmigError(f"cannot read plan file {path}: {shown}",
                          hint="pass a file written by `vecmig plan -out`") from None
    if not isinstance(raw, dict):
        raise VecmigError(f"cannot read plan file {path}: not a saved plan (a JSON object)",
                          hint="pass a file written by `vecmig plan -out`")
    if raw.get("format_version") != PLAN_FORMAT_VERSION:
        raise StalePlanError(f"plan file {path} has format version {raw.get('format_version')}; "
                             f"this vecmig ({__version__}) reads version {PLAN_FORMAT_VERSION}",
                             hint="re-create it with `vecmig plan -out`")
    claimed = raw.pop("checksum", None)
    if claimed != sha256_hex(canonical_json(raw)):
        raise StalePlanError(f"plan file {path} was modified after it was written (checksum mismatch)",
                             hint="re-create it with `vecmig plan -out`; never edit a saved plan")
    if raw.get("tool_version", "").split(".")[0] != __version__.split(".")[0]:
        raise StalePlanError(f"plan file {path} was made by vecmig {raw.get('tool_version')}, "
                             f"which is incompatible with {__version__}", hint="re-plan with this version")
    spec_dir = Path(raw.pop("spec_dir", "."))
    spec_file = raw.pop("spec_file", None)
    try:
        plan = Plan.from_json(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise VecmigError(f"cannot read plan file {path}: not a saved plan ({type(e).__name__}: {e})",
                          hint="pass a file written by `vecmig plan -out`") from None
    # What can be told without the state: ids, kinds, cycles. A dependency outside the plan may be
    # an action an earlier run of the round did (a resumed round's plan leaves those out): the
    # apply checks it against the state (vecmig.executor.done_elsewhere).
    outside = {d for a in plan.actions for d in a.depends_on} - {a.id for a in plan.actions}
    try:
        check_graph(plan.actions, outside)
    except VecmigError as e:
        raise VecmigError(f"plan file {path}: {e.message}", hint=e.hint) from None
    return SavedPlan(plan, spec_dir, Path(spec_file) if spec_file else None)


def check_spec_unchanged(saved: SavedPlan, plan_path: Path) -> None:
    """Refuse a plan whose spec file, still where it was, now says something else.

    Compared as written (placeholders, not resolved values), exactly as the plan's spec hash
    was computed, so rotating a password in the environment is not a change.
    """
    from vecmig.spec_loader import public_of_file

    spec_file = saved.spec_file
    if spec_file is None or not spec_file.is_file():
        return  # the plan carries its spec; nothing to compare against
    try:
        public, digest = public_of_file(spec_file)
    except SpecError as e:
        raise StalePlanError(f"the spec file {spec_file} was changed since {plan_path} was made and no longer "
                             f"parses ({e.message})", hint="fix the spec, then run `vecmig plan -out` again") from e
    if digest == saved.plan.spec_hash:
        return
    changed = _changed_pointers(saved.plan.spec, public)
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise StalePlanError(
        f"the spec file {spec_file} changed since {plan_path} was made (changed: {shown or 'formatting of values'})",
        hint=f"review the change, then run `vecmig plan {spec_file} -out {plan_path}` again and apply the new plan")


def _changed_pointers(before: Any, after: Any, at: str = "") -> list[str]:
    """JSON pointers where two specs differ; names only, since values may be sensitive."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after), key=str):
            out += _changed_pointers(before.get(key, _MISSING), after.get(key, _MISSING), f"{at}/{key}")
        return out
    return [] if before == after else [at or "/"]


_MISSING = object()


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
    applied_since = bool(changes)
    for side, planned, now in (("source", plan.source, seen.source), ("target", plan.target, seen.target)):
        if planned.fingerprint == now.fingerprint:
            continue
        before, after = planned.to_json(), now.to_json()
        if applied_since and _only_learned(before, after):
            # What an apply since has measured (a content checksum, an exact count) that the plan
            # did not know is not a change of the store: the state's change already says why.
            continue
        changes.append(f"{side} changed since planning ({_diff(before, after)})")
    if changes:
        raise StalePlanError("saved plan is stale: " + "; ".join(changes),
                             hint="run `vecmig plan -out FILE` again and apply the new plan")


def _only_learned(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Every difference is a value the plan did not have (None then, known now)."""
    keys = [k for k in set(before) | set(after) if k != "fingerprint" and before.get(k) != after.get(k)]
    return bool(keys) and all(before.get(k) in (None, False) and k in ("content", "count_exact")
                              for k in keys)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    env_before, env_after = (before.get("extra") or {}).get("env"), (after.get("extra") or {}).get("env")
    if env_before != env_after:
        return "a value it reads from the environment (${env:...}) is different now"
    keys = [k for k in sorted(set(before) | set(after)) if k != "fingerprint" and before.get(k) != after.get(k)]
    parts = [f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in keys[:3]]
    return ", ".join(parts) or "fingerprint differs"
