"""Lint policy: raise a finding's code to an error, lower it to a warning, or silence it.

The planner emits findings with stable codes (``VM1xx``); a team decides what each one
means for them in the spec's ``policy`` section or in a policy file shared by many specs:

    policy: {error: [VM102], ignore: [VM101]}        # inline
    policy: {file: ../vecmig-policy.yaml}             # same keys in a file; inline wins

An error-level finding makes ``plan`` exit 1 and ``apply`` refuse. Applied to a plan right
after it is made (or loaded), never inside the planner, so ``plan --json`` shows the
findings exactly as the team's policy sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vecmig import safe_paths
from vecmig.errors import SpecError, VecmigError
from vecmig.model import Plan, Warning_

if TYPE_CHECKING:
    from vecmig.spec import Spec

# policy key -> the severity it gives a finding (None: the finding is dropped)
LEVELS: dict[str, str | None] = {"error": "error", "warn": "warning", "ignore": None}
# Engine findings, and value fidelity findings any file or table store raises; each store adds
# its own prefix in its kit (Pinecone: PC).
ENGINE_PREFIXES = ("VM", "FD")


def code_prefixes() -> tuple[str, ...]:
    from vecmig.providers import kits  # the entry points, read once policies are read

    return ENGINE_PREFIXES + tuple(sorted({r.lint_prefix for r in kits().values() if r.lint_prefix}))
# Findings no policy may lower: they stand for data vecmig would destroy that is not its own
# (VM130: cutover would replace a file that is not a vecmig pointer file), or stand for an
# apply that can never succeed (VM142: the target is a view; VM143: no unique id to upsert by).
MANDATORY = frozenset({"VM130", "VM142", "VM143"})


class PolicyError(VecmigError):
    """The plan may not be applied as it is: an error-level finding, or unflagged destruction."""


@dataclass(frozen=True)
class Policy:
    levels: dict[str, str | None] = field(default_factory=dict)  # code -> severity, or None to drop

    @property
    def empty(self) -> bool:
        return not self.levels


def read_file(path: Path) -> dict[str, list[str]]:
    """The lists in a policy file, or a SpecError naming the file and what is wrong."""
    hint = "a policy file is a short YAML file with the keys error, warn and ignore"
    try:
        raw = safe_paths.read_bytes(path, "policy file", safe_paths.POLICY_MAX_BYTES, where=str(path),
                                    error=SpecError, hint=hint)
    except OSError as e:
        raise SpecError(f"cannot read policy file: {e.strerror}", where=str(path), hint=hint) from None
    try:
        data = yaml.safe_load(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read policy file: {e}", where=str(path),
                        hint="a policy file is YAML with the keys error, warn and ignore") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError("a policy file must be a mapping", where=str(path),
                        hint="write e.g. `error: [VM102]` and `ignore: [VM101]`")
    out: dict[str, list[str]] = {}
    for key, codes in data.items():
        if key not in LEVELS:
            raise SpecError(f"unknown policy key '{key}'", where=f"{path}: /{key}",
                            hint=f"use {', '.join(LEVELS)}")
        if not isinstance(codes, list) or not all(_is_code(c) for c in codes):
            raise SpecError(f"policy.{key} must be a list of lint codes", where=f"{path}: /{key}",
                            hint="write e.g. [VM101, VM102]")
        out[key] = list(codes)
    return out


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and value[:2] in code_prefixes() and value[2:].isdigit() and len(value) == 5


def from_spec(spec: Spec) -> Policy:
    """The spec's policy; a file's levels first, the spec's own lists override them."""
    section = spec.public.get("policy") or {}
    levels: dict[str, str | None] = {}
    if section.get("file"):
        path = spec.source.path(section["file"])  # relative to the spec file
        for key, codes in read_file(path).items():
            levels.update(dict.fromkeys(codes, LEVELS[key]))
    for key, severity in LEVELS.items():
        levels.update(dict.fromkeys(section.get(key, []), severity))
    return Policy(levels)


def apply(plan: Plan, policy: Policy) -> Plan:
    """A plan whose findings carry the policy's severities; silenced ones noted, not hidden."""
    if policy.empty:
        return plan
    kept: list[Warning_] = []
    silenced: list[str] = []
    for w in plan.warnings:
        if w.code not in policy.levels or w.code in MANDATORY:
            kept.append(w)
            continue
        severity = policy.levels[w.code]
        if severity is None:
            silenced.append(w.code)
        else:
            kept.append(replace(w, severity=severity))
    notes = plan.notes
    if silenced:
        note = f"lint findings silenced by policy: {', '.join(sorted(set(silenced)))}"
        notes = notes if note in notes else (*notes, note)
    return replace(plan, warnings=tuple(kept), notes=notes)


def errors(plan: Plan) -> list[Warning_]:
    return [w for w in plan.warnings if w.severity == "error"]


def fix_hint(blocking: list[Warning_]) -> str:
    """How to get past error-level findings: a policy can lower most, never a MANDATORY one."""
    lowerable = [w for w in blocking if w.code not in MANDATORY]
    if not lowerable:
        return blocking[0].hint or "fix the cause"
    return f"fix the cause, or change the spec's `policy` section (e.g. `policy: {{warn: [{lowerable[0].code}]}}`)"


def check_apply_allowed(plan: Plan, *, allow_destructive: bool) -> None:
    """What apply refuses before touching anything: error-level findings, unflagged destruction."""
    blocking = errors(plan)
    if blocking:
        codes = ", ".join(f"{w.code} ({w.message})" for w in blocking[:3])
        raise PolicyError(f"the plan has {len(blocking)} error-level lint finding(s): {codes}", hint=fix_hint(blocking))
    destructive = [a.id for a in plan.actions if a.destructive]
    if destructive and not allow_destructive:
        raise PolicyError(f"the plan contains destructive actions: {', '.join(destructive)}",
                          hint="review them in the plan, then run apply again with --allow-destructive")
