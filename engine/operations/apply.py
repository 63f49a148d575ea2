"""apply: saved plan or spec → policy → lock → refresh → freshness → confirm → authorise → run.

Terraform's `backend_apply.go opApply` in one function: everything between the arguments and
the summary, with the Ui doing the showing and asking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vecmig import planfile, policy, waves_resume
from vecmig.cluster import open_cluster
from vecmig.diff.baseline import diff_wanted, last_baseline, last_versions
from vecmig.executor import apply_plan, done_elsewhere
from vecmig.model import Plan
from vecmig.operations.common import load, open_state
from vecmig.operations.ui import Approval, Ui
from vecmig.planner import make_plan
from vecmig.refresh import refresh
from vecmig.schedule import check_graph
from vecmig.spec import Spec
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore


@dataclass(frozen=True)
class ApplyRequest:
    target: Path  # a spec (planned now and applied) or a plan file saved by `plan -out`
    auto_approve: bool = False
    lock_timeout: float = 0.0  # seconds to wait for the lock
    allow_destructive: bool = False  # actions that delete data (delete_extra, decommission)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    saved_plan: bool  # the target was a saved plan file
    applied: bool  # False: the plan had no changes, nothing ran
    approval: Approval | None = None
    seconds: float = 0.0  # the whole run, progress display included
    records: int = 0  # copied
    copy_seconds: float = 0.0
    state_location: str = ""
    serial: int = 0  # of the state after the run
    paused: str | None = None  # strategy phased stopped between waves: the line that says so

    @property
    def rate(self) -> float:
        """Records copied per second of copying."""
        return self.records / self.copy_seconds if self.copy_seconds > 0 else 0.0


def apply(request: ApplyRequest, ui: Ui) -> ApplyResult:
    """Carry out a plan, checkpointing every acknowledged batch; run again to resume."""
    from vecmig.spec_loader import load_public

    target, saved = request.target, planfile.looks_like_plan(request.target)
    if saved:
        saved_plan = planfile.open_saved(target)
        planfile.check_spec_unchanged(saved_plan, target)
        the_plan = saved_plan.plan
        spec = load_public(the_plan.spec, file=str(target), base_dir=saved_plan.spec_dir)
        ui.redact_with(spec.redactor)
        the_plan = policy.apply(the_plan, policy.from_spec(spec))
        policy.check_apply_allowed(the_plan, allow_destructive=request.allow_destructive)
    else:
        spec = load(target, ui)
        # Plan once before any state exists: bad input (or a plan policy refuses) must fail
        # without touching state.
        before = open_state(spec)
        seen_first = refresh(spec, baseline=last_baseline(before), records=diff_wanted(before),
                versions=last_versions(before))
        first = make_plan(spec, before, seen_first)
        policy.check_apply_allowed(policy.apply(first, policy.from_spec(spec)),
                                   allow_destructive=request.allow_destructive)
    # executor type dask: the scheduler is reached (or a local cluster started) before the state
    # is created or locked, so an unreachable one leaves nothing behind.
    cluster = open_cluster(spec.executor)
    try:
        state = open_state(spec, create=True)
        assert state is not None  # created
        lock = Lock(state, "apply")
        lock.acquire(timeout=request.lock_timeout)
    except BaseException:
        cluster.close()
        raise
    try:
        if saved or first.state_serial != state.serial or first.state_lineage not in (None, state.lineage):
            # A saved plan is checked against the world as it is now; a plan made just above is
            # reused (its diff read every record once) unless someone applied in between.
            seen = refresh(spec, baseline=last_baseline(state), records=diff_wanted(state),
                versions=last_versions(state))
        else:
            seen = seen_first
        if saved and waves_resume.continues_paused(the_plan, state):
            # The same saved plan, run again after a wave gate: what changed since is vecmig's own doing.
            the_plan = waves_resume.remaining(the_plan, state, seen)
        elif saved:
            planfile.check_fresh(the_plan, state, seen)
            check_graph(the_plan.actions, done_elsewhere(state, the_plan))
        else:
            the_plan = policy.apply(make_plan(spec, state, seen), policy.from_spec(spec))
            policy.check_apply_allowed(the_plan, allow_destructive=request.allow_destructive)
        ui.show_plan(the_plan, state)
        if not the_plan.has_changes:
            close_finished_round(spec, state, the_plan.round)
            return ApplyResult(the_plan, saved, applied=False)
        approval: Approval
        if saved:
            approval = "saved-plan"
        elif request.auto_approve:
            approval = "auto-approve"
        else:
            approval = ui.confirm("Do you want to perform these actions?")
        # What was authorised, and by which flags, goes on record before anything runs.
        state.audit_event("apply_authorised", {
            "round": the_plan.round, "plan_hash": the_plan.plan_hash, "spec_hash": the_plan.spec_hash,
            "approval": approval, "plan_file": str(target) if saved else None,
            "allow_destructive": request.allow_destructive,
            "destructive_actions": [a.id for a in the_plan.actions if a.destructive],
            "findings": [{"code": w.code, "severity": w.severity} for w in the_plan.warnings]})
        started = time.monotonic()
        with ui.progress(the_plan.actions) as reporter:
            run = apply_plan(spec, the_plan, state, approval=approval, reporter=reporter, cluster=cluster)
        return ApplyResult(the_plan, saved, applied=True, approval=approval, seconds=time.monotonic() - started,
                           records=run["records"], copy_seconds=run["copy_seconds"],
                           state_location=state.location, serial=state.serial, paused=run.get("paused"))
    finally:
        lock.release()
        cluster.close()


def close_finished_round(spec: Spec, state: StateStore, round_no: int) -> None:
    """A run killed after its last action but before it closed the round leaves the round open
    with nothing to do: closed here (under the lock), as the run would have closed it."""
    open_round = state.open_round()
    if open_round is None or open_round["round"] != round_no or open_round["status"] != "in_progress":
        return
    if any(a["status"] != "done" for a in state.actions(round_no)):
        return
    seen = refresh(spec, shards=False)
    state.set_round_status(round_no, "complete", source_fingerprint=seen.source.fingerprint,
                           target_fingerprint=seen.target.fingerprint)
