"""The operations that touch nothing but the state store: validate, init, plan, show, graph.

``plan`` never creates state, and the same inputs give a byte-identical plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vecmig import planfile, policy
from vecmig.diff.baseline import diff_wanted, last_baseline, last_versions
from vecmig.errors import VecmigError
from vecmig.model import Plan
from vecmig.operations.common import load, open_state
from vecmig.operations.ui import Ui
from vecmig.planner import make_plan
from vecmig.refresh import refresh
from vecmig.spec import Spec
from vecmig.state.store import StateStore


@dataclass(frozen=True)
class SpecRequest:
    """A request that names only the spec."""

    spec_path: Path


@dataclass(frozen=True)
class ValidateResult:
    name: str
    source: str  # the stores' labels
    target: str
    strategy: str


def validate(request: SpecRequest, ui: Ui) -> ValidateResult:
    """Check a spec without touching any store."""
    spec = load(request.spec_path, ui)
    return ValidateResult(spec.name, spec.source.label, spec.target.label, spec.strategy.type)


@dataclass(frozen=True)
class InitResult:
    source: str
    source_exists: bool
    target: str
    target_exists: bool
    state_location: str
    lineage: str


def init(request: SpecRequest, ui: Ui) -> InitResult:
    """Validate the spec, reach both stores and create the state store."""
    spec = load(request.spec_path, ui)
    seen = refresh(spec, shards=False)
    state = open_state(spec, create=True)
    assert state is not None  # created
    return InitResult(spec.source.label, seen.source.exists, spec.target.label, seen.target.exists,
                      state.location, state.lineage)


def plan_now(spec: Spec) -> tuple[Plan, StateStore | None]:
    """Plan against the stores and the state as they are now, read-only."""
    state = open_state(spec)
    return make_plan(spec, state, refresh(spec, baseline=last_baseline(state), records=diff_wanted(state),
                versions=last_versions(state))), state


@dataclass(frozen=True)
class PlanRequest:
    spec_path: Path
    out_file: Path | None = None  # save the plan here for `apply`


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    saved_to: Path | None


def plan(request: PlanRequest, ui: Ui) -> PlanResult:
    """Plan, apply the spec's lint policy, show the plan, and save it if asked.

    A plan with error-level findings is shown first, so the reviewer sees why, then refused
    without being saved, since apply would refuse it anyway."""
    if request.out_file is not None:
        planfile.check_out_path(request.out_file)  # before anything is read or planned
    spec = load(request.spec_path, ui)
    the_plan, state = plan_now(spec)
    the_plan = policy.apply(the_plan, policy.from_spec(spec))
    ui.show_plan(the_plan, state)
    blocking = policy.errors(the_plan)
    if blocking:
        raise policy.PolicyError(
            f"{len(blocking)} error-level lint finding(s): {', '.join(w.code for w in blocking)}"
            + (f"; the plan was not saved to {request.out_file}" if request.out_file else ""),
            hint=policy.fix_hint(blocking))
    if request.out_file is not None:
        planfile.save(the_plan, request.out_file, spec.source.base_dir, spec_file=request.spec_path)
    return PlanResult(the_plan, request.out_file)


@dataclass(frozen=True)
class ShowRequest:
    plan_file: Path
    with_state: bool = False  # open the state the plan was made against (to compare with its last round)


def show(request: ShowRequest, ui: Ui) -> Plan:
    """Show a saved plan."""
    saved = planfile.open_saved(request.plan_file)
    ui.show_plan(saved.plan, _state_of_saved(saved) if request.with_state else None)
    return saved.plan


def _state_of_saved(saved: planfile.SavedPlan) -> StateStore | None:
    """The state a saved plan was made against; None if unreachable."""
    from vecmig.spec_loader import load_public

    try:
        spec = load_public(saved.plan.spec, file="plan", base_dir=saved.spec_dir)
        return open_state(spec)
    except VecmigError:
        return None  # e.g. a state URL whose secret is not in this environment: show it without


@dataclass(frozen=True)
class GraphRequest:
    target: Path  # a spec (planned now, read-only) or a saved plan file


def graph(request: GraphRequest, ui: Ui) -> Plan:
    """The plan whose action graph is to be drawn."""
    if planfile.looks_like_plan(request.target):
        return planfile.open_saved(request.target).plan
    return plan_now(load(request.target, ui))[0]
