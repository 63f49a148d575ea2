"""Recompute what the state claims: the audit hash chain, its head, and stored checksums.

The chain alone shows edits, deletions and reorders; only the head kept in ``meta`` (written
in the same transaction as every append) shows a log cut short at its end. Someone who can
rewrite the whole file can rewrite the head too: `state verify` prints the head so it can be
recorded somewhere else (a CI log, a ticket) and compared later.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from vecmig.model import canonical_json

if TYPE_CHECKING:
    from vecmig.state.store import StateStore

GENESIS = "0" * 64


def event_hash(prev: str, seq: int, ts: str, event_name: str, actor_json: str, data_json: str) -> str:
    h = hashlib.sha256()
    for part in (prev, str(seq), ts, event_name, actor_json, data_json):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()


def check_chain(events: list[dict[str, Any]], head: dict[str, Any] | None,
                head_required: bool = True) -> tuple[bool, str]:
    """(intact?, detail); on failure the detail names the first bad event.

    ``head_required=False`` only for a schema-1 store being upgraded, which never had a head.
    """
    by_hash = {ev["hash"]: ev for ev in events}
    prev = GENESIS
    expected = 1
    previous: dict[str, Any] | None = None
    for ev in events:
        seq, name = ev["seq"], ev["event"]
        if seq != expected:
            return False, (f"event {expected} is missing (next is {seq}): it was deleted" if seq > expected
                           else f"event {seq} ({name}) appears twice")
        if ev["prev_hash"] != prev:
            origin = by_hash.get(ev["prev_hash"])
            if origin is not None and origin["seq"] != seq - 1:
                return False, (f"event {seq} ({name}) is out of order: it was written right after the event now "
                               f"at {origin['seq']} ({origin['event']}); events were reordered")
            before = f"event {seq - 1} ({previous['event']})" if previous else "the start of the log"
            return False, (f"event {seq} ({name}) does not follow {before}: one of them was replaced "
                           "or rewritten")
        if event_hash(prev, seq, ev["ts"], name, ev["actor_json"], ev["data_json"]) != ev["hash"]:
            return False, f"event {seq} ({name}) was edited"
        prev = ev["hash"]
        previous = ev
        expected += 1
    last = expected - 1
    if head is None:
        if head_required:
            return False, f"the chain head is missing from meta (the log has {last} events): it was removed"
        return True, f"{last} events, chain intact (no chain head: schema version 1)"
    if int(head["seq"]) > last:
        lost = "all events were removed" if last == 0 else f"events after {last} were removed"
        return False, f"{lost}: the chain head records {head['seq']} events (truncated)"
    if int(head["seq"]) < last:
        return False, (f"event {int(head['seq']) + 1} and later were added outside vecmig: "
                       f"the chain head records {head['seq']} events")
    if head["hash"] != prev:
        return False, f"event {last} ({previous['event'] if previous else '?'}) does not match the chain head: " \
                      "it was replaced"
    return True, f"{last} events, chain intact (head: event {last}, hash {prev[:16]})"


def check_records(store: StateStore) -> list[str]:
    """Compare stored plans, results and runs with their hashes and their audit copies."""
    problems: list[str] = []
    events = store.audit_events()
    payloads = [(ev["seq"], ev["event"], _loads(ev["data_json"])) for ev in events]
    problems += _check_rounds(store, payloads)
    problems += _check_actions(store, payloads)
    problems += _check_runs(store, payloads)
    return problems


def _loads(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _check_rounds(store: StateStore, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    out = []
    started = {p.get("round"): (seq, p) for seq, name, p in payloads if name == "round_started"}
    for r in store.rounds():
        body = _loads(r["plan_json"])
        digest = hashlib.sha256(canonical_json(body).encode()).hexdigest()
        if digest != r["plan_hash"]:
            out.append(f"round {r['round']}: its stored plan does not hash to its plan hash (the plan was edited)")
        seq, audited = started.get(r["round"], (None, None))
        if audited is None:
            out.append(f"round {r['round']}: no round_started event in the audit log")
        elif audited.get("plan_hash") != r["plan_hash"] or audited.get("spec_hash") != r["spec_hash"]:
            out.append(f"round {r['round']}: plan or spec hash differs from its audit record (event {seq})")
    return out


def _check_actions(store: StateStore, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    out = []
    done: dict[tuple[Any, Any], tuple[int, dict[str, Any]]] = {}
    for seq, name, p in payloads:
        # The latest wins: a resumed action, or a validation that failed (its findings are kept
        # as its result, so the next apply can re-copy what failed) and later passed.
        if name == "action_done" or (name == "action_failed" and "result" in p):
            done[(p.get("round"), p.get("action"))] = (seq, p)
    for a in store.all_actions():
        if not a["result_json"]:
            continue
        where = f"action {a['action_id']} (round {a['round']})"
        seq, audited = done.get((a["round"], a["action_id"]), (None, None))
        if audited is None:
            out.append(f"{where}: a stored result but no action_done (or action_failed) event in the audit log")
            continue
        result = _loads(a["result_json"])
        if result != audited.get("result"):
            out.append(f"{where}: stored result differs from its audit record (event {seq})")
        for key in ("records", "bytes"):
            if key in audited and audited[key] != a[key]:
                out.append(f"{where}: stored {key} {a[key]} differs from its audit record {audited[key]} "
                           f"(event {seq})")
        if result.get("ok") is True and "source" in result and result.get("source") != result.get("target"):
            out.append(f"{where}: validation is marked ok but its source and target checksums differ")
    return out


def _check_runs(store: StateStore, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    out = []
    started = {p.get("run"): (seq, p) for seq, name, p in payloads if name == "run_started"}
    finished = {p.get("run"): (seq, p) for seq, name, p in payloads if name == "run_finished"}
    for run in store.runs():
        seq, audited = started.get(run["id"], (None, None))
        if audited is None:
            out.append(f"run {run['id']}: no run_started event in the audit log")
            continue
        for key in ("approval", "plan_hash", "operation"):
            if audited.get(key) != run[key]:
                out.append(f"run {run['id']}: {key} {run[key]!r} differs from its audit record "
                           f"{audited.get(key)!r} (event {seq})")
        fseq, fin = finished.get(run["id"], (None, None))
        if fin is not None and fin.get("status") != run["status"]:
            out.append(f"run {run['id']}: status {run['status']!r} differs from its audit record "
                       f"{fin.get('status')!r} (event {fseq})")
    return out
