"""Diff what exists (inventories + state) against the spec and lay out the action graph.

Free of side effects: the planner reads the state store but never writes it, so ``plan``
on a migration that was never applied creates nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from vecmig import __version__
from vecmig.errors import PlanError, SpecError
from vecmig.model import PLAN_FORMAT_VERSION, Action, Estimate, Inventory, Plan, Warning_
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.refresh import Refreshed
from vecmig.spec import Spec
from vecmig.state.store import StateStore
from vecmig.strategies import BUILDERS
from vecmig.strategies.context import PlanContext


def make_plan(spec: Spec, state: StateStore | None, seen: Refreshed) -> Plan:
    check_compatible(spec, seen.source, seen.target)
    lineage = state.lineage if state else None
    serial = state.serial if state else 0
    notes: list[str] = []
    open_round = state.open_round() if state else None
    if open_round is not None and state is not None:
        if open_round["status"] == "rolling_back":
            raise PlanError(f"round {open_round['round']} is being rolled back",
                            hint="run `vecmig rollback SPEC` again to finish it, then plan")
        round_no = open_round["round"]
        actions = remaining_actions(state, open_round)
        done = len(state.actions(round_no)) - len(actions)
        notes.append(f"resuming round {round_no}: {done} action(s) already done, {len(actions)} to go")
    else:
        last = state.last_round() if state else None
        round_no = (last["round"] + 1) if last else 1
        if last and last["status"] == "complete" and unchanged(spec, last, seen):
            actions = []
            notes.append(f"round {last['round']} completed and nothing changed since")
        else:
            if last and last["status"] == "complete":
                notes.append(f"round {last['round']} completed, but {what_changed(spec, last, seen)}: "
                             "the copy runs again (upserts are idempotent)")
            ctx = context(spec, state, seen)
            actions = BUILDERS[spec.strategy.type](ctx)
    return Plan(
        format_version=PLAN_FORMAT_VERSION,
        tool_version=__version__,
        migration=spec.name,
        spec_hash=spec.spec_hash,
        spec=spec.public,
        strategy=spec.strategy.type,
        source=seen.source,
        target=seen.target,
        state_lineage=lineage,
        state_serial=serial,
        round=round_no,
        actions=tuple(actions),
        warnings=tuple(lint(spec, seen)),
        notes=tuple(notes),
    )


def check_compatible(spec: Spec, source: Inventory, target: Inventory) -> None:
    if not source.exists:
        key = "/source/collection" if spec.source.collection else "/source/connection"
        raise PlanError(f"source {spec.source.label} does not exist", where=spec.where(key),
                        hint="check the source connection and collection name")
    create = spec.target.create
    if create and create.dimension and source.dimension and create.dimension != source.dimension:
        raise SpecError(
            f"target.create.dimension is {create.dimension} but the source vectors have {source.dimension} dimensions",
            where=spec.where("/target/create/dimension"),
            hint=f"set target.create.dimension to {source.dimension} (re-embedding is not configured)",
        )
    if create and create.metric and source.metric and create.metric != source.metric:
        raise SpecError(
            f"target.create.metric is {create.metric} but the source is indexed for {source.metric}",
            where=spec.where("/target/create/metric"),
            hint=f"set target.create.metric to {source.metric}, or drop it to keep the source's metric",
        )
    if target.exists and target.dimension and source.dimension and target.dimension != source.dimension:
        raise PlanError(
            f"target {spec.target.label} exists with {target.dimension} dimensions; the source has {source.dimension}",
            where=spec.where("/target/collection"),
            hint="choose a new target collection, or drop the existing one",
        )


def target_schema(spec: Spec, source: Inventory) -> CollectionSchema:
    create = spec.target.create
    dimension = (create.dimension if create else None) or source.dimension
    if not dimension:
        raise PlanError("the source's vector dimension is unknown and target.create.dimension is not set",
                        where=spec.where("/target"), hint="set target.create.dimension")
    metric = (create.metric if create else None) or source.metric or "cosine"
    id_type = (create.id_type if create else None) or source.id_type or "text"
    metadata = {}
    for name, kind in source.fields.items():
        if name in spec.mapping.drop:
            continue
        metadata[dict(spec.mapping.rename).get(name, name)] = kind
    if source.extra.get("metadata_column") and not isinstance(spec.target.fields.metadata, str):
        raise PlanError(
            f"the source keeps its metadata in one JSON column ({source.extra['metadata_column']}), so its keys "
            "are not known without reading every record",
            where=spec.where("/target/fields"),
            hint="set target.fields.metadata to a column name to store the metadata as one jsonb document",
        )
    # Providers say whether records carry text: files by a flag, pgvector by naming the column.
    has_text = bool(spec.source.fields.text) or bool(source.extra.get("text")) or bool(
        source.extra.get("text_column"))
    return CollectionSchema(dimension=dimension, metric=metric, id_type=id_type, metadata=metadata, text=has_text)


def context(spec: Spec, state: StateStore | None, seen: Refreshed) -> PlanContext:
    owned = target_created_by_vecmig(state)
    return PlanContext(
        spec=spec,
        source=seen.source,
        target=seen.target,
        source_cls=provider_class(spec.source.provider),
        target_cls=provider_class(spec.target.provider),
        shards=seen.shards,
        schema=target_schema(spec, seen.source),
        foreign_target=seen.target.exists and not owned,
        target_owned=owned and seen.target.exists,
    )


def target_created_by_vecmig(state: StateStore | None) -> bool:
    if state is None:
        return False
    live_rounds = {r["round"] for r in state.rounds() if r["status"] != "rolled_back"}
    return any(
        a["kind"] == "create_collection" and a["status"] in ("done", "running") and a["round"] in live_rounds
        for a in state.all_actions()
    )


def remaining_actions(state: StateStore, round_row: dict[str, Any]) -> list[Action]:
    """An open round resumes with the exact actions it started with; done ones drop out."""
    recorded = json.loads(round_row["plan_json"])
    status = {a["action_id"]: a["status"] for a in state.actions(round_row["round"])}
    out = []
    for raw in recorded["actions"]:
        action = Action.from_json(raw)
        if status.get(action.id) == "done":
            continue
        if action.kind == "copy_shard":
            cur = state.cursor(round_row["round"], action.id)
            if cur and cur["records_done"]:
                total = action.estimate.records
                left = max(total - cur["records_done"], 0)
                frac = left / total if total else 0.0
                e = action.estimate
                action = replace(
                    action,
                    status="resume",
                    reason=f"{action.reason} (resuming after {cur['records_done']:,} records)",
                    estimate=Estimate(left, int(e.bytes * frac), round(e.seconds_low * frac, 3),
                                      round(e.seconds_high * frac, 3), e.cost),
                )
        out.append(action)
    return out


def unchanged(spec: Spec, last: dict[str, Any], seen: Refreshed) -> bool:
    return (last["spec_hash"] == spec.spec_hash
            and last["source_fingerprint"] == seen.source.fingerprint
            and last["target_fingerprint"] == seen.target.fingerprint)


def what_changed(spec: Spec, last: dict[str, Any], seen: Refreshed) -> str:
    if last["spec_hash"] != spec.spec_hash:
        return "the spec changed"
    if last["source_fingerprint"] != seen.source.fingerprint:
        return "the source changed"
    return "the target changed"


def lint(spec: Spec, seen: Refreshed) -> list[Warning_]:
    out = []
    if seen.source.count is not None and not seen.source.count_exact:
        out.append(Warning_("VM101", "source count is an estimate; shard sizes may be uneven"))
    if seen.target.exists and (seen.target.count or 0) > 0:
        out.append(Warning_("VM102", f"target already holds {seen.target.count:,} records: overwritten and removed "
                                     "records are saved as before-images in state so rollback can restore them"))
    if seen.source.exists and not seen.source.count:
        out.append(Warning_("VM103", "source is empty: the target will be created empty"))
    return out
