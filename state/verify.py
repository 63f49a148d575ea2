"""Recompute what the state claims: the audit hash chain, its head, and stored checksums.

The chain alone shows edits, deletions and reorders; only the head kept in ``meta`` (written
in the same transaction as every append) shows a log cut short at its end. Someone who can
rewrite the whole file can rewrite the head too: `state verify` prints the head so it can be
recorded somewhere else (a CI log, a ticket) and compared later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vecmig.model import canonical_json

if TYPE_CHECKING:
    from vecmig.state.reader import StateReader

GENESIS = "0" * 64


class ImageDigest:
    """Digest of before-image rows (row id, round, action, record id, existed, payload), fed in row order.

    Each row is a length-prefixed JSON header followed by its payload's bytes, so no two
    different sequences of rows hash the same input.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.rows = 0

    def update(self, row_id: int, round_no: int, action_id: str, record_id: str, existed: bool,
               payload: bytes | None) -> None:
        size = -1 if payload is None else len(payload)
        head = json.dumps([int(row_id), int(round_no), action_id, record_id, bool(existed), size]).encode()
        self._h.update(len(head).to_bytes(4, "big"))
        self._h.update(head)
        if payload is not None:
            self._h.update(payload)
        self.rows += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def image_digest(rows: Iterable[tuple[int, int, str, str, bool, bytes | None]]) -> str:
    d = ImageDigest()
    for row in rows:
        d.update(*row)
    return d.hexdigest()


def id_ranges(ids: list[int]) -> list[list[int]]:
    """Sorted row ids as inclusive ranges: [[1, 1000]] for one batch inserted by one writer."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def event_hash(prev: str, seq: int, ts: str, event_name: str, actor_json: str, data_json: str) -> str:
    h = hashlib.sha256()
    for part in (prev, str(seq), ts, event_name, actor_json, data_json):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()


def check_chain(events: Sequence[Mapping[str, Any]], head: Mapping[str, Any] | None,
                head_required: bool = True) -> tuple[bool, str]:
    """(intact?, detail); on failure the detail names the first bad event.

    ``head_required=False`` only for a schema-1 store being upgraded, which never had a head.
    """
    by_hash = {ev["hash"]: ev for ev in events}
    prev = GENESIS
    expected = 1
    previous: Mapping[str, Any] | None = None
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


def check_records(store: StateReader) -> list[str]:
    """Compare stored plans, results and runs with their hashes and their audit copies."""
    problems: list[str] = []
    events = store.audit_events()
    payloads = [(ev["seq"], ev["event"], _loads(ev["data_json"])) for ev in events]
    problems += _check_rounds(store, payloads)
    problems += _check_actions(store, payloads)
    problems += _check_runs(store, payloads)
    problems += check_rollback_inputs(store, payloads)
    return problems


def check_rollback_inputs(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]] | None = None
                          ) -> list[str]:
    """Everything rollback reads, compared with the audit chain: the rounds' and actions' status
    (which actions get undone), each action's parameters (against its round's audited plan),
    the resource journal (what was created, what an alias or pointer held before) and the
    before-images (what gets written back)."""
    if payloads is None:
        payloads = [(ev["seq"], ev["event"], _loads(ev["data_json"])) for ev in store.audit_events()]
    out: list[str] = []
    out += _check_statuses(store, payloads)
    out += _check_action_params(store)
    out += _check_resources(store, payloads)
    out += _check_before_images(store, payloads)
    return out


def _check_statuses(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    out = []
    round_status: dict[Any, tuple[int, str]] = {}
    action_status: dict[tuple[Any, Any], tuple[int, str]] = {}
    for seq, name, p in payloads:
        if name == "round_started":
            round_status[p.get("round")] = (seq, "in_progress")
            for action_id in p.get("actions") or ():
                action_status[(p.get("round"), action_id)] = (seq, "pending")
        elif name.startswith("round_"):
            round_status[p.get("round")] = (seq, name[len("round_"):])
        elif name.startswith("action_") and "action" in p:
            status = name[len("action_"):]
            # reset_action puts an action back to pending (a re-copy, a wave rolled back).
            action_status[(p.get("round"), p.get("action"))] = (seq, "pending" if status == "reset" else status)
    for r in store.rounds():
        at, audited = round_status.get(r["round"], (None, None))
        if audited is not None and audited != r["status"]:
            out.append(f"round {r['round']}: status {r['status']!r} differs from its audit record {audited!r} "
                       f"(event {at})")
    for a in store.all_actions():
        where = f"action {a['action_id']} (round {a['round']})"
        at, audited = action_status.get((a["round"], a["action_id"]), (None, None))
        if audited is None:
            out.append(f"{where}: not in its round's audit record (round_started): it was added outside vecmig")
        elif audited != a["status"]:
            out.append(f"{where}: status {a['status']!r} differs from its audit record {audited!r} (event {at})")
    return out


def _check_action_params(store: StateReader) -> list[str]:
    """Each stored action equals the action of its round's plan (whose hash the chain holds)."""
    out = []
    plans: dict[Any, dict[Any, Any]] = {}
    for r in store.rounds():
        body = _loads(r["plan_json"])
        plans[r["round"]] = {a.get("id"): a for a in body.get("actions") or () if isinstance(a, dict)}
    for a in store.all_actions():
        planned = plans.get(a["round"], {}).get(a["action_id"])
        where = f"action {a['action_id']} (round {a['round']})"
        if planned is None:
            out.append(f"{where}: not in its round's plan: it was added outside vecmig")
        elif _loads(a["params_json"]) != planned or a["kind"] != planned.get("kind"):
            out.append(f"{where}: its stored parameters differ from its round's plan (they were edited)")
    return out


