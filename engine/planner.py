"""Diff what exists (inventories + state) against the spec and lay out the action graph.

Free of side effects: the planner reads the state store but never writes it, so ``plan``
on a migration that was never applied creates nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from vecmig import __version__, calibrate, embed_change, embed_plan, estimate, indexes, namespaces, pointer, waves
from vecmig.embed_plan import EmbedPlanning
from vecmig.errors import PlanError, SpecError, TerminalError
from vecmig.model import PLAN_FORMAT_VERSION, Action, Estimate, Inventory, Plan, Warning_
from vecmig.providers import provider_class, stores_that
from vecmig.providers.base import CollectionSchema, Provider, Throughput
from vecmig.records import Batch, sparse_of
from vecmig.refresh import Refreshed
from vecmig.spec import Spec
from vecmig.state.reader import StateReader
from vecmig.state.rows import RoundRow
from vecmig.strategies import BUILDERS, cdc, phased
from vecmig.strategies.context import PlanContext
from vecmig.strategies.queries import query_file_changed
from vecmig.strategies.retrieval import retrieval_file_changed
from vecmig.tolerance import describe


def make_plan(spec: Spec, state: StateReader | None, seen: Refreshed) -> Plan:
    # transform.embed: the model is loaded once here (a read) and its width replaces the source's.
    embedded = (embed_plan.prepare(spec, seen.source, seen.embed_sample or seen.sample)
                if spec.transform.embed is not None and seen.source.exists else None)
    check_compatible(spec, seen.source, seen.target, embedded)
    lineage = state.lineage if state else None
    serial = state.serial if state else 0
    notes: list[str] = []
    embed_findings: list[Warning_] = []
    open_round = state.open_round() if state else None
    if open_round is not None and state is not None:
        if open_round["status"] == "rolling_back":
            raise PlanError(f"round {open_round['round']} is being rolled back",
                            hint="run `vecmig rollback SPEC` again to finish it, then plan")
        round_no = open_round["round"]
        failed = failed_validation(state, open_round)
        changed = changed_since_round(spec, open_round, seen) if failed is not None else None
        if failed is not None and not changed and failed.get("extra") and not any(
                a["kind"] == "delete_extra" for a in state.actions(round_no)):
            changed = (f"the target holds {failed['extra']:,} record(s) the source does not have, which no action "
                       "of that round removes")
        if not changed and provider_class(spec.source.provider).positional_shards:
            moved = changed_since_round(spec, open_round, seen)
            if moved:
                changed = (f"{moved}, and the round's shards are positions in it (byte ranges, row groups) "
                           "that no longer cut it")
        if not changed:
            changed = query_file_changed(spec, state, round_no) or retrieval_file_changed(spec, state, round_no)
        if changed:
            # What was copied no longer answers the spec or the source: plan afresh. The old
            # round stays on record (superseded when this plan is applied) so rollback undoes it too.
            round_no += 1
            why = f"failed validation and {changed}" if failed is not None else f"did not finish and {changed}"
            notes.append(f"round {open_round['round']} {why}: "
                         f"re-planned as round {round_no} (round {open_round['round']} is kept for rollback)")
            actions = fresh_actions(spec, state, seen, notes, embedded)
        else:
            actions = remaining_actions(state, open_round, notes)
            done = len(state.actions(round_no)) - len(actions)
            if actions:
                notes.insert(0, f"resuming round {round_no}: {done} action(s) already done, {len(actions)} to go")
            else:
                notes.insert(0, f"round {round_no}: all {done} action(s) are done, but the run stopped before it "
                                "closed the round; `vecmig apply` closes it")
    else:
        last = state.last_round() if state else None
        round_no = (last["round"] + 1) if last else 1
        # The diff of a re-embedded target leaves vectors out: new embedding settings change every record.
        reembed = embed_change.changed(embed_change.last_written(state), embedded.params if embedded else None)
        if reembed is not None and seen.diff is not None:
            seen = replace(seen, diff=embed_change.everything_changed(seen.diff))
        if (last and last["status"] == "complete" and seen.diff is None and unchanged(spec, last, seen)
                and reembed is None):
            actions = []
            notes.append(f"round {last['round']} completed and nothing changed since")
        else:
            actions = fresh_actions(spec, state, seen, notes, embedded)
            if reembed is not None:
                actions = embed_change.with_reason(actions, reembed)
                embed_findings.append(embed_change.finding(reembed))
            if last and last["status"] == "complete":
                notes.append(since_round(spec, last, seen, actions))
    redact = spec.redactor  # parameters, reasons and findings as written: no secret, no resolved ${env:...}
    actions = [replace(a, reason=redact(a.reason), reverse=redact(a.reverse), params=redact.walk(a.params))
               for a in actions]
    warnings = [replace(w, message=redact(w.message), hint=redact(w.hint))
                for w in lint(spec, seen, state) + lint_ids(spec, seen) + lint_namespaces(spec, seen)
                + lint_sample(spec, seen, embedded) + cdc.findings(spec, seen, state) + phased.findings(spec, seen)
                + index_findings(spec, seen, state)
                + (embed_plan.findings(spec, seen.source, seen.target, embedded) if embedded else [])
                + embed_findings]
    return Plan(
        records=plan_records(seen, actions),
        diff=diff_summary(spec, seen),
        start_up=start_up(spec, state, seen),
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
        warnings=tuple(warnings),
        notes=tuple(redact(n) for n in notes),
        embedding=(redact.walk(embedded.summary(embed_plan.texts_moved(actions)))
                   if embedded is not None and embed_plan.texts_moved(actions) else None),
    )


def fresh_actions(spec: Spec, state: StateReader | None, seen: Refreshed, notes: list[str],
                  embedded: EmbedPlanning | None = None) -> list[Action]:
    ctx = context(spec, state, seen, embedded)
    actions = calibrate.calibrated(BUILDERS[spec.strategy.type](ctx), ctx.fits, source_records=ctx.source.count or 0,
                                   target_records=ctx.target.count or 0,
                                   upsert_slowdown=calibrate.upsert_factor(ctx.read_model, ctx.write_model,
                                                                           spec.strategy.concurrency),
                                   concurrency=spec.strategy.concurrency,
                                   measured=ctx.source_cls.measured_estimates and ctx.target_cls.measured_estimates)
    actions = embed_plan.with_embedding(actions, embedded)
    if ctx.copy_batch != spec.strategy.batch_size and any(a.kind == "copy_shard" for a in actions):
        notes.append(f"copy batches hold {ctx.copy_batch:,} records, not strategy.batch_size "
                     f"{spec.strategy.batch_size:,}: {spec.target.provider} packs upserts into requests "
                     "by size and fills them only from large batches (a checkpoint follows each batch)")
    return actions


def models(spec: Spec, state: StateReader | None,
           seen: Refreshed) -> tuple[Throughput, Throughput, float, dict[str, calibrate.Fit]]:
    """Both sides' speed models for records of the source's shape, the machine factor they are
    scaled by (1: plans are a function of their inputs alone, vecmig.calibrate), and what
    earlier rounds measured."""
    source_cls, target_cls = provider_class(spec.source.provider), provider_class(spec.target.provider)
    c = spec.strategy.concurrency
    read = source_cls.throughput_for(seen.source, c, spec.source)
    write = target_cls.throughput_for(seen.source, c, spec.target)
    if not (source_cls.measured_estimates and target_cls.measured_estimates):
        return read, write, 1.0, {}
    fits = calibrate.history(state, spec.source.provider, spec.target.provider)
    return read, write, 1.0, fits


def start_up(spec: Spec, state: StateReader | None, seen: Refreshed) -> Estimate | None:
    """The plan's reads and the command's start-up (vecmig.calibrate.start_up)."""
    source_cls, target_cls = provider_class(spec.source.provider), provider_class(spec.target.provider)
    read, write, factor, _ = models(spec, state, seen)
    diff = seen.diff
    return calibrate.start_up(
        read, write, source_records=seen.source.count or 0,
        diff_method=diff.method if diff is not None else "none",
        diff_source=diff.source_records if diff is not None else 0,
        diff_target=diff.target_records if diff is not None else 0,
        measured=source_cls.measured_estimates and target_cls.measured_estimates, factor=factor)


def failed_validation(state: StateReader, round_row: RoundRow) -> dict[str, Any] | None:
    """The findings of the open round's failed validation ({} when it kept none), or None."""
    for row in state.actions(round_row["round"]):
        if row["kind"].startswith("validate") and row["status"] == "failed":
            if "completeness check failed" not in (row["error"] or ""):
                return None  # it failed for another reason (a store unreachable): validate again
            try:
                found = json.loads(row["result_json"]) if row["result_json"] else {}
            except ValueError:
                found = {}
            if isinstance(found, dict) and found.get("ok") is False:
                return found
            return {}  # a mismatch without findings kept (an older vecmig): every shard is copied again
    return None


