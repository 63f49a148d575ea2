"""A re-embedded target whose embedding settings changed (vecmig.embed_change): the record diff
leaves vectors out, so without the planner's comparison with the last applied round a new text
template would plan "no changes" (a new keep_old changes every record's metadata, which the
diff sees anyway). With the real packaged model, ~20 records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import test_reembed_apply as base
from tests.support.specs import write_spec
from vecmig.actions.reembed import shared_model
from vecmig.embed.settings import config_from_spec
from vecmig.operations import apply as apply_ops
from vecmig.operations.plan import PlanRequest, plan
from vecmig.spec_loader import load_spec

pytestmark = pytest.mark.integration  # loads torch and the model

N = 20
SPEC = """
    version: 1
    name: reembed-change
    source: {{provider: jsonl, connection: {{path: in.jsonl}}}}
    target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
    {transform}
    strategy: {{type: big-bang, batch_size: 8, concurrency: 1, shard_size: 1000}}
    """


def spec_with(tmp_path: Path, transform: str) -> Path:
    return write_spec(tmp_path, SPEC.format(transform=transform))


def test_a_new_text_template_reembeds_every_record_once(tmp_path: Path) -> None:
    records = base.write_source(tmp_path / "in.jsonl", N)
    ui = base.QuietUi()
    spec = spec_with(tmp_path, "transform: {embed: {model: all-MiniLM-L6-v2, text: text, device: cpu, "
                               "keep_old: old_vector, cache: emb.db}}")
    assert apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), ui).records == N
    assert not plan(PlanRequest(spec), ui).plan.has_changes

    spec = spec_with(tmp_path, 'transform: {embed: {model: all-MiniLM-L6-v2, text: "{tag}: {text}", device: cpu, '
                               'keep_old: old_vector, cache: emb.db}}')
    saved = tmp_path / "change.plan"
    p = plan(PlanRequest(spec, out_file=saved), ui).plan
    assert base.copy_records(p) == {"add": 0, "change": N, "delete": 0, "unchanged": 0}
    assert p.records == {"add": 0, "change": N, "delete": 0, "unchanged": 0}
    found = [w for w in p.warnings if w.code == "VM158"]
    assert len(found) == 1 and found[0].severity == "warning"
    assert "the embedded text (transform.embed.text) changed from text to {tag}: {text}" in found[0].message
    assert "keep_old" not in found[0].message  # only what changed is named
    copies = [a for a in p.actions if a.kind == "copy_shard"]
    assert copies and all("every record is embedded again" in a.reason for a in copies)
    assert all(a.params.get("ids") is None for a in copies)  # each shard copied whole

    embed = load_spec(spec).transform.embed
    assert embed is not None
    model, _ = shared_model(config_from_spec(embed))
    before = model.texts_embedded
    assert apply_ops.apply(apply_ops.ApplyRequest(saved, auto_approve=True), ui).applied
    assert model.texts_embedded - before == N  # every new text embedded, each once
    expected = {r["id"]: (f"{r['metadata']['tag']}: {r['text']}", np.asarray(r["vector"], dtype=np.float32),
                          r["metadata"], r["text"]) for r in records}
    base.assert_reembedded(base.read_all(spec, "target"), expected, "old_vector")
    after = plan(PlanRequest(spec), ui).plan
    assert not after.has_changes and not [w for w in after.warnings if w.code == "VM158"]


def test_dropping_or_adding_transform_embed_plans_every_record(tmp_path: Path) -> None:
    base.write_source(tmp_path / "in.jsonl", N)
    ui = base.QuietUi()
    embedded = "transform: {embed: {model: all-MiniLM-L6-v2, text: text, device: cpu, cache: false}}"
    spec = spec_with(tmp_path, embedded)
    assert apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), ui).records == N
    # Without transform.embed the plain diff compares vectors: the model's differ from the source's.
    plain = spec_with(tmp_path, "")
    assert base.copy_records(plan(PlanRequest(plain), ui).plan) == {
        "add": 0, "change": N, "delete": 0, "unchanged": 0}
    assert apply_ops.apply(apply_ops.ApplyRequest(plain, auto_approve=True), ui).records == N
    assert not plan(PlanRequest(plain), ui).plan.has_changes
    # Back to the model: the source's vectors were copied last, so every record is embedded again.
    spec = spec_with(tmp_path, embedded)
    p = plan(PlanRequest(spec), ui).plan
    assert base.copy_records(p) == {"add": 0, "change": N, "delete": 0, "unchanged": 0}
    assert any(w.code == "VM158" and "copied the source's vectors" in w.message for w in p.warnings)