def _check_resources(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    """The journal of created and switched resources, against its intent and state events."""
    out = []
    intents = [(seq, p) for seq, name, p in payloads if name == "intent"]
    states: dict[Any, tuple[int, str]] = {}
    for seq, name, p in payloads:
        if name.startswith("resource_") and "resource" in p:
            states[p["resource"]] = (seq, name[len("resource_"):])
    rows = store.resources()
    # Every journal row is inserted together with its intent event. Events written since schema
    # version 3 name their row; older ones pair with the remaining rows in order.
    by_id = {p["resource"]: (seq, p) for seq, p in intents if "resource" in p}
    unnamed = [(seq, p) for seq, p in intents if "resource" not in p]
    for row in rows:
        where = f"journal entry {row['id']} ({row['kind']} {row['name']}, round {row['round']})"
        found = by_id.pop(row["id"], None) or (unnamed.pop(0) if unnamed else None)
        if found is None:
            out.append(f"{where}: no intent event in the audit log: it was added outside vecmig")
            continue
        seq, p = found
        stored = {"round": row["round"], "action": row["action_id"], "kind": row["kind"], "side": row["side"],
                  "name": row["name"], "before": _loads_any(row["before_json"])}
        audited = {k: p.get(k) for k in stored}
        if store.redact(_canon(stored)) != store.redact(_canon(audited)):
            out.append(f"{where}: differs from its audit record (event {seq}): it was edited")
            continue
        sseq, state = states.get(row["id"], (seq, "intent"))
        if state != row["state"]:
            out.append(f"{where}: state {row['state']!r} differs from its audit record {state!r} (event {sseq})")
    for seq, p in sorted([*by_id.values(), *unnamed], key=lambda x: x[0])[:1]:
        out.append(f"the journal entry of event {seq} ({p.get('kind')} {p.get('name')}, round {p.get('round')}) "
                   "is missing: it was deleted")
    return out


def _check_before_images(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    """Each image row belongs to exactly one ``before_images`` event and each event's rows hash
    to its digest: an edited, deleted or added image is found (and named as far as it can be)."""
    events = [(seq, p) for seq, name, p in payloads if name == "before_images"]
    spans: list[tuple[int, int, int]] = []  # (first row, last row, index into events)
    for ei, (_, p) in enumerate(events):
        for lo, hi in p.get("rows") or ():
            spans.append((int(lo), int(hi), ei))
    spans.sort()
    digests = [ImageDigest() for _ in events]
    out: list[str] = []
    si = 0
    for row in store.before_image_rows():
        rid = int(row["id"])
        while si < len(spans) and spans[si][1] < rid:
            si += 1
        if si >= len(spans) or spans[si][0] > rid:
            if len(out) < 20:
                out.append(f"before-image row {rid} (record {row['record_id']} of {row['action_id']}, round "
                           f"{row['round']}) is in no audit event: it was added outside vecmig")
            continue
        digests[spans[si][2]].update(rid, row["round"], row["action_id"], row["record_id"], bool(row["existed"]),
                                     _bytes(row["payload"]))
    for d, (seq, p) in zip(digests, events, strict=True):
        what = f"the before-images of {p.get('action')} (round {p.get('round')}) recorded in event {seq}"
        expected = int(p.get("count") or 0)
        if d.rows < expected:
            out.append(f"{what}: {expected - d.rows} of {expected} rows were deleted")
        elif d.hexdigest() != p.get("digest"):
            out.append(f"{what} were edited: they no longer match their digest")
    return out


def _bytes(value: Any) -> bytes | None:
    """A payload as bytes, whatever the column ended up holding (SQLite lets an edit store text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _loads_any(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        return text


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _loads(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _check_rounds(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
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


def _check_actions(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
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
        at, audited = done.get((a["round"], a["action_id"]), (None, None))
        if audited is None:
            out.append(f"{where}: a stored result but no action_done (or action_failed) event in the audit log")
            continue
        result = _loads(a["result_json"])
        if result != audited.get("result"):
            out.append(f"{where}: stored result differs from its audit record (event {at})")
        for key in ("records", "bytes"):
            if key in audited and audited[key] != a[key]:
                out.append(f"{where}: stored {key} {a[key]} differs from its audit record {audited[key]} "
                           f"(event {at})")
        if result.get("ok") is True and "source" in result and result.get("source") != result.get("target"):
            out.append(f"{where}: validation is marked ok but its source and target checksums differ")
    return out


def _check_runs(store: StateReader, payloads: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
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