def changed_since_round(spec: Spec, round_row: RoundRow, seen: Refreshed) -> str | None:
    if round_row["spec_hash"] != spec.spec_hash:
        return "the spec changed since it started"
    # Content digests exist only where a diff ran (a target holding records, no round open):
    # compared when both sides have one, else the inventories are compared without them.
    recorded = Inventory.from_json(json.loads(round_row["plan_json"])["source"])
    if recorded.content is not None and seen.source.content is not None:
        same = recorded.fingerprint == seen.source.fingerprint
    else:
        same = without_content(recorded).fingerprint == without_content(seen.source).fingerprint
    return None if same else "the source changed since it started"


def without_content(inventory: Inventory) -> Inventory:
    return replace(inventory, content=None)


def _stores_taking(dimension: int) -> str:
    return stores_that(lambda c: (c.capabilities.max_dimension or dimension) >= dimension)


def _sparse_stores() -> str:
    return stores_that(lambda c: c.capabilities.sparse)


def check_compatible(spec: Spec, source: Inventory, target: Inventory,
                     embedded: EmbedPlanning | None = None) -> None:
    if not source.exists:
        key = "/source/collection" if spec.source.collection else "/source/connection"
        raise PlanError(f"source {spec.source.label} does not exist", where=spec.where(key),
                        hint="check the source connection and collection name")
    limit = provider_class(spec.target.provider).capabilities.max_dimension
    if embedded is not None:
        # Re-embedding: the target takes the new model's vectors, so the source's width and
        # metric no longer bind it; what an existing target already is still does.
        embed_plan.check_target(spec, target, embedded, limit)
        check_existing_target(spec, target)
        return
    if limit and source.dimension and source.dimension > limit:
        raise PlanError(
            f"the source vectors have {source.dimension} dimensions; {spec.target.provider} holds at most {limit}",
            where=spec.where("/target/provider"),
            hint=f"choose a target that takes this dimension ({_stores_taking(source.dimension)}), "
                 "or re-embed with a smaller model",
        )
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
    check_existing_target(spec, target)
    if target.exists and target.dimension and source.dimension and target.dimension != source.dimension:
        raise PlanError(
            f"target {spec.target.label} exists with {target.dimension} dimensions; the source has {source.dimension}",
            where=spec.where("/target/collection"),
            hint="choose a new target collection, or drop the existing one",
        )


