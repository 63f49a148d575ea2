"""A re-embed's plan with the real packaged model (all-MiniLM-L6-v2, CPU) on small JSONL sources,
and with an API model through tests/openai_local: the token estimate holds the real count of
every text (which the test counts with the package's own tokenizer), the time range is measured
and at most 2x wide, prices are dated, cached texts are not priced, the target takes the model's
width and metric, every copy freezes the model, and what cannot work fails in one line."""

from __future__ import annotations

import functools
import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from tests.openai_local import OpenAILocal
from tests.openai_local.server import DEFAULT_API_KEY
from tests.support.embed import MODEL, reference
from vecmig import embed_plan
from vecmig import refresh as refresh_module
from vecmig.embed import EmbedConfig, EmbeddingCache, Model, make_model
from vecmig.embed import estimate as embed_estimate
from vecmig.embed.cache import text_key
from vecmig.embed.prices import AS_OF
from vecmig.errors import PlanError
from vecmig.model import Plan
from vecmig.planner import make_plan
from vecmig.refresh import refresh
from vecmig.render import print_plan
from vecmig.render_markdown import render
from vecmig.sample import batches
from vecmig.spec_loader import load_spec_text

pytestmark = pytest.mark.integration  # a real model (torch) and a real HTTP server


@functools.cache
def _model(config: EmbedConfig) -> Model:
    return make_model(config)


def planned_model() -> Model:
    """The model the specs below load (device cpu, the default batch of 32), shared with the tests."""
    return _model(EmbedConfig(model=MODEL, device="cpu", batch_size=32))


