"""Strategy phased in-process against the memory store: wave loading and its errors, the
first-match partition, the plan's layout, the pause between waves, resume after a stop, and
rollback of one wave (exactly its records) or of all."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from tests.support.memory import SOURCE, TARGET, Harness, StopAfter, capture_context, records, same
from vecmig import waves
from vecmig.errors import Interrupted, SpecError, VecmigError
from vecmig.executor import apply_plan
from vecmig.planner import make_plan
from vecmig.refresh import refresh
from vecmig.rollback_wave import LAST, rollback_wave, wave_undo
from vecmig.schemas import load as load_schema
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore

# ids 1..600; lang cycles en, de, 日本語 by position; "low" takes 1..199, "de" the German rest, "rest" the others.
WAVES = "[{name: low, ids: {from: 1, to: 200}}, {name: de, filter: {lang: de}}]"


def spec_text(waves_yaml: str = WAVES, *, extra: str = "", alias: str = "") -> str:
    return textwrap.dedent(f"""\
        version: 1
        name: unit
        state: {{path: state.db}}
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target:
          provider: memory
          connection: {{name: {TARGET}}}
          collection: docs_v2
        strategy:
          type: phased
          batch_size: 50
          concurrency: 2
          shard_size: 1000
          waves: {waves_yaml}
        """).replace("docs_v2\n", f"docs_v2\n  alias: {alias}\n" if alias else "docs_v2\n") + extra


def load(text: str, tmp: Path) -> Spec:
    return load_spec_text(text, file="spec.yaml", base_dir=tmp)


def error(text: str, tmp: Path) -> str:
    with pytest.raises(SpecError) as info:
        load(text, tmp)
    return info.value.one_line()


# ---- loading ----------------------------------------------------------------------------------


def test_waves_load_into_frozen_objects(tmp_path: Path) -> None:
    spec = load(spec_text("[{name: a, ids: {from: 0, to: 10}}, {name: b, ids: {from: 10, to: 20}}, "
                          "{name: c, filter: {year: {$gte: 2000}}, alias: c_live}]"), tmp_path)
    w = spec.strategy.waves
    assert [x.name for x in w] == ["a", "b", "c"]
    assert w[0].definition() == {"ids": {"from": 0, "to": 10}}
    assert w[2].definition() == {"filter": {"year": {"$gte": 2000}}} and w[2].alias == "c_live"
    assert spec.strategy.rest is True and not spec.strategy.waves_by_namespace


@pytest.mark.parametrize(("waves_yaml", "extra", "want"), [
    ("[{name: a, ids: {from: 0, to: 10}}, {name: b, ids: {from: 5, to: 20}}]", "",
     "spec.yaml:14:56: /strategy/waves/1/ids: wave 'b': ids [5, 20) overlap wave 'a''s [0, 10)"),
    ("[{name: a, ids: {from: a, to: m}}, {name: b, ids: {from: l, to: z}}]", "", "overlap wave 'a''s ['a', 'm')"),
    ("[{name: a, namespace: eu}, {name: b, namespace: eu}]", "",
     "/strategy/waves/1/namespace: namespace 'eu' is named by two waves ('a' and 'b')"),
    ("[{name: a, namespace: eu}]", "", "the source is not read namespace by namespace"),
    ("[{name: a, ids: {from: 0, to: 10}, filter: {x: 1}}]", "", "must name exactly one of namespace, ids or filter, "
                                                                "not ids and filter"),
    ("[{name: a}]", "", "must name exactly one of namespace, ids or filter"),
    ("[{name: a, ids: {from: 0, to: b}}]", "", "ids.from and ids.to must both be integers or both strings"),
    ("[{name: a, ids: {from: 10, to: 10}}]", "", "ids.from 10 must be below ids.to 10"),
    ("[{name: a, ids: {from: 0, to: 1}}, {name: a, ids: {from: 1, to: 2}}]", "", "wave name 'a' is used twice"),
    ("[{name: rest, ids: {from: 0, to: 1}}]", "", "wave name 'rest' is taken by the last wave"),
    ("{by: namespace}", "", "waves: {by: namespace} needs a source read namespace by namespace"),
])
def test_wave_errors_say_what_and_where(tmp_path: Path, waves_yaml: str, extra: str, want: str) -> None:
    got = error(spec_text(waves_yaml, extra=extra), tmp_path)
    assert want in got, got
    assert got.startswith("spec.yaml:14:"), got  # the line of `waves:`


def test_a_bad_filter_points_into_the_filter(tmp_path: Path) -> None:
    text = spec_text("WAVES").replace(" WAVES\n", "\n" + textwrap.indent(textwrap.dedent("""\
        - name: drama
          filter:
            $or:
              - {genre: drama}
              - {year: {$between: [1, 2]}}
        """), "    "))
    got = error(text, tmp_path)
    assert "/strategy/waves/0/filter/$or/1/year" in got and "$between" in got, got
    assert got.startswith("spec.yaml:19:"), got


def test_waves_belong_to_phased_and_phased_needs_waves(tmp_path: Path) -> None:
    text = spec_text().replace("type: phased", "type: big-bang")
    assert "strategy.waves applies only to phased, not big-bang" in error(text, tmp_path)
    text = spec_text().replace(f"  waves: {WAVES}\n", "")
    assert "strategy phased needs waves" in error(text, tmp_path)


# ---- the partition ----------------------------------------------------------------------------


def test_every_record_lands_in_exactly_the_first_wave_that_takes_it(tmp_path: Path) -> None:
    spec = load(spec_text("[{name: de, filter: {lang: de}}, {name: old, filter: {year: {$lt: 2000}}}, "
                          "{name: low, ids: {from: 0, to: 100}}]"), tmp_path)
    layout = waves.layout(spec, [])
    assert [w.name for w in layout] == ["de", "old", "low", "rest"]
    batch = records(300)
    owners: list[list[str]] = [[w.name for w in layout if waves.picks(w.params(), rid, meta, None)]
                               for rid, meta in zip(batch.ids, batch.metadata, strict=True)]
    assert all(len(o) == 1 for o in owners), "every record in exactly one wave"
    for rid, meta, (owner,) in zip(batch.ids, batch.metadata, owners, strict=True):
        if meta["lang"] == "de":
            assert owner == "de"  # the first wave wins even where later ones match too
        elif meta["year"] < 2000:
            assert owner == "old"
        elif rid < 100:
            assert owner == "low"
        else:
            assert owner == "rest"
    # An id of the other type is in no range.
    assert not waves.matches({"ids": {"from": 0, "to": 10}}, "5", {}, None)
    assert waves.matches({"ids": {"from": "a", "to": "c"}}, "b7", {}, None)


# ---- the plan ---------------------------------------------------------------------------------


def test_plan_layout_chains_the_waves(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    plan = h.plan(load(spec_text(alias="docs_live"), tmp_path))
    ids = [a.id for a in plan.actions]
    assert ids == ["create_collection.target", "wave[low].copy.shard[0]", "wave[low].validate.completeness",
                   "wave[low].approve", "wave[de].copy.shard[0]", "wave[de].validate.completeness",
                   "wave[de].approve", "wave[rest].copy.shard[0]", "wave[rest].validate.completeness",
                   "cutover.alias"]
    by_id = {a.id: a for a in plan.actions}
    # Each wave starts after the previous wave's last action; the spec's own cutover after the last wave.
    assert by_id["wave[de].copy.shard[0]"].depends_on == ("wave[low].approve",)
    assert by_id["wave[rest].copy.shard[0]"].depends_on == ("wave[de].approve",)
    assert by_id["cutover.alias"].depends_on == ("wave[rest].validate.completeness",)
    copy = by_id["wave[de].copy.shard[0]"].params
    assert copy["wave"] == {"name": "de", "take": {"filter": {"lang": "de"}},
                            "skip": [{"ids": {"from": 1, "to": 200}}]}
    assert copy["journal"] is True
    assert by_id["wave[de].validate.completeness"].params["wave"] == copy["wave"]
    assert by_id["wave[low].approve"].params == {"wave": "low", "number": 1, "of": 3, "next": "de", "validated": True}
    # The saved plan's schema takes wave ids and the gate's kind.
    jsonschema.validate(json.loads(plan.to_json_text()), load_schema("plan.v1"))
    h.close()


def test_rest_false_leaves_records_behind_with_a_warning(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    plan = h.plan(load(spec_text().replace("  waves:", "  rest: false\n  waves:"), tmp_path))
    assert "wave[rest]" not in " ".join(a.id for a in plan.actions)
    (w,) = [w for w in plan.warnings if w.code == "VM150"]
    assert "match no wave and are not migrated (estimated: " in w.message, w.message
    assert "(the plan's sample)" in w.message and "id ranges above all" in w.message, w.message
    h.close()


def test_a_wave_alias_is_switched_after_its_validation(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(300)
    spec = load(spec_text("[{name: low, ids: {from: 1, to: 100}, alias: low_live}]"), tmp_path)
    ids = [a.id for a in h.plan(spec).actions]
    assert ids.index("wave[low].cutover.alias") == ids.index("wave[low].validate.completeness") + 1
    h.apply(spec)
    assert h.target.aliases == {"low_live": "docs_v2"}
    state = h.state(spec, create=False)
    assert state is not None
    with pytest.raises(VecmigError, match="wave 'rest' ran after wave 'low': roll back the later waves first"):
        wave_undo(state, "low")
    rollback_wave(spec, state, wave_undo(state, LAST), approval="auto-approve")  # rest
    rollback_wave(spec, state, wave_undo(state, LAST), approval="auto-approve")  # low: its switch goes back
    assert h.target.aliases == {}
    assert set(h.target.snapshot("docs_v2")) == set()
    h.close()


# ---- apply: pause, stop, resume, rollback ------------------------------------------------------


def apply(h: Harness, spec: Spec, approval: str) -> dict[str, object]:
    state = h.state(spec, create=True)
    assert state is not None
    return apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval=approval)


def target_ids(h: Harness) -> set[object]:
    return set(h.target.snapshot("docs_v2"))


def wave_ids(spec: Spec, name: str, n: int) -> set[object]:
    (wave,) = [w for w in waves.layout(spec, []) if w.name == name]
    batch = records(n)
    return {rid for rid, meta in zip(batch.ids, batch.metadata, strict=True)
            if waves.picks(wave.params(), rid, meta, None)}


def test_apply_pauses_between_waves_unless_auto_approved(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    spec = load(spec_text(), tmp_path)
    first = apply(h, spec, "yes")
    assert first["paused"] == ("wave low (1 of 3) is done and validated; run `vecmig apply` again to start wave de")
    assert target_ids(h) == wave_ids(spec, "low", 600)
    state = h.state(spec, create=False)
    assert state is not None
    assert state.runs()[-1]["status"] == "paused"
    assert state.open_round() is not None  # the round stays open
    second = apply(h, spec, "yes")
    assert "start wave rest" in str(second["paused"])
    assert target_ids(h) == wave_ids(spec, "low", 600) | wave_ids(spec, "de", 600)
    third = apply(h, spec, "yes")
    assert "paused" not in third
    same(h.source, "docs", h.target, "docs_v2")
    assert h.plan(spec).actions == ()  # settled
    h.close()


def test_stopped_mid_wave_resumes_without_recopying_and_rolls_back_wave_by_wave(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    spec = load(spec_text(), tmp_path)
    apply(h, spec, "yes")  # wave low, then the gate
    stop = StopAfter(batches=4)
    with capture_context(monkeypatch, stop), pytest.raises(Interrupted):
        state = h.state(spec, create=True)
        assert state is not None
        apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve", reporter=stop)
    done = state.cursor(1, "wave[de].copy.shard[0]")
    assert done is not None and 0 < done["records_done"] < 600
    plan = make_plan(spec, state, refresh(spec))
    assert plan.actions[0].id == "wave[de].copy.shard[0]" and plan.actions[0].status == "resume"
    assert not any(a.id.startswith("wave[low]") for a in plan.actions)  # wave low is not copied again
    apply_plan(spec, plan, state, approval="auto-approve")
    same(h.source, "docs", h.target, "docs_v2")

    # rollback --wave last: exactly the rest wave's records go; earlier waves stay.
    before = target_ids(h)
    undo = wave_undo(state, LAST)
    assert undo.wave == "rest"
    with pytest.raises(VecmigError, match="wave 'rest' ran after wave 'low'"):
        wave_undo(state, "low")
    rollback_wave(spec, state, undo, approval="auto-approve")
    assert target_ids(h) == before - wave_ids(spec, "rest", 600)
    assert state.open_round() is not None  # resumable from that wave
    again = make_plan(spec, state, refresh(spec))
    assert again.actions[0].id == "wave[rest].copy.shard[0]"
    assert again.actions[0].status == "planned"  # from its start: the cursor went with the records
    # Then the de wave too, and the round resumes from de.
    rollback_wave(spec, state, wave_undo(state, LAST), approval="auto-approve")
    assert target_ids(h) == wave_ids(spec, "low", 600)
    apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve")
    same(h.source, "docs", h.target, "docs_v2")
    # A full rollback undoes everything as before: the collection is dropped.
    assert h.rollback(spec) > 0
    assert "docs_v2" not in h.target.collections
    h.close()


def test_a_foreign_target_gets_its_records_back_when_a_wave_is_rolled_back(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(300)
    old = records(10, start=295, seed=9)  # ids 295..304: 295..300 overwritten by wave rest, 301..304 extra
    h.target.seed("docs_v2", old)
    spec = load(spec_text("[{name: low, ids: {from: 1, to: 100}}]"), tmp_path)
    snapshot = h.target.snapshot("docs_v2")
    apply(h, spec, "auto-approve")
    state = h.state(spec, create=False)
    assert isinstance(state, StateStore)
    assert h.target.snapshot("docs_v2")[295] != snapshot[295]
    rollback_wave(spec, state, wave_undo(state, LAST), approval="auto-approve")
    now = h.target.snapshot("docs_v2")
    assert all(now[k] == snapshot[k] for k in snapshot), "overwritten records restored from before-images"
    assert set(now) == set(snapshot) | wave_ids(spec, "low", 300)
    h.close()


# ---- through the operations: a saved plan goes on wave by wave ---------------------------------


def test_the_same_saved_plan_continues_the_round_wave_by_wave(tmp_path: Path) -> None:
    from tests.unit.test_operations import RecordingUi
    from vecmig.operations import apply as apply_ops
    from vecmig.operations import rollback as rollback_ops
    from vecmig.operations.plan import PlanRequest, plan

    h = Harness(tmp_path)
    h.seed(600)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text())
    out = tmp_path / "plan.json"
    plan(PlanRequest(spec_path, out), RecordingUi())
    spec = load(spec_text(), tmp_path)
    paused = []
    for _ in range(3):
        r = apply_ops.apply(apply_ops.ApplyRequest(out), RecordingUi(answer=False))
        assert r.applied and r.approval == "saved-plan"
        paused.append(r.paused)
    assert paused == ["wave low (1 of 3) is done and validated; run `vecmig apply` again to start wave de",
                      "wave de (2 of 3) is done and validated; run `vecmig apply` again to start wave rest", None]
    same(h.source, "docs", h.target, "docs_v2")
    # The round is complete: the saved plan is now stale like any other.
    with pytest.raises(VecmigError, match="saved plan is stale"):
        apply_ops.apply(apply_ops.ApplyRequest(out), RecordingUi())
    ui = RecordingUi()
    r2 = rollback_ops.rollback(rollback_ops.RollbackRequest(spec_path, wave="last"), ui)
    assert r2.wave == "rest" and ui.questions == ["Do you want to roll back wave rest?"]
    assert target_ids(h) == wave_ids(spec, "low", 600) | wave_ids(spec, "de", 600)
    with pytest.raises(VecmigError, match="round 1 has no wave 'nope' \\(its waves: low, de, rest\\)"):
        rollback_ops.rollback(rollback_ops.RollbackRequest(spec_path, wave="nope"), RecordingUi())
    h.close()


def test_a_saved_plan_is_stale_once_the_source_changed_between_waves(tmp_path: Path) -> None:
    from tests.unit.test_operations import RecordingUi
    from vecmig.operations import apply as apply_ops
    from vecmig.operations.plan import PlanRequest, plan

    h = Harness(tmp_path)
    h.seed(600)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text())
    out = tmp_path / "plan.json"
    plan(PlanRequest(spec_path, out), RecordingUi())
    assert apply_ops.apply(apply_ops.ApplyRequest(out), RecordingUi()).paused
    h.source.seed("docs", records(5, start=9001, seed=4))
    with pytest.raises(VecmigError, match="the source changed since its first waves were applied"):
        apply_ops.apply(apply_ops.ApplyRequest(out), RecordingUi())
    h.close()


class CorruptAfter:
    """A reporter that changes one target record right after ``action`` finished (as a trigger
    or another writer would), so the wave's validation that follows finds it."""

    def __init__(self, h: Harness, action: str, rid: int) -> None:
        self.h, self.action, self.rid = h, action, rid

    def start(self, action: object, total: int, done: int) -> None: ...
    def advance(self, action: object, records: int) -> None: ...
    def note(self, message: str) -> None: ...

    def finish(self, action: object, status: str, detail: str = "") -> None:
        if getattr(action, "id", None) == self.action and status == "done":
            coll = self.h.target.collections["docs_v2"]
            coll.records[self.rid].metadata["lang"] = "tampered"