def check_existing_target(spec: Spec, target: Inventory) -> None:
    create = spec.target.create
    # target.create describes a collection vecmig creates: on one that exists, a setting it
    # does not already have would be ignored, so it is refused (the dimension is checked apart).
    if target.exists and create and create.metric and target.metric and create.metric != target.metric:
        raise SpecError(
            f"target.create.metric is {create.metric} but target {spec.target.label} exists with metric "
            f"{target.metric}, which vecmig does not change",
            where=spec.where("/target/create/metric"),
            hint=f"set target.create.metric to {target.metric}, or choose a new target collection",
        )
    if target.exists and create and create.id_type and target.id_type and create.id_type != target.id_type:
        raise SpecError(
            f"target.create.id_type is {create.id_type} but target {spec.target.label} exists with "
            f"{target.id_type} ids, which vecmig does not change",
            where=spec.where("/target/create/id_type"),
            hint=f"set target.create.id_type to {target.id_type}, or choose a new target collection",
        )


def target_schema(spec: Spec, source: Inventory, sample: Batch | None = None,
                  target: Inventory | None = None, embedded: EmbedPlanning | None = None) -> CollectionSchema:
    create = spec.target.create
    # An existing target already has a dimension: an empty source (a file holding no record)
    # has none to offer, and nothing is to be created.
    existing = target.dimension if target is not None and target.exists else None
    dimension = (create.dimension if create else None) or source.dimension or existing
    if not dimension:
        raise PlanError("the source's vector dimension is unknown and target.create.dimension is not set",
                        where=spec.where("/target"), hint="set target.create.dimension")
    metric = (create.metric if create else None) or source.metric or "cosine"
    if embedded is not None:
        dimension = embedded.dimension
        metric = embed_plan.target_metric(spec, target)
    id_type = (create.id_type if create else None) or source.id_type or "text"
    metadata = namespaces.mapped_fields(spec, dict(source.fields))
    target_fields = spec.target.fields.metadata
    typed_target = (target_fields is None and provider_class(spec.target.provider).capabilities.metadata_default
                    == "typed") or isinstance(target_fields, tuple | list)
    if source.metadata_column and typed_target:
        raise PlanError(
            f"the source keeps its metadata in one JSON column ({source.metadata_column}), so its keys "
            "are not known without reading every record",
            where=spec.where("/target/fields"),
            hint="set target.fields.metadata to a column name to store the metadata as one jsonb document",
        )
    has_text = bool(spec.source.fields.text) or source.has_text
    metadata = embed_plan.check_keep_old(spec, metadata)
    return CollectionSchema(dimension=dimension, metric=metric, id_type=id_type, metadata=metadata, text=has_text,
                            sparse=source_has_sparse(source, sample))


