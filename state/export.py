"""The whole recorded history of a migration, for auditors (`vecmig state export`).

Audit events keep their exact ``actor_json`` / ``data_json`` strings beside the parsed copies,
so anyone can recompute the chain from the export alone (the hash formula is in the schema).
Before-image payloads are record data, not history: only their count is exported. Every
document is validated against ``schemas/state-export.v1.json`` before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from vecmig import __version__
from vecmig.errors import StateError
from vecmig.schemas import load as load_schema
from vecmig.state.identity import now
from vecmig.state.lock import Lock
from vecmig.state.store import StateStore

EXPORT_FORMAT = "vecmig-state-export"
EXPORT_VERSION = 1
SCHEMA_NAME = "state-export.v1"
# JSONL record types, in the order they are written (header first).
SECTIONS = ("round", "run", "action", "cursor", "resource", "audit")


@cache
def _validator(ref: str) -> Draft202012Validator:
    schema = load_schema(SCHEMA_NAME)
    return Draft202012Validator({"$ref": ref, "$defs": schema["$defs"]} if ref else schema)


def validate_document(doc: dict[str, Any]) -> None:
    _raise_first(_validator(""), doc, "export")


def validate_line(line: dict[str, Any]) -> None:
    _raise_first(_validator("#/$defs/jsonl_line"), line, f"{line.get('type')} line")


def _raise_first(validator: Draft202012Validator, doc: Any, what: str) -> None:
    for err in validator.iter_errors(doc):
        at = "/" + "/".join(str(p) for p in err.absolute_path)
        raise StateError(f"state export does not match {SCHEMA_NAME} at {what} {at}: rule '{err.validator}'",
                         hint="this is a bug in vecmig: please report it with `vecmig state verify` output")


def _parse(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:  # a tampered store is exported as it is; verification says so
        return {"unreadable": text}


def _object(text: str) -> dict[str, Any]:
    value = _parse(text)
    return value if isinstance(value, dict) else {"unreadable": text}


def collect(store: StateStore) -> dict[str, Any]:
    ok, detail = store.verify_chain()
    problems = store.verify_records()
    meta = store.meta()
    rounds = []
    for r in store.rounds():
        row = {k: v for k, v in r.items() if k != "plan_json"}
        row["plan"] = _parse(r["plan_json"])
        rounds.append(row)
    actions = []
    for a in store.all_actions():
        row = {k: v for k, v in a.items() if k not in ("params_json", "result_json")}
        row["params"] = _parse(a["params_json"])
        row["result"] = _parse(a["result_json"])
        actions.append(row)
    resources = [{**{k: v for k, v in r.items() if k != "before_json"}, "before": _parse(r["before_json"])}
                 for r in store.resources()]
    audit = [{**ev, "actor": _object(ev["actor_json"]), "data": _object(ev["data_json"])}
             for ev in store.audit_events()]
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "tool_version": __version__,
        "exported_at": now(),
        "migration": store.migration,
        "location": store.location,
        "meta": meta,
        "lock": Lock(store, "export").current(),
        "verification": {"chain_ok": ok, "chain": detail, "records_ok": not problems, "records": problems},
        "counts": store.counts(),
        "rounds": rounds,
        "runs": store.runs(),
        "actions": actions,
        "cursors": store.all_cursors(),
        "resources": resources,
        "audit": audit,
    }


def document(store: StateStore) -> dict[str, Any]:
    doc = _clean(collect(store))
    validate_document(doc)
    return doc


def lines(store: StateStore) -> Iterator[dict[str, Any]]:
    """JSONL: one header line (everything but the lists), then one line per row, audit last."""
    doc = _clean(collect(store))
    validate_document(doc)
    header = {k: v for k, v in doc.items() if k not in {f"{s}s" if s != "audit" else s for s in SECTIONS}}
    yield _checked({"type": "header", "data": header})
    for section in SECTIONS:
        key = section if section == "audit" else f"{section}s"
        for row in doc[key]:
            yield _checked({"type": section, "data": row})


def _checked(line: dict[str, Any]) -> dict[str, Any]:
    validate_line(line)
    return line


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values only (SQLite and PostgreSQL drivers return a few other types)."""
    clean: dict[str, Any] = json.loads(json.dumps(doc, default=str))  # a dict dumped is a dict loaded
    return clean
