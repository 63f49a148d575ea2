"""phased: the records move in waves, each copied, validated and (where it names an alias)
switched before the next starts.

validate ids → create → index (readers switched after a wave must find one) → for each wave:
copy its records → validate them → switch its alias → a gate (``approve_wave``: apply stops
here unless --auto-approve) → after the last wave: prune extras → the spec's own cutover.

Membership is decided per record by the first-match rule (vecmig.waves): a namespace wave reads
only its namespace's shards, an id-range wave the integer-id shards its range overlaps, a filter
wave every shard; each writes only the records it takes. Every wave's copy journals the ids it
writes (before-images, "absent" ones in a collection vecmig created), so ``rollback --wave``
deletes exactly that wave's records.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vecmig import estimate, namespaces, pointer, waves
from vecmig.actions.params import ValidateCompletenessParams
from vecmig.errors import PlanError
from vecmig.model import Action, Warning_
from vecmig.records import Batch
from vecmig.refresh import Refreshed
from vecmig.spec import Spec
from vecmig.strategies import common
from vecmig.strategies.context import PlanContext
from vecmig.strategies.queries import validate_queries
from vecmig.strategies.retrieval import validate_retrieval
from vecmig.waves import Wave

LEFT_BEHIND = "VM150"  # rest: false leaves records behind


def build(ctx: PlanContext) -> list[Action]:
    spec = ctx.spec
    if ctx.target_cls.needs_finalize:
        raise PlanError(f"strategy phased writes the target wave by wave, and {spec.target.provider} is written "
                        "once, at the end (staged parts merged into one file)", where=spec.where("/strategy/type"),
                        hint="use strategy big-bang for a file target")
    layout = wave_layout(ctx)
    prelude = common.validate_ids(ctx)
    prelude += common.create_target(ctx, common.ids(prelude))
    prelude += common.build_index(ctx, common.ids(prelude[-1:]))
    copies = common.copy_shards(ctx, ())
    actions = list(prelude)
    after = common.ids(prelude[-1:])
    for k, wave in enumerate(layout):
        nxt = layout[k + 1].name if k + 1 < len(layout) else None
        made = wave_actions(ctx, wave, k, len(layout), nxt, copies, after)
        actions += made
        if made:
            after = common.ids(made[-1:])
    prune = ctx.target_owned or (ctx.target.exists and ctx.foreign_count == 0)
    if prune:
        tail = common.delete_extra(ctx, after)
        actions += tail
        after = common.ids(tail[-1:]) or after
    if common.writes(actions):
        # The whole collection once every wave is in, before the spec's own switch: waves whose
        # records no query can be kept to (id ranges, the rest) are gated here, and retrieval
        # quality (validate.retrieval) is measured on the whole collection.
        for gate in (validate_queries, validate_retrieval):
            final = gate(ctx, after)
            actions += final
            after = common.ids(final[-1:]) or after
    if common.needs_cutover(ctx):
        actions += common.cutover(ctx, after)
    if not common.writes(actions):
        actions = [a for a in actions if a.kind not in ("validate_ids", "approve_wave")]
    return actions


def wave_layout(ctx: PlanContext) -> list[Wave]:
    spaces = sorted({ns for s in ctx.shards if (ns := waves.shard_namespace(s)) is not None})
    if ctx.spec.strategy.waves_by_namespace and not spaces:
        raise PlanError(f"waves: {{by: namespace}}, but {ctx.spec.source.label} has no namespaces to split by",
                        where=ctx.spec.where("/strategy/waves"), hint="list the waves (ids or filter)")
    layout = waves.layout(ctx.spec, spaces)
    # An id of the other type is in no range (waves.matches): a range over integers on a source of
    # string ids (or the reverse) would take nothing, its wave "done and validated" with no record.
    id_type = ctx.schema.id_type
    for i, w in enumerate(ctx.spec.strategy.waves if not ctx.spec.strategy.waves_by_namespace else ()):
        rng = w.definition().get("ids")
        if rng is None or id_type not in ("int", "text"):
            continue
        lo = rng["from"]
        kind = "int" if isinstance(lo, int) and not isinstance(lo, bool) else "text"
        if kind != id_type:
            have, want = ("integer", "string") if id_type == "int" else ("string", "integer")
            raise PlanError(f"wave {w.name!r} takes a range of {want} ids, but {ctx.spec.source.label} has {have} "
                            "ids: an id of the other type is in no range, so the wave would take no record",
                            where=ctx.spec.where(f"/strategy/waves/{i}/ids"),
                            hint=f"write the range with {have} bounds, or use a filter wave")
    return layout


def wave_actions(ctx: PlanContext, wave: Wave, k: int, n: int, nxt: str | None, copies: list[Action],
                 after: tuple[str, ...]) -> list[Action]:
    """One wave: its copies, its checks, its switch and (unless last) the gate before the next."""
    copied = wave_copies(ctx, wave, copies, after)
    out = list(copied)
    checks = wave_checks(ctx, wave, copied, common.ids(copied) or after)
    checks += wave_queries(ctx, wave, common.ids(checks[-1:]) or common.ids(copied) or after) if copied else []
    out += checks
    last = common.ids(out[-1:]) or after
    if wave.alias or wave.pointer:
        out += wave_cutover(ctx, wave, last)
        last = common.ids(out[-1:])
    if nxt is not None:
        done = "done and validated" if checks else "done (validate.completeness is off)"
        out.append(Action(
            id=waves.action_id(wave.name, "approve"),
            kind="approve_wave",
            reason=(f"wave {wave.name} ({k + 1} of {n}) is {done}: `vecmig apply` stops here unless "
                    f"--auto-approve, and the next apply starts wave {nxt}"),
            depends_on=last,
            params={"wave": wave.name, "number": k + 1, "of": n, "next": nxt, "validated": bool(checks)},
            reverse="nothing to undo (a gate)",
            estimate=estimate.fixed(0.0, 0.1),
        ))
    return out


def wave_copies(ctx: PlanContext, wave: Wave, copies: list[Action], after: tuple[str, ...]) -> list[Action]:
    """The wave's copies: a namespace wave the shards of its namespace; any other every shard,
    read whole, writing only the records the wave takes (so its estimate is an upper bound:
    which records are the wave's is known only as they are read)."""
    out = []
    whole = exact(wave)
    for a in copies:
        shard = a.params.get("shard")
        bounds = ctx.source_cls.shard_id_range(shard) if isinstance(shard, dict) else None
        if not waves.may_hold(wave, shard) or not waves.ids_may_overlap(wave, bounds):
            continue  # none of the wave's records can be there
        params: dict[str, Any] = {**a.params, "wave": wave.params()}
        # The ids written are journaled (as absent before) so that this wave alone can be undone.
        params["journal"] = not ctx.foreign_target
        scope = "" if whole else (f"; read whole, and only the wave's records written (up to {a.estimate.records:,}: "
                                  "each record is matched as it is read)")
        out.append(replace(
            a, id=waves.action_id(wave.name, a.id), depends_on=after, params=params,
            reason=f"wave {wave.name}: {a.reason}{scope}",
            reverse=("restore the before-images of overwritten records and delete the rest" if ctx.foreign_target
                     else "delete the records this wave wrote (journaled by id); a full rollback drops the "
                          "collection"),
        ))
    return out


def wave_checks(ctx: PlanContext, wave: Wave, copied: list[Action], after: tuple[str, ...]) -> list[Action]:
    """The one place a wave's validation list is built: completeness of the wave's records
    (query parity joins it here when that validation exists)."""
    if not ctx.spec.validate.completeness or not copied:
        return []
    n = sum(a.estimate.records for a in copied)
    shards = [a.params["shard"] for a in copied]
    est = estimate.validate_estimate(n, n * ctx.bytes_per_record, ctx.read_model, ctx.write_model,
                                     server_digest=False)
    return [Action(
        id=waves.action_id(wave.name, "validate.completeness"),
        kind="validate_completeness",
        reason=(f"the records of wave {wave.name} must match one by one (counts, ids, checksums) before it is "
                "switched or the next wave starts; extras are not looked for (the target holds other waves too)"),
        depends_on=after,
        params={**ValidateCompletenessParams(
            shards=shards, checksums=ctx.spec.validate.checksums, batch_size=ctx.spec.strategy.batch_size,
            concurrency=ctx.spec.strategy.concurrency, shard_size=ctx.spec.strategy.shard_size,
            **common.reembedded(ctx.spec)).to_json(),
            "wave": wave.params()},
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=estimate.with_cost(est, ctx.cost("source", "scan", n), ctx.cost("target", "fetch", n)),
    )]


def wave_queries(ctx: PlanContext, wave: Wave, after: tuple[str, ...]) -> list[Action]:
    """Query parity of one wave before it is switched: queries kept to its records by its
    namespace (both sides searched in it) or its filter (the target holds every record the
    filter matches once this wave is in: earlier waves took the rest of them). An id-range wave
    and the rest wave cannot be kept so: the gate after the last wave covers them."""
    if ctx.spec.validate.queries is None or (wave.namespace is None and wave.filter is None):
        return []
    made = validate_queries(ctx, after)
    if not made:
        return []
    a = made[0]
    params = {**a.params, **({"namespace": wave.namespace} if wave.namespace is not None
                             else {"restrict": dict(wave.filter or {})})}
    return [replace(a, id=waves.action_id(wave.name, a.id), params=params,
                    reason=f"wave {wave.name}, its records only: {a.reason}")]


def wave_cutover(ctx: PlanContext, wave: Wave, after: tuple[str, ...]) -> list[Action]:
    t = ctx.spec.target
    if wave.pointer:
        return wave_pointer(ctx, wave, after)
    if not ctx.target_cls.capabilities.aliases:
        raise PlanError(f"wave {wave.name} names alias {wave.alias!r}, but {t.provider} has no aliases",
                        where=ctx.spec.where("/strategy/waves"), hint="remove the wave's alias")
    current = ctx.target.aliases.get(wave.alias or "")
    if current == t.collection:
        return []
    return [Action(
        id=waves.action_id(wave.name, "cutover.alias"),
        kind="cutover",
        reason=f"wave {wave.name}'s readers of '{wave.alias}' move from {current or 'nothing'} to {t.collection}",
        depends_on=after,
        params={"alias": wave.alias, "to": t.collection, "from": current},
        reverse=f"point '{wave.alias}' back at {current}" if current else f"remove '{wave.alias}'",
        estimate=estimate.fixed(0.05, 1.0),
    )]


def wave_pointer(ctx: PlanContext, wave: Wave, after: tuple[str, ...]) -> list[Action]:
    """Repoint what this wave's readers follow (a file and/or a command) at the target; its
    namespace there where the wave is one namespace of a target kept by namespace."""
    t = ctx.spec.target
    listed = (ctx.spec.public.get("strategy") or {}).get("waves") or []
    written = next(w.get("pointer") or {} for w in listed if w.get("name") == wave.name)
    live = next(w.pointer for w in ctx.spec.strategy.waves if w.name == wave.name)
    assert live is not None
    namespace = t.namespace
    if wave.namespace is not None and namespaces.target_by_namespace(ctx.spec):
        namespace = namespaces.rename(ctx.spec, wave.namespace)
    now = pointer.parse(pointer.read_file(t.path(live.file))) if live.file else None
    current = now.index if now else None
    if now is not None and (now.index, now.namespace) == (t.collection, namespace) and not live.command:
        return []  # already switched (an earlier round)
    params: dict[str, Any] = {"pointer": {k: written[k] for k in ("file", "command") if k in written},
                              "wave": wave.name, "to": t.collection, "namespace": namespace, "from": current}
    does = []
    if "file" in written and live.file:
        params["writes"] = pointer.shown_path(str(written["file"]), t.path(live.file))
        does.append(f"writes {params['writes']}")
    if "command" in written:
        params["runs"] = written["command"]
        does.append(f"runs `{written['command']}`")
    return [Action(
        id=waves.action_id(wave.name, "cutover.pointer"),
        kind="cutover",
        reason=(f"wave {wave.name}'s readers move from {current or 'nothing recorded'} to {t.collection}"
                + (f" (namespace {namespace})" if namespace and namespace != "*" else "") + ": " + " and ".join(does)),
        depends_on=after,
        params=params,
        reverse="restore what the wave's pointer held before (file: removed if it did not exist)",
        estimate=estimate.fixed(0.1, 10.0) if live.command else estimate.fixed(0.05, 1.0),
    )]


def exact(wave: Wave) -> bool:
    """Membership follows from namespaces alone: counted exactly from the shards."""
    return all("namespace" in d for d in ((wave.take,) if wave.take else ()) + wave.skip) and wave.take is not None


def findings(spec: Spec, seen: Refreshed) -> list[Warning_]:
    """``rest: false``: say how many records no wave takes (they stay behind in the source)."""
    s = spec.strategy
    if s.type != "phased" or s.rest or s.waves_by_namespace:
        return []
    n, counted = left_behind(spec, seen.shards, seen.sample)
    if n == 0 and counted.startswith("counted"):
        return []  # every record is some wave's, known exactly
    many = "an unknown number of" if n < 0 else f"{n:,}"
    return [Warning_(
        LEFT_BEHIND,
        f"rest: false: {many} source record(s) match no wave and are not migrated ({counted})",
        "warning",
        "add a wave for them, or drop `rest: false` so that a last wave named rest takes them")]


def left_behind(spec: Spec, shards: tuple[dict[str, Any], ...], sample: Batch | None) -> tuple[int, str]:
    """Records no wave takes, and how they were counted (-1: not counted). Namespaces are
    counted exactly from the shards; anything else is scaled from the plan's sample, which is
    the source's first records: a guide for filters, not for id ranges."""
    listed = [w.take for w in waves.layout(spec, []) if w.take is not None]
    rest = Wave(waves.REST, None, tuple(listed))
    if all("namespace" in d for d in listed):
        taken = {d["namespace"] or "" for d in listed}
        n = sum(int(sh.get("records", 0)) for sh in shards if (waves.shard_namespace(sh) or "") not in taken)
        return n, "counted from the source's namespaces"
    if sample is None or not len(sample):
        return -1, "not counted: the plan read no sample of the source"
    hit = sum(1 for rid, meta in zip(sample.ids, sample.metadata, strict=True)
              if waves.picks(rest.params(), rid, meta, None))
    total = sum(int(sh.get("records", 0)) for sh in shards)
    how = (f"estimated: {hit} of the source's first {len(sample):,} records (the plan's sample) match no wave; "
           "later records may differ, id ranges above all")
    return round(total * hit / len(sample)), how