def source_has_sparse(source: Inventory, sample: Batch | None) -> bool:
    """The source declares a sparse field (a Pinecone hybrid index) or its sample holds sparse values."""
    return source.sparse or (sample is not None and any(s is not None for s in sparse_of(sample)))


def foreign_records(state: StateReader | None, seen: Refreshed) -> tuple[int, int | None]:
    """How many records the target held that this migration did not write, and the round whose
    plan saw them (None: seen now, no round of this migration has written to it yet).

    A collection this migration created holds none; a target that existed before it holds what
    the first round still on record found there (what vecmig wrote since is its own)."""
    if not seen.target.exists or target_created_by_vecmig(state):
        return 0, None
    live = [r for r in state.rounds() if r["status"] != "rolled_back"] if state else []
    if live:
        before = json.loads(live[0]["plan_json"]).get("target") or {}
        return (int(before.get("count") or 0) if before.get("exists") else 0), live[0]["round"]
    return int(seen.target.count or 0), None


def context(spec: Spec, state: StateReader | None, seen: Refreshed,
            embedded: EmbedPlanning | None = None) -> PlanContext:
    owned = target_created_by_vecmig(state)
    source_cls = provider_class(spec.source.provider)
    target_cls = provider_class(spec.target.provider)
    preferred = target_cls.capabilities.preferred_batch_records or 0
    read_model, write_model, _, fits = models(spec, state, seen)
    return PlanContext(
        spec=spec,
        source=seen.source,
        target=seen.target,
        source_cls=source_cls,
        target_cls=target_cls,
        shards=seen.shards,
        schema=target_schema(spec, seen.source, seen.sample, seen.target, embedded),
        foreign_target=seen.target.exists and not owned,
        target_owned=owned and seen.target.exists,
        foreign_count=foreign_records(state, seen)[0],
        # Instances are never connected here: only their planning hooks run (no I/O).
        source_provider=source_cls(spec.source),
        target_provider=target_cls(spec.target),
        # Both sides move records of the source's shape.
        source_throughput=read_model,
        target_throughput=write_model,
        batch_size=max(spec.strategy.batch_size, preferred),
        diff=seen.diff,
        fits=fits,
        feed=seen.feed,
        embed=embedded.params if embedded is not None else None,
    )