@pytest.fixture(scope="module", autouse=True)
def model_once() -> Iterator[None]:
    """The planner loads the model per plan; here each setting's model loads once per module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embed_plan, "loaded", _model)
        # A shorter probe than a real plan's: what is measured and how is the same, in less time.
        mp.setattr(embed_estimate, "PROBE_TEXTS", 8)
        mp.setattr(embed_estimate, "WARMUP_TEXTS", 2)
        yield


def texts_of(n: int) -> list[str]:
    out = []
    for batch in batches(n, 8, seed=7):
        assert batch.texts is not None
        out.extend(t if t is not None else f"{m['title']} without a body" for t, m in
                   zip(batch.texts, batch.metadata, strict=True))
    return out


def write_source(path: Path, texts: list[str], dim: int = 8) -> None:
    rng = np.random.default_rng(1)
    with path.open("w") as f:
        for i, text in enumerate(texts):
            rec = {"id": i + 1, "vector": rng.standard_normal(dim).astype(np.float32).tolist(),
                   "metadata": {"title": f"note {i}", "lang": "en"}, "text": text}
            f.write(json.dumps(rec) + "\n")


def spec_for(tmp: Path, embed: str, extra: str = "", target: str = "out.jsonl",
             target_store: str = "", key: str = DEFAULT_API_KEY) -> Any:
    store = target_store or f"{{provider: jsonl, connection: {{path: {target}}}}}"
    text = textwrap.dedent(f"""\
        version: 1
        name: reembed
        state: {{path: state.db}}
        source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
        target: {store}
        transform:
          embed: {embed}
        """) + extra
    return load_spec_text(text, file=str(tmp / "spec.yaml"), base_dir=tmp, env={"EMBED_KEY": key})


def plan_of(spec: Any) -> Plan:
    return make_plan(spec, None, refresh(spec))


def true_tokens(texts: list[str]) -> int:
    """Every text counted with the package's own tokenizer (not vecmig's)."""
    ids = reference().tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return sum(len(i) for i in ids)


def codes(plan: Plan) -> dict[str, str]:
    return {w.code: w.severity for w in plan.warnings}


def test_a_whole_source_sample_counts_every_token_and_the_plan_freezes_the_model(tmp_path: Path) -> None:
    texts = texts_of(120)
    write_source(tmp_path / "src.jsonl", texts)
    plan = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu, keep_old: old_vector}"))
    e = plan.embedding
    assert e is not None and e["texts"] == 120 and e["dimension"] == 384 and e["model"] == MODEL
    assert e["tokens"]["exact"] and e["tokens"]["expected"] == e["tokens"]["low"] == e["tokens"]["high"] \
        == true_tokens(texts)
    s = e["seconds"]
    assert 0 < s["low"] <= s["high"] <= 2 * s["low"] and "sample texts embedded" in s["basis"]
    assert e["cost"]["usd"] == 0.0 and e["cache"] == {"enabled": True, "sample_cached": 0, "uncached_share": 1.0}
    identity = planned_model().identity
    assert e["identity"] == identity
    create = next(a for a in plan.actions if a.kind == "create_collection")
    schema = create.params["schema"]
    assert schema["dimension"] == 384 and schema["metric"] == "cosine" and schema["metadata"]["old_vector"] == "json"
    copies = [a for a in plan.actions if a.kind == "copy_shard"]
    assert copies and all(a.params["embed"]["identity"] == identity and a.params["embed"]["dimension"] == 384
                          and a.params["embed"]["keep_old"] == "old_vector" for a in copies)
    # The copy's estimate holds the embedding's time: at least the probe's lower bound.
    assert sum(a.estimate.seconds_high for a in copies) >= s["low"]
    assert {"VM151": "info", "VM153": "info"}.items() <= codes(plan).items()
    line = "Re-embed: 120 texts with all-MiniLM-L6-v2 (384 dims)"
    assert line in render(plan)
    shown = io.StringIO()
    print_plan(plan, Console(file=shown, width=300, no_color=True))
    assert f"{line} · {true_tokens(texts):,} tokens (counted) · " in shown.getvalue()
    assert "on this machine · $0.00 (a local model: no per-token price)" in shown.getvalue()
    assert json.loads(plan.to_json_text())["embedding"] == e
    assert not (tmp_path / ".vecmig").exists() and not (tmp_path / "state.db").exists()  # planning wrote nothing


def test_an_extrapolated_range_holds_the_real_count_of_every_text(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    texts = texts_of(400)
    write_source(tmp_path / "src.jsonl", texts)
    monkeypatch.setattr(refresh_module, "EMBED_SAMPLE", 100)
    plan = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu, cache: false}"))
    e = plan.embedding
    assert e is not None and e["texts"] == 400
    assert codes(plan)["VM155"] == "warning" and e["cache"]["enabled"] is False
    t = e["tokens"]
    assert not t["exact"] and t["sample"] == 100 and t["counted"] == "tokenizer"
    assert t["low"] <= true_tokens(texts) <= t["high"] and t["low"] < t["expected"] < t["high"]


def test_texts_over_the_limit_are_named_and_refused_unless_truncated(tmp_path: Path) -> None:
    texts = texts_of(30)
    texts[6] = "word " * 300
    write_source(tmp_path / "src.jsonl", texts)
    refused = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu}"))
    finding = next(w for w in refused.warnings if w.code == "VM154")
    assert finding.severity == "error" and "record '7'" in finding.message and "302 tokens" in finding.message
    cut = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu, truncate: true}"))
    assert codes(cut)["VM154"] == "info"


def test_a_field_the_source_lacks_fails_the_plan_and_records_without_text_are_named(tmp_path: Path) -> None:
    texts = texts_of(20)
    write_source(tmp_path / "src.jsonl", texts)
    with pytest.raises(PlanError) as err:
        plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: '{title}: {body}'}"))
    line = err.value.one_line()
    assert "reads field 'body'" in line and "/transform/embed/text" in line and "spec.yaml:" in line
    # The template's fields exist, but one record has no title: an error finding names it.
    lines = (tmp_path / "src.jsonl").read_text().splitlines()
    rec = json.loads(lines[3])
    del rec["metadata"]["title"]
    lines[3] = json.dumps(rec)
    (tmp_path / "src.jsonl").write_text("\n".join(lines) + "\n")
    plan = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: '{title}: {text}', device: cpu}"))
    vm156 = next(w for w in plan.warnings if w.code == "VM156")
    assert vm156.severity == "error" and "record '4'" in vm156.message


def test_texts_already_in_the_cache_are_not_priced(tmp_path: Path) -> None:
    texts = texts_of(60)
    write_source(tmp_path / "src.jsonl", texts)
    spec = spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu, cache: emb.db}")
    before = plan_of(spec).embedding
    model = planned_model()
    half = texts[:30]
    with EmbeddingCache(tmp_path / "emb.db") as cache:
        cache.put_many(model.identity, zip([text_key(t) for t in half], model.embed(half), strict=True))
    planned = plan_of(spec)
    after = planned.embedding
    assert before is not None and after is not None and before["cache"]["sample_cached"] == 0
    cached = sum(1 for t in texts if t in set(half))
    assert after["cache"]["sample_cached"] == cached >= 30
    assert after["cache"]["uncached_share"] == pytest.approx(1 - cached / 60, abs=1e-4)
    assert "50% of the sample already cached (not priced)" in render(planned)


def test_phased_waves_embed_each_shards_texts_once(tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", texts_of(40))
    extra = "strategy: {type: phased, waves: [{name: first, ids: {from: 0, to: 21}}]}\n"
    lance = "{provider: lancedb, connection: {path: lance}, collection: docs}"
    plan = plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu}", extra,
                            target_store=lance))
    copies = [a for a in plan.actions if a.kind == "copy_shard"]
    assert len(copies) == 2 and all(a.params["embed"]["dimension"] == 384 for a in copies)  # first, rest
    assert plan.embedding is not None and plan.embedding["texts"] == 40


def test_the_target_must_take_the_models_width(tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", texts_of(10))
    extra = "  create: {dimension: 768}\n"
    spec_text = ("version: 1\nname: r\nsource: {provider: jsonl, connection: {path: src.jsonl}}\n"
                 "target:\n  provider: jsonl\n  connection: {path: out.jsonl}\n" + extra +
                 "transform: {embed: {model: all-MiniLM-L6-v2, text: text, device: cpu}}\n")
    spec = load_spec_text(spec_text, file=str(tmp_path / "spec.yaml"), base_dir=tmp_path)
    with pytest.raises(PlanError) as err:
        plan_of(spec)
    assert "768" in err.value.message and "384" in err.value.message
    assert "/target/create/dimension" in (err.value.where or "")
    # An existing target of the source's width (8) cannot take the model's 384.
    write_source(tmp_path / "old.jsonl", texts_of(3))
    with pytest.raises(PlanError) as err:
        plan_of(spec_for(tmp_path, "{model: all-MiniLM-L6-v2, text: text, device: cpu}", target="old.jsonl"))
    assert "exists with 8 dimensions" in err.value.message and "makes 384" in err.value.message
    assert "choose a new target collection" in (err.value.hint or "")


def test_a_model_that_is_neither_packaged_nor_a_folder_fails_at_plan_in_one_line(tmp_path: Path) -> None:
    write_source(tmp_path / "src.jsonl", texts_of(5))
    spec = spec_for(tmp_path, "{model: no-such-model-v9, text: text}")  # loads: the spec cannot know
    with pytest.raises(PlanError) as err:
        plan_of(spec)
    line = err.value.one_line()
    assert "no-such-model-v9" in line and "/transform/embed/model" in line and "all-MiniLM-L6-v2" in line


@pytest.fixture(scope="module")
def openai_srv() -> Iterator[OpenAILocal]:
    with OpenAILocal(planned_model(), model_name="text-embedding-3-small") as srv:
        yield srv


def api_embed(srv: OpenAILocal, **more: str) -> str:
    settings = ", ".join(f"{k}: {v}" for k, v in more.items())
    return ("{model: text-embedding-3-small, text: text, batch_size: 16, "
            f"api: {{base_url: '{srv.url}', api_key: '${{env:EMBED_KEY}}', concurrency: 2"
            + (f", {settings}" if settings else "") + "}}")


def test_an_api_model_is_priced_from_the_dated_table_and_its_tokens_are_said_to_be_estimated(
        tmp_path: Path, openai_srv: OpenAILocal) -> None:
    texts = texts_of(80)
    write_source(tmp_path / "src.jsonl", texts)
    plan = plan_of(spec_for(tmp_path, api_embed(openai_srv)))
    e = plan.embedding
    assert e is not None and e["dimension"] == 384 and e["identity"].startswith("api:http://127.0.0.1:")
    assert e["tokens"]["counted"] == "estimated from characters" and not e["tokens"]["exact"]
    assert codes(plan)["VM157"] == "info"
    c = e["cost"]
    assert c["usd_per_million_tokens"] == 0.02 and c["as_of"] == AS_OF and c["source"] == "vecmig's price table"
    assert c["usd"] == pytest.approx(e["tokens"]["expected"] / 1e6 * 0.02, abs=1e-4)
    copies = [a for a in plan.actions if a.kind == "copy_shard"]
    assert sum(a.estimate.cost.get("embedding_tokens", 0.0) for a in copies) == pytest.approx(c["usd"], abs=2e-4)
    assert all(a.params["embed"]["api"]["base_url"] == openai_srv.url for a in copies)
    assert DEFAULT_API_KEY not in plan.to_json_text()
    assert "from the endpoint" in render(plan)


def test_an_api_models_price_is_overridden_in_cost_and_a_tokenizer_counts_exactly(
        tmp_path: Path, openai_srv: OpenAILocal) -> None:
    texts = texts_of(50)
    write_source(tmp_path / "src.jsonl", texts)
    extra = "cost: {embedding: {usd_per_million_tokens: 1000, as_of: '2026-11-15'}}\n"
    plan = plan_of(spec_for(tmp_path, api_embed(openai_srv, tokenizer=MODEL, tokens_per_minute="600"), extra))
    e = plan.embedding
    assert e is not None
    tokens = true_tokens(texts)
    assert e["tokens"]["exact"] and e["tokens"]["expected"] == tokens
    assert e["cost"]["source"] == "cost.embedding" and e["cost"]["as_of"] == "2026-11-15"
    assert e["cost"]["usd"] == pytest.approx(tokens / 1e6 * 1000, abs=1e-3)
    # 600 tokens a minute is 10 a second: the measured endpoint is faster, so the limit decides.
    s = e["seconds"]
    assert "bounded by tokens_per_minute 600" in s["basis"]
    assert s["low"] <= tokens / 10 <= s["high"] <= 2 * s["low"]
    assert "VM157" not in codes(plan)


def test_an_endpoint_that_refuses_the_key_fails_the_plan_in_one_line_without_it(
        tmp_path: Path, openai_srv: OpenAILocal) -> None:
    write_source(tmp_path / "src.jsonl", texts_of(5))
    wrong = "sk-wrong-key-for-the-plan-test"
    with pytest.raises(PlanError) as err:
        plan_of(spec_for(tmp_path, api_embed(openai_srv), key=wrong))
    line = err.value.one_line()
    assert "401" in line and "/transform/embed/api/base_url" in line and wrong not in line and "\n" not in line
