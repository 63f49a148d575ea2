"""Red-team findings (red2): parallel-run, watch / rollback_on, phased, the scheduler under interruption."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_vecmig_watch_module_imports_first_without_a_circular_import() -> None:
    # `vecmig watch` imports vecmig.operations.watch → vecmig.watch first; that used to fail with
    # "cannot import name 'searchable' from partially initialized module 'vecmig.watch'".
    out = subprocess.run(
        [sys.executable, "-c", "import vecmig.operations.watch"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-c", "import vecmig.watch"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_shadow_latency_does_not_include_opening_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    # A watch round / replay measured the first query on each worker with the provider's connect()
    # inside its latency: on an embedded pgvector target round 1 read p95 ×7–12 of the old side and a
    # healthy cutover was switched back by `rollback_on: {max_p95_ratio: 2}` (the README's example).
    # A clock that moves only while a session opens: the latency must not see it move.
    from vecmig.quality import runner, shadow
    from vecmig.quality.runner import Call
    from vecmig.quality.shadow import Side

    clock = [0.0]
    monkeypatch.setattr(shadow.time, "perf_counter", lambda: clock[0])

    class Fast:
        def query(self, vector, k, flt=None):
            return []

        def close(self) -> None:
            pass

    def slow_open() -> Fast:
        clock[0] += 5.0
        return Fast()

    side = Side(slow_open, 1, "t")  # type: ignore[arg-type]
    try:
        [answer] = [f.result() for f in side.submit([Call([0.0, 1.0], 1, None)], None)]
    finally:
        side.close()
    assert answer.error is None
    assert answer.seconds == 0.0
    # The gate's runner alike.
    [gated] = runner.run_queries(slow_open, [Call([0.0, 1.0], 1, None)], concurrency=1)  # type: ignore[arg-type]
    assert gated.error is None and gated.seconds == 0.0


PR_SPEC = """\
version: 1
name: pr
source: {{provider: jsonl, connection: {{path: src.jsonl, metric: cosine}}}}
target:
  provider: pgvector
  connection: {{dsn: "postgresql://x@localhost/x"}}
  collection: docs
  alias: docs_live
strategy:
  type: parallel-run
  replay: {replay}
  gate: {gate}
{extra}"""


@pytest.mark.parametrize(("replay", "gate", "extra", "where"), [
    # a 0s window was planned, copied everything, then always failed "ended before any query"
    ("{file: q.jsonl, duration: 0s}", "{min_overlap: 0.9}", "", "/strategy/replay/duration"),
    ("{file: q.jsonl, duration: 0ms}", "{min_overlap: 0.9}", "", "/strategy/replay/duration"),
    ("{file: q.jsonl, duration: 9999h}", "{min_overlap: 0.9}", "", "/strategy/replay/duration"),
    # rate NaN: the plan JSON held NaN and apply died with "internal error: cannot convert float NaN"
    ("{file: q.jsonl, duration: 1s, rate: .nan}", "{min_overlap: 0.9}", "", "/strategy/replay/rate"),
    # a NaN threshold compares false: the gate / trigger never fires
    ("{file: q.jsonl, duration: 1s}", "{min_overlap: .nan}", "", "/strategy/gate/min_overlap"),
    ("{file: q.jsonl, duration: 1s}", "{min_overlap: 0.9}", "rollback_on: {min_overlap: .nan}\n",
     "/rollback_on/min_overlap"),
    ("{file: q.jsonl, duration: 1s}", "{min_overlap: 0.9}", "rollback_on: {min_overlap: 0.9, interval: 0s}\n",
     "/rollback_on/interval"),
    ("{file: q.jsonl, duration: 1s}", "{min_overlap: 0.9}", "rollback_on: {min_overlap: 0.9, watch: 0s}\n",
     "/rollback_on/watch"),
])
def test_parallel_run_and_rollback_on_refuse_nan_and_out_of_range_durations(
        tmp_path, replay: str, gate: str, extra: str, where: str) -> None:
    from vecmig.errors import SpecError
    from vecmig.spec_loader import load_spec_text

    text = PR_SPEC.format(replay=replay, gate=gate, extra=extra)
    with pytest.raises(SpecError) as e:
        load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    assert where in str(e.value) or where.lstrip("/").replace("/", ".") in str(e.value), str(e.value)


def test_an_interruption_names_its_signal_once() -> None:
    # SIGTERM between batches printed "interrupted by SIGTERM by SIGTERM: the batch in flight ..."
    import signal

    from vecmig.executor import _by, by_signal

    received = [int(signal.SIGTERM)]
    assert by_signal(f"{_by(received)}: the batch in flight was finished", received) == \
        "interrupted by SIGTERM: the batch in flight was finished"
    assert by_signal("interrupted: copy.shard[0] stopped", received) == "interrupted by SIGTERM: copy.shard[0] stopped"
    assert by_signal("interrupted: x", [int(signal.SIGINT)]) == "interrupted: x"


def test_parallel_run_from_a_file_source_without_a_metric_is_refused_at_plan(tmp_path) -> None:
    # Planned fine, copied every record, then failed at the gate: "no query was answered by both
    # sides (first error: jsonl file ... records no metric, so it cannot be searched)".
    import json

    from vecmig.errors import PlanError
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh
    from vecmig.spec_loader import load_spec_text

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in range(5):
            f.write(json.dumps({"id": i, "vector": [float(i), 1.0]}) + "\n")
    (tmp_path / "q.jsonl").write_text(json.dumps({"vector": [1.0, 1.0], "k": 2}) + "\n")
    text = """\