def target_created_by_vecmig(state: StateReader | None) -> bool:
    if state is None:
        return False
    live_rounds = {r["round"] for r in state.rounds() if r["status"] != "rolled_back"}
    return any(
        a["kind"] == "create_collection" and a["status"] in ("done", "running") and a["round"] in live_rounds
        for a in state.all_actions()
    )


def remaining_actions(state: StateReader, round_row: RoundRow, notes: list[str] | None = None) -> list[Action]:
    """An open round resumes with the exact actions it started with; done ones drop out.

    After a failed validation, the copy shards it found missing or different records in
    run again from their start (status ``recopy``: apply resets their cursors), and so does
    delete_extra when it found records the source does not have; when the validation kept
    no findings, every shard is copied again.
    """
    notes = notes if notes is not None else []
    recorded = json.loads(round_row["plan_json"])
    status = {a["action_id"]: a["status"] for a in state.actions(round_row["round"])}
    found = failed_validation(state, round_row)
    redo: dict[str, str] = {}
    if found is not None:
        redo = recopy_reasons(found, [Action.from_json(raw) for raw in recorded["actions"]])
        notes.extend(redo.values())
    out = []
    for raw in recorded["actions"]:
        action = Action.from_json(raw)
        if action.id in redo:
            # Copied again whole: the validation's findings, not the plan's list, are what is wrong now.
            params = {k: v for k, v in action.params.items() if k != "ids"} if action.kind == "copy_shard" \
                else action.params
            out.append(replace(action, status="recopy", reason=redo[action.id], params=params))
            continue
        if status.get(action.id) == "done":
            continue
        if action.kind == "copy_shard":
            cur = state.cursor(round_row["round"], action.id)
            if cur and cur["records_done"]:
                total = action.estimate.records
                left = max(total - cur["records_done"], 0)
                frac = left / total if total else 0.0
                action = replace(
                    action,
                    status="resume",
                    reason=f"{action.reason} (resuming after {cur['records_done']:,} records)",
                    # What is left to move costs what is left to pay: scaled, cost lines too.
                    estimate=replace(estimate.scaled(action.estimate, frac), records=left),
                )
        out.append(action)
    return out


def recopy_reasons(found: dict[str, Any], actions: list[Action]) -> dict[str, str]:
    """action id -> why it runs again, from what a failed validation found."""
    # Strategy phased: every wave copies the same shards; only the failed wave's copies run again.
    wave = found.get("wave")
    shards = {int(a.params.get("index", -1)): a for a in actions
              if a.kind == "copy_shard" and waves.wave_of(a.id) == wave}
    out: dict[str, str] = {}
    entries = [e for e in found.get("shards", []) if e.get("missing") or e.get("different")]
    if not found.get("shards"):
        for a in shards.values():
            out[a.id] = (f"re-copying {a.id}: the last validation failed and kept no per-shard findings, "
                         "so every shard is copied again")
    for e in entries:
        shard = shards.get(int(e["shard"]))
        if shard is None:
            continue
        parts = [f"{e['missing']} record(s) missing" if e.get("missing") else "",
                 f"{e['different']} record(s) different" if e.get("different") else ""]
        why = " and ".join(p for p in parts if p)
        detail = ""
        if e.get("differences"):
            d = e["differences"][0]
            detail = f" (e.g. id {d['id']}: {d['field']})"
        again = ""
        if e.get("failed_again"):
            again = ("; copying it again did not fix it last time, with the source unchanged: something changes "
                     "the target after vecmig writes it, or the target cannot hold these values")
        out[shard.id] = f"re-copying shard {e['shard']}: validation found {why}{detail}{again}"
    seal = next((a for a in actions if a.kind == "finalize"), None)
    if seal is not None and any(a.kind == "copy_shard" for a in actions if a.id in out):
        # A store that stages parts (files) holds the re-copied records only once they are merged again.
        out[seal.id] = "merging the staged parts again: shard(s) were re-copied"
    if found.get("extra"):
        prune = next((a for a in actions if a.kind == "delete_extra"), None)
        if prune is not None:
            out[prune.id] = (f"deleting again: validation found {found['extra']:,} target record(s) "
                             "that the source does not have")
    return out


