"""The re-embed estimate's arithmetic and findings without a model: token extrapolation (exact on
the whole source, a range holding the real total otherwise), the dated prices and their override,
cached texts unpriced, each copy's share, and what the lint says changes for readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecmig import embed_plan
from vecmig.embed.estimate import Speed, extrapolate
from vecmig.embed.prices import AS_OF, price_for
from vecmig.embed_plan import EmbedPlanning
from vecmig.model import Action, Estimate, Inventory
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text


def spec(embed: str = "{model: m, text: text}", target: str = "{provider: jsonl, connection: {path: o.jsonl}}",
         extra: str = "") -> Spec:
    text = ("version: 1\nname: e\nsource: {provider: jsonl, connection: {path: s.jsonl}}\n"
            f"target: {target}\ntransform: {{embed: {embed}}}\n{extra}")
    return load_spec_text(text, file="e.yaml", base_dir=Path("/tmp/e"))


def planning(s: Spec, counts: list[int], *, population: int, normalised: bool = True, cached: int | None = 0,
             tokens_per_s: float = 1000.0, api: bool = False) -> EmbedPlanning:
    assert s.transform.embed is not None
    price = price_for(s.transform.embed.model, api=api, override=s.cost.for_provider("embedding"))
    return EmbedPlanning(spec=s.transform.embed, model=s.transform.embed.model, identity="local:m@x", dimension=384,
                         normalised=normalised, max_tokens=256, sample_records=len(counts), population=population,
                         counts=tuple(counts), counted=True, speed=Speed(tokens_per_s, 50.0, "probe"), price=price,
                         cached=cached, findings=())


def test_the_whole_source_counted_is_exact_and_a_sample_gives_a_range_holding_the_total() -> None:
    every = [int(x) for x in np.random.default_rng(3).integers(5, 120, size=5000)]
    whole = extrapolate(every, 5000, population=5000)
    assert whole.exact and whole.low == whole.expected == whole.high == sum(every)
    part = extrapolate(every[:1000], 5000, population=5000)
    assert not part.exact and part.low <= sum(every) <= part.high and part.low < part.expected < part.high
    rough = extrapolate(every[:1000], 5000, population=5000, counted=False)
    assert rough.low < part.low and rough.high > part.high and not rough.counted


def test_prices_are_dated_and_the_spec_overrides_them() -> None:
    small = price_for("text-embedding-3-small", api=True, override={})
    assert (small.per_million_tokens, small.as_of) == (0.02, AS_OF)
    assert price_for("text-embedding-3-large", api=True, override={}).per_million_tokens == 0.13
    assert price_for("openai/text-embedding-ada-002", api=True, override={}).per_million_tokens == 0.10
    unknown = price_for("my-served-model", api=True, override={})
    assert unknown.per_million_tokens is None and unknown.usd(1e6, 10) is None
    own = price_for("my-served-model", api=True, override={"usd_per_million_tokens": 0.5, "as_of": "2026-11"})
    assert (own.usd(2e6, 0), own.as_of, own.source) == (1.0, "2026-11", "cost.embedding")
    local = price_for("all-MiniLM-L6-v2", api=False, override={})
    assert local.usd(1e9, 3600) == 0.0
    gpu = price_for("all-MiniLM-L6-v2", api=False, override={"usd_per_hour": 2.0})
    assert gpu.usd(1e9, 1800) == 1.0


def test_cached_texts_are_neither_priced_nor_timed() -> None:
    s = spec("{model: text-embedding-3-small, text: text, api: {base_url: 'http://127.0.0.1:9/v1'}}")
    cold = planning(s, [100] * 100, population=1000, cached=0, api=True)
    warm = planning(s, [100] * 100, population=1000, cached=75, api=True)
    assert cold.summary(1000)["tokens"]["expected"] == warm.summary(1000)["tokens"]["expected"] == 100_000
    assert cold.cost(1000) == {"embedding_tokens": 0.002} and warm.cost(1000) == {"embedding_tokens": 0.0005}
    low, high = cold.seconds(1000)
    wlow, whigh = warm.seconds(1000)
    assert low <= 100 <= high <= 2 * low and wlow <= 25 <= whigh <= 2 * wlow
    assert warm.summary(1000)["cache"] == {"enabled": True, "sample_cached": 75, "uncached_share": 0.25}


def test_each_copy_carries_its_share_of_the_time_and_the_cost_line() -> None:
    s = spec("{model: text-embedding-3-small, text: text, api: {base_url: 'http://127.0.0.1:9/v1'}}")
    p = planning(s, [100] * 10, population=200, api=True)
    copies = [Action(id=f"copy.shard[{i}]", kind="copy_shard", reason="", params={"index": i},
                     estimate=Estimate(records=100, seconds_low=1.0, seconds_high=2.0)) for i in range(2)]
    done = embed_plan.with_embedding(copies, p)
    assert all(a.estimate.cost == {"embedding_tokens": 0.0002} for a in done)
    assert all(a.estimate.seconds_low > 1.0 and a.estimate.seconds_high <= 2 * a.estimate.seconds_low for a in done)
    # Two waves reading the same shard share its texts: counted once, priced once.
    waves = [*copies, Action(id="wave[b].copy.shard[0]", kind="copy_shard", reason="", params={"index": 0},
                             estimate=Estimate(records=100, seconds_low=1.0, seconds_high=2.0))]
    assert embed_plan.texts_moved(waves) == 200
    assert sum(a.estimate.cost["embedding_tokens"] for a in embed_plan.with_embedding(waves, p)) == \
        pytest.approx(0.0004, abs=1e-4)


def test_the_findings_say_what_changes_for_readers() -> None:
    s = spec(target="{provider: lancedb, connection: {path: l}, collection: docs, create: {metric: dotproduct}}",
             embed="{model: m, text: text, cache: false}")
    source = Inventory(provider="pgvector", collection="docs", exists=True, dimension=768, metric="cosine")
    target = Inventory(provider="lancedb", collection="docs", exists=False)
    found = {w.code: w for w in embed_plan.findings(s, source, target, planning(s, [10], population=1,
                                                                                 normalised=False))}
    assert "from 768" in found["VM151"].message and "to 384" in found["VM151"].message
    assert found["VM152"].severity == "warning" and "cosine to dotproduct" in found["VM152"].message
    assert found["VM153"].severity == "warning" and "not unit length" in found["VM153"].message
    unit = {w.code: w for w in embed_plan.findings(s, source, target, planning(s, [10], population=1))}
    assert unit["VM153"].severity == "info" and "unit length" in unit["VM153"].message
