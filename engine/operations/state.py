"""State inspection and repair: force-unlock, and `state list / show / verify / history / export / upgrade`.

Each returns what it read as a result; none of them writes to the state, except
``force_unlock`` (the lock row) and ``upgrade`` (the schema, after a backup).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vecmig.errors import VecmigError
from vecmig.operations.common import existing_state, load, open_state
from vecmig.operations.ui import Ui
from vecmig.state.rows import ActionRow, AuditRow, StateCounts
from vecmig.state.upgrade import UpgradeReport

Row = dict[str, Any]


@dataclass(frozen=True)
class ForceUnlockRequest:
    spec_path: Path
    lock_id: str


def force_unlock(request: ForceUnlockRequest, ui: Ui) -> Row:
    """Remove a lock left by a process that is gone; returns the holder it removed."""
    from vecmig.state.lock import force_unlock as remove

    # A lock row that is not vecmig's is exactly what force-unlock removes: do not refuse it on open.
    state = existing_state(load(request.spec_path, ui), hint="nothing to unlock", check_lock=False)
    return remove(state, request.lock_id)


@dataclass(frozen=True)
class StateRequest:
    spec_path: Path


@dataclass(frozen=True)
class StateList:
    name: str
    actions: tuple[ActionRow, ...] | None  # None: no state, this migration was never applied


def state_list(request: StateRequest, ui: Ui) -> StateList:
    """Every round's actions as recorded in state."""
    spec = load(request.spec_path, ui)
    state = open_state(spec)
    return StateList(spec.name, None if state is None else tuple(state.all_actions()))


@dataclass(frozen=True)
class StateShow:
    name: str
    location: str
    meta: Row
    lock: Row | None  # the holder, None when free
    rounds: tuple[Row, ...]
    runs: tuple[Row, ...]
    resources: tuple[Row, ...]  # the journal
    counts: StateCounts
    audit_ok: bool
    audit_detail: str


def state_show(request: StateRequest, ui: Ui) -> StateShow | None:
    """The whole state: meta, rounds, runs, resources, lock and audit summary; None if there is none."""
    from vecmig.state.lock import Lock

    spec = load(request.spec_path, ui)
    state = open_state(spec)
    if state is None:
        return None
    meta = state.meta()
    lock = Lock(state, "show").current()
    rounds = tuple({k: r[k] for k in ("round", "status", "plan_hash", "source_fingerprint", "target_fingerprint",
                                      "created", "updated")} for r in state.rounds())
    runs = tuple({k: r[k] for k in ("id", "round", "operation", "status", "user", "host", "approval", "started",
                                    "finished", "error")} for r in state.runs())
    resources = tuple({k: r[k] for k in ("id", "round", "action_id", "kind", "side", "name", "state")}
                      for r in state.resources())
    ok, why = state.verify_chain()
    return StateShow(spec.name, state.location, meta, lock, rounds, runs, resources, state.counts(), ok, why)


@dataclass(frozen=True)
class StateVerified:
    chain: str  # the chain's head, as verify_chain describes it
    checked: int  # stored plans, runs and results compared with their audit copies
    before_images: int


def state_verify(request: StateRequest, ui: Ui) -> StateVerified:
    """Recompute the audit hash chain and its head, and compare the stored records with it."""
    state = existing_state(load(request.spec_path, ui), hint="nothing to verify")
    ok, why = state.verify_chain()
    problems = state.verify_records()
    if not ok:
        also = f"; also {len(problems)} stored record(s) disagree with the log" if problems else ""
        raise VecmigError(f"audit chain broken: {why}{also}", hint="the state store was changed outside vecmig; "
                          "compare with a backup or an export before trusting it")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VecmigError(f"stored state disagrees with the audit log: {problems[0]}{more}",
                          hint="the state store was changed outside vecmig; `vecmig state export` shows both copies")
    checked = len(state.rounds()) + len(state.runs()) + sum(1 for a in state.all_actions() if a["result_json"])
    return StateVerified(why, checked, state.counts()["before_images"])


@dataclass(frozen=True)
class HistoryRequest:
    spec_path: Path
    limit: int = 0  # only the last N events; 0: all


@dataclass(frozen=True)
class History:
    name: str
    events: tuple[AuditRow, ...]  # those asked for
    total: int  # events in the log
    chain_ok: bool
    chain: str


def state_history(request: HistoryRequest, ui: Ui) -> History | None:
    """The audit log, newest last, and whether its chain holds; None if there is no state."""
    spec = load(request.spec_path, ui)
    state = open_state(spec)
    if state is None:
        return None
    events = state.audit_events()
    shown = events[-request.limit:] if request.limit > 0 else events
    ok, why = state.verify_chain()
    return History(spec.name, tuple(shown), len(events), ok, why)


@dataclass(frozen=True)
class ExportRequest:
    spec_path: Path
    format: Literal["json", "jsonl"] = "json"
    out_file: Path | None = None  # None: the text is returned for stdout


@dataclass(frozen=True)
class Exported:
    name: str
    text: str
    written_to: Path | None


def state_export(request: ExportRequest, ui: Ui) -> Exported:
    """The whole history (meta, rounds, runs, actions, resources, audit) for auditors, written
    to ``out_file`` or returned."""
    from vecmig import safe_paths
    from vecmig.state import export

    out_file = request.out_file
    if out_file is not None:
        safe_paths.ensure_file(out_file, "export file (-o)",
                               hint=f"export to a regular file, or omit -o for stdout; {safe_paths.REGULAR_ONLY}")
    spec = load(request.spec_path, ui)
    state = existing_state(spec, hint="nothing to export")
    redact = spec.redactor  # the state holds no secrets; this makes sure the export cannot either
    if request.format == "jsonl":
        text = "".join(redact(json.dumps(line, sort_keys=True, ensure_ascii=False)) + "\n"
                       for line in export.lines(state))
    else:
        text = redact(json.dumps(export.document(state), sort_keys=True, indent=2, ensure_ascii=False)) + "\n"
    if out_file is not None:
        safe_paths.ensure_file(out_file, "export file (-o)")  # again: the export may have taken a while
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
    return Exported(spec.name, text, out_file)


def state_upgrade(request: StateRequest, ui: Ui) -> UpgradeReport:
    """Upgrade the state store's schema to this vecmig's version, after backing it up."""
    from vecmig.state.upgrade import upgrade

    spec = load(request.spec_path, ui)
    return upgrade(spec.name, spec.state_path, spec.state_url, redactor=spec.redactor)