def plan_records(seen: Refreshed, actions: list[Action]) -> dict[str, int] | None:
    """The record-level totals: what the planned actions move, and every other source record
    as unchanged. Extras the plan does not remove (no delete action) are not counted."""
    diff = seen.diff
    if diff is None:
        return None
    counts = diff.counts
    deleting = any(a.kind == "delete_extra" for a in actions)
    return {"add": counts.add, "change": counts.change, "delete": counts.delete if deleting else 0,
            "unchanged": counts.unchanged}


def diff_summary(spec: Spec, seen: Refreshed) -> dict[str, Any] | None:
    """How the diff was computed and what it read, priced by each side's cost hook (a metered
    store bills the reads: Pinecone read units). Deterministic: counts, not timings."""
    diff = seen.diff
    if diff is None or diff.method in ("none", "empty"):
        return None
    out = diff.summary_json()
    nbytes = seen.source.bytes_per_record or 0
    cost = estimate.merge_cost(*(
        provider_class(store.provider)(store).cost("scan", n, n * nbytes, spec.cost.for_provider(store.provider))
        for store, n in ((spec.source, diff.source_records), (spec.target, diff.target_records))
        if diff.method == "scan" and n))
    if cost:
        out["cost"] = cost
    if diff.delete_count:
        out["target_only"] = diff.delete_count
    return out


def since_round(spec: Spec, last: RoundRow, seen: Refreshed, actions: list[Action]) -> str:
    """The note on a plan made after a completed round: what changed since, in records."""
    done = f"round {last['round']} completed"
    counts = seen.diff.counts if seen.diff is not None else None
    if counts is None:
        return f"{done}, but {what_changed(spec, last, seen)}: the copy runs again (upserts are idempotent)"
    if not counts.moves:
        spec_note = " (the spec changed, but no record differs)" if last["spec_hash"] != spec.spec_hash else ""
        if not actions:
            return f"{done} and no record changed since{spec_note}"
        return f"{done} and no record changed since{spec_note}; other actions are planned"
    return f"{done}; since then {counts.moves:,} record(s) differ between source and target"


def unchanged(spec: Spec, last: RoundRow, seen: Refreshed) -> bool:
    return (last["spec_hash"] == spec.spec_hash
            and last["source_fingerprint"] == seen.source.fingerprint
            and last["target_fingerprint"] == seen.target.fingerprint)


def what_changed(spec: Spec, last: RoundRow, seen: Refreshed) -> str:
    if last["spec_hash"] != spec.spec_hash:
        return "the spec changed"
    if last["source_fingerprint"] != seen.source.fingerprint:
        return "the source changed"
    return "the target changed"


def index_findings(spec: Spec, seen: Refreshed, state: StateReader | None) -> list[Warning_]:
    """What the target's index will be where it is not what one might expect (vecmig.indexes)."""
    owned = target_created_by_vecmig(state) and seen.target.exists
    target_cls = provider_class(spec.target.provider)
    return list(indexes.resolve(spec, seen.source, seen.target, target_cls, owned).findings)


def lint(spec: Spec, seen: Refreshed, state: StateReader | None = None) -> list[Warning_]:
    out = []
    if seen.source.count is not None and not seen.source.count_exact:
        out.append(Warning_("VM101", "source count is an estimate; shard sizes may be uneven"))
    # Only records this migration did not write count: never those of a collection it created,
    # nor what its own earlier (or interrupted) rounds put into an existing one.
    foreign, since = foreign_records(state, seen)
    if foreign > 0:
        held = (f"target already holds {foreign:,} records" if since is None
                else f"target held {foreign:,} records before this migration wrote to it (round {since})")
        out.append(Warning_("VM102", f"{held}: overwritten and removed "
                                     "records are saved as before-images in state so rollback can restore them"))
    if seen.source.exists and not seen.source.count:
        out.append(Warning_("VM103", "source is empty: the target " + (
            "ends up empty" if seen.target.exists else "will be created empty")))
    live = spec.target.live_pointer
    if live is not None and live.file:
        path = spec.target.path(live.file)
        problem = pointer.replace_problem(path)
        if problem is not None:
            written = ((spec.public.get("target") or {}).get("pointer") or {}).get("file", live.file)
            shown = pointer.shown_path(str(written), path)
            out.append(Warning_(pointer.POINTER_CODE, f"target.pointer.file {shown} {problem}: it is not a vecmig "
                                "pointer file, and cutover would replace it", "error", pointer.REPLACE_HINT))
    out.extend(vector_tolerance(spec, seen))
    return out


