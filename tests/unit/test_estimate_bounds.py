"""Every estimate vecmig prints is a range whose upper bound is at most twice its lower, and a
plan says what its times are from; history-based estimates are a function of the state alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.memory import Harness, records
from vecmig import calibrate, estimate
from vecmig.calibrate import MODEL_BASIS, Fit, Sample, fit
from vecmig.model import Action, Estimate, Inventory
from vecmig.providers.memory.provider import MemoryProvider

GOLDEN = Path(__file__).parent / "golden"


def bounded(est: dict[str, object]) -> bool:
    low, high = float(est["seconds_low"]), float(est["seconds_high"])  # type: ignore[arg-type]
    return high <= 2 * low + 1e-9 and (low > 0 or high == 0)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_plans_keep_every_range_within_two(path: Path) -> None:
    body = json.loads(path.read_text())
    if "error" in body:
        return
    for a in body["actions"]:
        assert bounded(a["estimate"]), f"{path.name} {a['id']} ({a['kind']}): {a['estimate']}"
        assert a["estimate"]["basis"], f"{path.name} {a['id']} names no basis"
    assert bounded(body["totals"])


def test_model_estimates_are_within_two_for_every_kind() -> None:
    from vecmig.providers.pgvector.provider import PgvectorProvider
    from vecmig.providers.pinecone.provider import PineconeProvider

    models = [PgvectorProvider.throughput, PineconeProvider.throughput, MemoryProvider.throughput]
    ests = [estimate.fixed(0.05, 1.0), estimate.fixed(0.1, 10.0), estimate.index_estimate(10**6, 768, "hnsw"),
            estimate.index_estimate(0, 8, "ivfflat")]
    for r in models:
        for w in models:
            ests.append(estimate.copy_estimate(123_457, 123_457 * 1700, r, w, 4))
        ests.append(estimate.scan_estimate(98_765, 98_765 * 1700, r, passes=2))
    ests.append(estimate.scaled(ests[-1], 0.37))
    for e in ests:
        assert e.seconds_high <= 2 * e.seconds_low + 1e-9 and e.seconds_low > 0, e


def test_fit_separates_overhead_from_rate() -> None:
    samples = [Sample(1, 10_000, 0.3 + 10_000 / 50_000, 1000.0), Sample(2, 40_000, 0.3 + 40_000 / 50_000, 1000.0)]
    f = fit("copy_shard", samples)
    assert f is not None and f.overhead == pytest.approx(0.3) and 1 / f.per_unit == pytest.approx(50_000)
    assert f.phrase() == "rounds 1 and 2's measured 50k records/s"
    assert f.seconds(20_000, 2000.0) == pytest.approx(0.3 + 2 * 20_000 / 50_000), "twice the bytes: twice the time"
    one = fit("validate_completeness", samples[:1])
    assert one is not None and one.overhead == calibrate.PRIOR_OVERHEAD_S and one.rounds == (1,)
    assert fit("cutover", [Sample(1, 0, 0.2, 0.0), Sample(2, 0, 0.4, 0.0)]) == Fit("cutover", 0.30000000000000004,
                                                                                      0.0, 0.0, (1, 2))


def test_calibrated_copy_shares_the_wave_and_upserts_scale() -> None:
    copies = [Action(id=f"copy.shard[{i}]", kind="copy_shard", reason="", params={"fresh_target": False},
                     estimate=Estimate(records=n, bytes=n * 1000, seconds_low=9, seconds_high=27))
              for i, n in enumerate((30_000, 10_000))]
    fits = {"copy_shard": Fit("copy_shard", 0.0, 1 / 40_000, 1000.0, (1,))}
    out = calibrate.calibrated(copies, fits, source_records=40_000, target_records=30_000, upsert_slowdown=2.0)
    low = sum(a.estimate.seconds_low for a in out)
    high = sum(a.estimate.seconds_high for a in out)
    centre = 2.0 * 40_000 / 40_000  # the measured rate, as upserts
    assert low == pytest.approx(centre / 2 ** 0.5, abs=0.002) and high == pytest.approx(centre * 2 ** 0.5, abs=0.002)
    assert out[0].estimate.seconds_low == pytest.approx(3 * out[1].estimate.seconds_low, abs=0.002)
    assert out[0].estimate.basis == "round 1's measured 40k records/s, as upserts"
    assert [a.estimate.records for a in out] == [30_000, 10_000]


def test_history_drives_the_next_plan_deterministically(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """With timings taken as meaningful, a round on record sets the next plan's estimates, the
    plan names it, and two plans from the same state are byte-identical."""
    monkeypatch.setattr(MemoryProvider, "measured_estimates", True)
    h.seed(2500)
    spec = h.spec("big-bang")
    first = h.plan(spec)
    assert {a.estimate.basis for a in first.actions} == {MODEL_BASIS}
    h.apply(spec)
    h.source.seed("docs", records(10, start=5001, seed=3))
    a, b = h.plan(spec), h.plan(spec)
    assert a.to_json_text() == b.to_json_text()
    copies = [x for x in a.actions if x.kind == "copy_shard"]
    assert copies and all(x.estimate.basis.startswith("round 1's measured") for x in copies)
    for x in a.actions:
        assert x.estimate.seconds_high <= 2 * x.estimate.seconds_low + 1e-9
    from rich.console import Console

    from vecmig.render import print_plan

    console = Console(record=True, width=200)
    print_plan(a, console)
    assert "round 1's measured" in console.export_text()


def test_validation_estimate_knows_the_server_digest_path() -> None:
    from vecmig.providers.files.jsonl import JsonlProvider
    from vecmig.providers.pgvector.provider import PgvectorProvider

    pg = PgvectorProvider.throughput_for(Inventory("pgvector", "docs", True, dimension=384), 2)
    digest = estimate.validate_estimate(100_000, 0, pg, pg, server_digest=True)
    records = estimate.validate_estimate(100_000, 0, pg, pg, server_digest=False)
    assert digest.seconds_low < records.seconds_low / 2, (digest, records)
    # Only where both sides hash on their servers.
    jsonl = JsonlProvider.throughput_for(Inventory("pgvector", "docs", True, dimension=384), 2)
    assert estimate.validate_estimate(100_000, 0, jsonl, pg, server_digest=True) == \
        estimate.validate_estimate(100_000, 0, jsonl, pg, server_digest=False)
    for e in (digest, records):
        assert e.seconds_high <= 2 * e.seconds_low + 1e-9


def test_pgvector_pairs_copy_through_the_pipe() -> None:
    from vecmig.providers.files.parquet import ParquetProvider
    from vecmig.providers.pgvector.provider import PgvectorProvider

    inv = Inventory("pgvector", "docs", True, dimension=64)
    pg = PgvectorProvider.throughput_for(inv, 2)
    pipe = estimate.copy_estimate(50_000, 0, *PgvectorProvider.copy_models(PgvectorProvider, pg, pg, inv), 2)
    generic = estimate.copy_estimate(50_000, 0, pg, pg, 2)
    assert pipe.seconds_low < generic.seconds_low
    pq = ParquetProvider.throughput_for(inv, 2)
    assert PgvectorProvider.copy_models(ParquetProvider, pq, pg, inv) == (pq, pg)
