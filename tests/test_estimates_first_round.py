"""First-round estimates (no history: the providers' models) against what the apply took.

The models were fitted on this kind of machine (bench/estimate_models.py), so the first plan's
copy and total should land around the measured times. What is compared comes from the state:
the copy wave (first start to last finish of the copy shards' actions) and the run (its
started/finished). The machine is a shared 2-core one on which other benchmarks run, so each
figure is checked as the ratio actual / centre of the range within [0.5, 2] (containment in
[c/√2, c·√2] would be ±41 %, which load alone exceeds here), and the containment is printed.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec
from tests.test_estimates_calibrated import pg_spec, plan_of, run_apply, write_jsonl
from vecmig.calibrate import MODEL_BASIS, PROBE_BASIS, ReadProbe
from vecmig.model import Estimate, Plan
from vecmig.operations.apply import ApplyResult
from vecmig.state.store import StateStore

# actual / centre within these: the band a loaded 2-core machine keeps reliably
BAND = (0.5, 2.0)


def pg_to_jsonl_spec(tmp: Path) -> Path:
    return write_spec(tmp, """
        version: 1
        name: est-to-jsonl
        source:
          provider: pgvector
          connection: {dsn: "${env:SOURCE_DSN}"}
          collection: docs
          fields: {id: id, vector: embedding, text: body}
        target:
          provider: jsonl
          connection: {path: out.jsonl}
        strategy: {type: big-bang, batch_size: 2000, concurrency: 2, shard_size: 10000}
        """)


def jsonl_to_pg_spec(tmp: Path) -> Path:
    from tests.test_estimates_calibrated import jsonl_spec

    return jsonl_spec(tmp)


def t(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def measured(result: ApplyResult) -> tuple[float, float]:
    """(copy wave, run) seconds from the state."""
    plan = result.plan
    state = StateStore.open(plan.migration, Path(str(result.state_location)), None, create=False)
    assert state is not None
    copies = [r for r in state.actions(plan.round) if r["kind"] == "copy_shard"]
    wave = (max(t(r["finished"]) for r in copies) - min(t(r["started"]) for r in copies)).total_seconds()
    run = [r for r in state.runs() if r["round"] == plan.round and r["operation"] == "apply"][-1]
    return wave, (t(run["finished"]) - t(run["started"])).total_seconds()


def copy_range(plan: Plan) -> Estimate:
    total = Estimate()
    for a in plan.actions:
        if a.kind == "copy_shard":
            total = total + a.estimate
    return total


def check(label: str, what: str, est: Estimate, actual: float) -> None:
    centre = math.sqrt(est.seconds_low * est.seconds_high)
    inside = est.seconds_low <= actual <= est.seconds_high
    print(f"{label} {what}: planned {est.seconds_low:.2f}-{est.seconds_high:.2f}s, took {actual:.2f}s "
          f"({actual / centre:.2f}x the centre, {'inside' if inside else 'OUTSIDE'} the range)")
    assert est.seconds_high <= 2 * est.seconds_low + 1e-9
    assert BAND[0] <= actual / centre <= BAND[1], f"{label} {what}: took {actual:.2f}s, planned {est}"


def first_round(label: str, spec_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(spec_path, env)
    assert {a.estimate.basis for a in plan.actions} <= {MODEL_BASIS, PROBE_BASIS}
    assert plan.start_up is not None
    result = run_apply(spec_path, env, monkeypatch)
    assert result.plan.round == 1
    wave, run = measured(result)
    state = StateStore.open(plan.migration, Path(str(result.state_location)), None, create=False)
    assert state is not None
    took = {r["action_id"]: r["actual_seconds"] for r in state.actions(result.plan.round)}
    for a in result.plan.actions:
        print(f"  {a.id}: {a.estimate.seconds_low}-{a.estimate.seconds_high}s, took {took.get(a.id)}s")
    check(label, "copy", copy_range(result.plan), wave)
    check(label, "total", result.plan.totals, run)


def test_pgvector_to_pgvector_first_round(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_docs_table(pg_db, "docs", 30_000, 64)
    first_round("pgvector -> pgvector 30k x 64", pg_spec(tmp_path), env_for(pg_db), monkeypatch)


def test_jsonl_to_pgvector_first_round(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "docs.jsonl", 20_000)
    first_round("jsonl -> pgvector 20k x 64", jsonl_to_pg_spec(tmp_path), env_for(pg_db), monkeypatch)


def test_pgvector_to_jsonl_first_round(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_docs_table(pg_db, "docs", 20_000, 64)
    first_round("pgvector -> jsonl 20k x 64", pg_to_jsonl_spec(tmp_path), env_for(pg_db), monkeypatch)


def test_first_plans_are_byte_identical(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe is an input of a first plan: the same probe, the same plan, byte for byte; a
    machine 10x slower than the models' moves every time and says so in the basis."""
    import vecmig.refresh

    make_docs_table(pg_db, "docs", 5_000, 64)
    spec_path, env = pg_spec(tmp_path), env_for(pg_db)
    totals = []
    for rate, basis in ((60_000, MODEL_BASIS), (6_000, PROBE_BASIS)):
        monkeypatch.setattr(vecmig.refresh, "read_probe",
                            lambda src, shard, rate=rate: ReadProbe(4000, 4000 / rate))
        a, b = plan_of(spec_path, env), plan_of(spec_path, env)
        assert a.to_json_text() == b.to_json_text()
        assert {x.estimate.basis for x in a.actions} == {basis}
        totals.append(a.totals.seconds_low)
    assert totals[1] > 2 * totals[0]