def test_a_failed_wave_validation_recopies_that_wave_only(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    spec = load(spec_text(), tmp_path)
    apply(h, spec, "yes")  # wave low
    de = sorted(wave_ids(spec, "de", 600))
    state = h.state(spec, create=True)
    assert state is not None
    with pytest.raises(VecmigError, match="completeness check failed: shard 0: 1 different"):
        apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="yes",
                   reporter=CorruptAfter(h, "wave[de].copy.shard[0]", int(str(de[3]))))
    plan = make_plan(spec, state, refresh(spec))
    redo = [a.id for a in plan.actions if a.status == "recopy"]
    assert redo == ["wave[de].copy.shard[0]"], redo
    assert apply_plan(spec, plan, state, approval="yes")["paused"]
    apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="yes")
    same(h.source, "docs", h.target, "docs_v2")
    h.close()


def test_waves_by_namespace_are_one_per_namespace_in_name_order(tmp_path: Path) -> None:
    spec = load(spec_text("[{name: x, ids: {from: 0, to: 1}}]"), tmp_path)
    by_ns = Spec.__new__(Spec)
    object.__setattr__(by_ns, "strategy", type(spec.strategy)(type="phased", waves_by_namespace=True))
    layout = waves.layout(by_ns, ["us", "", "eu"])
    assert [(w.name, w.take) for w in layout] == [("default", {"namespace": ""}), ("eu", {"namespace": "eu"}),
                                                 ("us", {"namespace": "us"})]
    assert layout[2].skip == ({"namespace": ""}, {"namespace": "eu"})