# Lint code: a store keeps float32 vectors only within N ulp (Capabilities.vector_ulps).
VECTOR_ULP = "VM118"


def vector_tolerance(spec: Spec, seen: Refreshed) -> list[Warning_]:
    """VM118 (info): a side keeps vectors only within N ulp of what was written, so validation and
    the diff compare the pair's vectors within it (ids, metadata and text stay exact)."""
    create = spec.target.create
    target_metric = seen.target.metric if seen.target.exists else (
        (create.metric if create else None) or seen.source.metric or "cosine")
    said: list[str] = []
    most = 0
    for role, store, metric in (("source", spec.source.provider, seen.source.metric if seen.source.exists else None),
                                ("target", spec.target.provider, target_metric)):
        ulp = provider_class(store).vector_ulps_for(metric)
        if ulp > 0:
            said.append(f"{role} {describe(store, metric, ulp)}")
            most = max(most, ulp)
    if not said:
        return []
    return [Warning_(VECTOR_ULP, f"{'; '.join(said)}: validation and the diff compare vectors within {most} ulp "
                                 "(ids, metadata and text exactly)", "info",
                     "nothing to do; for bit-exact vectors choose a target (or metric) that keeps float32 bits")]


def lint_ids(spec: Spec, seen: Refreshed) -> list[Warning_]:
    """The identity rules (vecmig.ids) on the source's first ids: a repeated id (VM107), integer
    and string ids mixed (VM108), an id that is no id (VM109). Errors: apply's validate_ids
    refuses the same on every id before writing anything."""
    report = seen.id_sample
    if report is None:
        return []
    found = report.problem()
    if found is None:
        return []
    if found[0] == "VM107":
        found = namespaces.collision(spec, report.repeated_message()) or found
    code, message, hint = found
    return [Warning_(code, f"{message} (in the first {report.checked:,} source ids)", "error", hint)]


def lint_namespaces(spec: Spec, seen: Refreshed) -> list[Warning_]:
    """Source namespaces that the target would not keep apart: merged without a trace (VM112),
    or two renamed into one target namespace (``mapping.namespace.names``, VM110)."""
    spaces = sorted({s["namespace"] for s in seen.shards if isinstance(s.get("namespace"), str)})
    rule = namespaces.rule(spec)
    if not namespaces.target_by_namespace(spec):
        if len(spaces) > 1 and (rule is None or rule.to != "field"):
            shown = ", ".join(repr(s) for s in spaces[:5]) + (", ..." if len(spaces) > 5 else "")
            return [Warning_(namespaces.DROPPED, f"the source's {len(spaces)} namespaces ({shown}) are merged into "
                             f"one place in the {spec.target.provider} target: which namespace each record came from "
                             "is not kept", "warning",
                             f"keep it in a metadata field: `{namespaces.FIELD_HINT}`")]
        return []
    if rule is None:
        return []
    into: dict[str, str] = {}
    for shard in seen.shards:
        ns = shard.get("namespace")
        if not isinstance(ns, str):
            continue
        new = namespaces.rename(spec, ns)
        if new in into and into[new] != ns:
            return [Warning_(namespaces.COLLISION, f"source namespaces {into[new]!r} and {ns!r} both go to target "
                             f"namespace {new!r} (mapping.namespace.names), where the same id would be one record",
                             "error", "give each source namespace its own target namespace in "
                                      "mapping.namespace.names")]
        into[new] = ns
    return []


# Records of the sample that are not unit length, beyond which a metric change is flagged.
NORM_TOLERANCE = 1e-3