version: 1
name: pr
source: {provider: jsonl, connection: {path: src.jsonl}}
target: {provider: lancedb, connection: {path: db}, collection: docs, create: {metric: cosine}}
strategy: {type: parallel-run, replay: {file: q.jsonl, queries: 5}, gate: {min_overlap: 0.9}}
"""
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    with pytest.raises(PlanError, match="records no metric"):
        make_plan(spec, None, refresh(spec))
    spec = load_spec_text(text.replace("path: src.jsonl}", "path: src.jsonl, metric: cosine}"),
                          file="spec.yaml", base_dir=tmp_path)
    make_plan(spec, None, refresh(spec))


@pytest.mark.parametrize("flt", [
    {"genre": float("nan")}, {"year": {"$in": [1, float("nan")]}},
])
def test_filters_refuse_nan(flt) -> None:
    # A phased wave `filter: {genre: .nan}` was accepted: the wave silently took no record and the
    # saved plan held a bare NaN (not JSON); a query log's filter took NaN the same way.
    from vecmig.filters import FilterError, check

    with pytest.raises(FilterError):
        check(flt)
    check({"year": {"$gt": float("-inf")}})  # an infinity is a bound that means something: kept


def test_a_reapplied_saved_plan_does_not_claim_the_source_changed(tmp_path) -> None:
    # Applying a saved plan a second time was refused (rightly: state serial changed) with
    # "source changed since planning (content: None → '300:…')" though nothing touched the source:
    # the content checksum the apply measured was reported as a change of the store.
    import json
    import os
    from pathlib import Path

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"id": i, "vector": [float(i), 1.0]}) + "\n")
    (tmp_path / "lb.yaml").write_text("""\
version: 1
name: lb
state: {path: st/lb.db}
source: {provider: jsonl, connection: {path: src.jsonl}}
target: {provider: lancedb, connection: {path: lbdb}, collection: docs, create: {metric: cosine}}
strategy: {type: big-bang}
validate:
  completeness: {checksums: true}
""")
    vecmig = str(Path(sys.executable).with_name("vecmig"))
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([vecmig, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)

    assert run("plan", "lb.yaml", "-out", "lb.plan").returncode == 0
    assert run("apply", "lb.plan").returncode == 0
    again = run("apply", "lb.plan")
    assert again.returncode == 1
    assert "saved plan is stale" in again.stderr + again.stdout
    assert "source changed" not in again.stderr + again.stdout, again.stderr


def test_a_phased_id_wave_of_the_other_id_type_is_refused_at_plan(tmp_path) -> None:
    # `ids: {from: 0, to: 100}` over string ids took no record, and the wave was reported
    # "done and validated" (the rest wave took everything).
    import json

    from vecmig.errors import PlanError
    from vecmig.planner import make_plan
    from vecmig.refresh import refresh
    from vecmig.spec_loader import load_spec_text

    with open(tmp_path / "src.jsonl", "w") as f:
        for i in ("1", "2", "50", "abc"):
            f.write(json.dumps({"id": i, "vector": [1.0, float(len(i))]}) + "\n")
    text = """\
version: 1
name: sx
source: {provider: jsonl, connection: {path: src.jsonl}}
target: {provider: lancedb, connection: {path: db}, collection: docs, create: {metric: cosine}}
strategy:
  type: phased
  waves:
    - {name: low, ids: {from: 0, to: 100}}
"""
    spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    with pytest.raises(PlanError, match="would take no record"):
        make_plan(spec, None, refresh(spec))
    spec = load_spec_text(text.replace("from: 0, to: 100", "from: '0', to: '9'"), file="spec.yaml", base_dir=tmp_path)
    make_plan(spec, None, refresh(spec))


def test_an_exclusive_minimum_is_not_reported_as_at_least(tmp_path) -> None:
    # `rate: 0` was refused with "must be at least 0, got integer 0 — use a value at least 0".
    from vecmig.errors import SpecError
    from vecmig.spec_loader import load_spec_text

    text = PR_SPEC.format(replay="{file: q.jsonl, duration: 1s, rate: 0}", gate="{max_latency_ratio: 0}", extra="")
    with pytest.raises(SpecError) as e:
        load_spec_text(text, file="spec.yaml", base_dir=tmp_path)
    assert "must be above 0" in str(e.value) and "at least 0" not in str(e.value), str(e.value)