def test_a_wave_pointer_is_repointed_after_its_wave_and_back_on_its_rollback(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(300)
    spec = load(spec_text("[{name: low, ids: {from: 1, to: 100}, pointer: {file: low-live.json}}]"), tmp_path)
    plan = h.plan(spec)
    by_id = {a.id: a for a in plan.actions}
    step = by_id["wave[low].cutover.pointer"]
    assert step.depends_on == ("wave[low].validate.completeness",) and step.params["wave"] == "low"
    assert "writes " in step.reason and step.reason.endswith("low-live.json")
    live = tmp_path / "low-live.json"
    apply(h, spec, "yes")  # wave low, its switch, then the gate
    assert json.loads(live.read_text())["index"] == "docs_v2"
    state = h.state(spec, create=False)
    assert state is not None
    rollback_wave(spec, state, wave_undo(state, LAST), approval="auto-approve")
    assert not live.exists(), "the file did not exist before the wave: removed again"
    assert target_ids(h) == set()
    h.close()


def test_a_wave_pointer_file_is_checked_like_any_spec_path(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    got = error(spec_text("[{name: low, ids: {from: 1, to: 100}, pointer: {file: adir}}]"), tmp_path)
    assert "/strategy/waves/0/pointer/file" in got, got
    got = error(spec_text("[{name: low, ids: {from: 1, to: 9}, alias: a, pointer: {file: x.json}}]"), tmp_path)
    assert "wave 'low' takes either alias or pointer, not both" in got, got


def test_rest_false_with_namespace_waves_counts_exactly_from_the_shards(tmp_path: Path) -> None:
    from dataclasses import replace

    from vecmig.spec import WaveSpec
    from vecmig.strategies.phased import left_behind

    spec = load(spec_text(), tmp_path)
    spec = replace(spec, strategy=replace(spec.strategy, rest=False, waves=(WaveSpec("eu", namespace="eu"),
                                                                            WaveSpec("us", namespace="us"))))
    shards = ({"namespace": "eu", "records": 10}, {"namespace": "us", "records": 20},
              {"namespace": "apac", "records": 7}, {"namespace": "", "records": 3})
    assert left_behind(spec, shards, None) == (10, "counted from the source's namespaces")


def test_golden_phased_plan(tmp_path: Path) -> None:
    """The phased plan into an absent target, byte for byte (tests/unit/golden/phased-absent.json;
    regenerate with VECMIG_UPDATE_GOLDENS=1 and review the diff), and the same twice."""
    import os

    from tests.support.memory import UPDATE_ENV, normalised

    h = Harness(tmp_path)
    h.seed(2500)
    spec = load(spec_text(alias="docs_live"), tmp_path)
    first = h.plan(spec).to_json_text()
    assert h.plan(spec).to_json_text() == first, "the same inputs must give a byte-identical plan"
    path = Path(__file__).parent / "golden" / "phased-absent.json"
    if os.environ.get(UPDATE_ENV):
        path.write_text(normalised(first))
    assert normalised(first) == path.read_text(), f"the plan differs from {path.name}"
    h.close()


def test_an_id_range_wave_reads_only_the_integer_shards_it_can_overlap(tmp_path: Path) -> None:
    wave = waves.Wave("w", {"ids": {"from": 100, "to": 200}}, ())
    assert waves.ids_may_overlap(wave, (None, 100)) is False  # [start, 100): 100 is the next shard's
    assert waves.ids_may_overlap(wave, (200, None)) is False
    assert waves.ids_may_overlap(wave, (150, 300)) and waves.ids_may_overlap(wave, (None, None))
    assert waves.ids_may_overlap(wave, ("a", "m")), "text bounds are never compared (store collations differ)"
    assert waves.ids_may_overlap(waves.Wave("f", {"filter": {"x": 1}}, ()), (0, 1))
    h = Harness(tmp_path)
    h.seed(2500)
    plan = h.plan(load(spec_text("[{name: mid, ids: {from: 1200, to: 1500}}]"), tmp_path))
    assert [a.id for a in plan.actions if a.id.startswith("wave[mid].copy")] == ["wave[mid].copy.shard[1]"]
    assert len([a for a in plan.actions if a.id.startswith("wave[rest].copy")]) == 3
    h.close()


# ---- query parity per wave --------------------------------------------------------------------


def test_each_filter_wave_is_gated_on_its_own_records_and_the_whole_after_the_last(tmp_path: Path) -> None:
    """A filter wave's queries are kept to its records (the wave's filter ANDed with theirs);
    an id-range wave cannot be kept so and is covered by the gate after the last wave."""
    h = Harness(tmp_path)
    h.seed(600)
    queries = "validate: {queries: {sample: 12, k: 5, min_overlap: 0.95}}\n"
    spec = load(spec_text(alias="docs_live", extra=queries), tmp_path)
    plan = h.plan(spec)
    ids = [a.id for a in plan.actions]
    assert "wave[de].validate.queries" in ids and "wave[low].validate.queries" not in ids
    de = next(a for a in plan.actions if a.id == "wave[de].validate.queries")
    assert de.params["restrict"] == {"lang": "de"} and de.depends_on == ("wave[de].validate.completeness",)
    final = next(a for a in plan.actions if a.id == "validate.queries")
    assert ids.index("validate.queries") == ids.index("cutover.alias") - 1
    assert final.params.get("restrict") is None
    apply(h, spec, "auto-approve")
    state = h.state(spec, create=False)
    assert state is not None
    rows = {r["action_id"]: r for r in state.actions(1)}
    result = json.loads(rows["wave[de].validate.queries"]["result_json"])
    assert result["ok"] and result["queries"]["sample"] == 12
    # Every sampled query was a German record's vector, and kept to German records.
    sampled = [q for q in result["report"]["queries"] if q["name"].startswith("sample:")]
    assert sampled and all(q["filter"] == {"lang": "de"} for q in sampled)
    de_ids = {rid for rid, rec in h.source.snapshot("docs").items() if json.loads(rec[1]).get("lang") == "de"}
    assert {int(q["name"].split(":")[1]) for q in sampled} <= de_ids
    assert h.target.aliases == {"docs_live": "docs_v2"}
    h.close()


def test_a_poor_target_stops_the_filter_wave_at_its_gate(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.seed(600)
    text = spec_text(alias="docs_live", extra="validate: {queries: {sample: 12, k: 10, min_overlap: 0.95}}\n")
    text = text.replace(f"connection: {{name: {TARGET}}}", f"connection: {{name: {TARGET}, search_noise: 0.5}}")
    spec = load(text, tmp_path)
    with pytest.raises(VecmigError, match=r"query parity failed: overlap@10 0.50 < 0.95"):
        apply(h, spec, "auto-approve")
    assert h.statuses(spec)["wave[de].validate.queries"] == "failed"
    assert h.target.aliases == {}, "nothing was switched"
    h.close()