def _mapped_sample(spec: Spec, sample: Batch) -> Batch:
    """The sample as the target receives it (vecmig.namespaces.map_batch), in one batch."""
    parts = namespaces.map_batch(spec, sample)
    if len(parts) == 1:
        return parts[0].batch
    out = sample.take([p for m in parts for p in m.positions])
    out.ids = [i for m in parts for i in m.batch.ids]
    out.metadata = [d for m in parts for d in m.batch.metadata]
    return out


def lint_sample(spec: Spec, seen: Refreshed, embedded: EmbedPlanning | None = None) -> list[Warning_]:
    """Findings on the source's first records, mapped as the copy maps them.

    The target's own rules come from its ``lint`` hook (Pinecone: PC001-PC016; JSONL, Parquet
    and pgvector: FD001-FD007); the engine
    adds what no single provider can judge: sparse values a target cannot hold, and a
    metric chosen for vectors that are not normalised. Found here on a sample, enforced on
    every record during apply (the target's upsert, and copy_shard for sparse values).
    """
    sample = seen.sample
    if sample is None or not len(sample) or not seen.source.exists:
        return []
    try:
        mapped = _mapped_sample(spec, sample)
    except TerminalError as exc:
        return [Warning_(namespaces.UNMAPPABLE, f"{exc.message} (in the first {len(sample):,} source records)",
                         "error", exc.hint or "")]
    target_cls = provider_class(spec.target.provider)
    try:
        schema = target_schema(spec, seen.source, sample, seen.target, embedded)
    except PlanError:
        return []  # the same problem fails the plan where the actions are laid out
    if embedded is not None:
        # The target receives the new model's vectors, not these: unit vectors of its width
        # stand in for them, so the target's own rules judge the rest of each record.
        mapped = replace(mapped, vectors=np.full((len(mapped), schema.dimension), schema.dimension ** -0.5,
                                                 dtype=np.float32))
    out: list[Warning_] = []
    where = f"in the first {len(mapped):,} source records"
    target: Provider = target_cls(spec.target)
    for f in target.lint(mapped, schema):
        out.append(Warning_(f.code, f"{f.message} ({where})", f.severity, f.hint))
    if seen.target.exists:
        for f in target.check_existing_target(seen.target, mapped, schema):
            out.append(Warning_(f.code, f"{f.message} ({where})", f.severity, f.hint))
    with_sparse = [rid for rid, sp in zip(mapped.ids, sparse_of(mapped), strict=True) if sp is not None]
    if not target_cls.capabilities.sparse:
        if with_sparse:
            shown = ", ".join(repr(r) for r in with_sparse[:3]) + (", ..." if len(with_sparse) > 3 else "")
            out.append(Warning_(
                "VM104", f"{len(with_sparse)} record(s) {where} carry sparse values (e.g. {shown}), which "
                         f"{spec.target.provider} cannot store: apply would stop at the first of them",
                "error", f"migrate into a target that holds sparse values ({_sparse_stores()}), "
                         "or remove them from the source first"))
        elif seen.source.sparse:
            out.append(Warning_(
                "VM105", f"the source index has a sparse field, though no record {where} uses it; "
                         f"{spec.target.provider} cannot store sparse values, so a record that has them "
                         "stops the apply",
                "warning", "check the source for sparse values, or migrate into a target that holds them"))
    if (embedded is None and seen.source.metric is None and schema.metric in ("dotproduct", "euclidean")
            and mapped.vectors.size):
        norms = np.linalg.norm(np.asarray(mapped.vectors, dtype=np.float64), axis=1)
        off = int(np.count_nonzero(np.abs(norms - 1.0) > NORM_TOLERANCE))
        if off:
            out.append(Warning_(
                "VM106", f"target metric {schema.metric}, but {off} of {len(mapped):,} sampled vectors are not "
                         "unit length and the source declares no metric: rankings may differ from the source's",
                "warning", "normalise the vectors before migrating, or set target.create.metric to the metric "
                           "the embeddings were trained for (usually cosine)"))
    return out
