"""Apply with ``transform.embed``, in-process through the operations layer with the real packaged
model: every target vector is the model's embedding of its record's text, metadata and text are
unchanged, ``keep_old`` holds the old vector bit for bit; a plan after the apply has no changes,
an edited text makes exactly that record "to change" and only that text is embedded again, and a
source vector changed alone is no change (the target's vector is a function of the text)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.data import make_docs_table
from tests.support.embed import local_model
from tests.support.specs import env_for, write_spec
from vecmig.actions import Reporter, RunContext, SilentReporter
from vecmig.actions.params import EmbedParams
from vecmig.actions.reembed import reembed as reembed_batch
from vecmig.actions.reembed import shared_model
from vecmig.embed import EmbeddingCache, UnembeddableText
from vecmig.embed.settings import config_from_spec
from vecmig.errors import TerminalError
from vecmig.model import Action, Plan
from vecmig.namespaces import map_batch
from vecmig.operations import apply as apply_ops
from vecmig.operations.plan import PlanRequest, plan
from vecmig.operations.ui import Approval
from vecmig.providers import provider_class
from vecmig.records import Batch
from vecmig.spec_loader import load_spec
from vecmig.state.redact import Redactor
from vecmig.state.store import StateStore

pytestmark = pytest.mark.integration  # loads torch and the model: kept out of the fast unit tier

DIM = 384
WORDS = ["vector", "store", "migrate", "embedding", "model", "postgres", "index", "query", "recall", "shard"]


class QuietUi:
    def redact_with(self, redactor: Redactor) -> None: ...
    def show_plan(self, plan: Plan, state: StateStore | None) -> None: ...
    def show_undo(self, steps: tuple[Action, ...]) -> None: ...
    def confirm(self, question: str) -> Approval:
        return "interactive"

    @contextmanager
    def progress(self, actions: tuple[Action, ...]) -> Iterator[Reporter]:
        yield SilentReporter()

    def say(self, line: str) -> None: ...


def text_of(i: int) -> str:
    return f"record {i} is about {WORDS[i % 10]} and {WORDS[(i * 7) % 10]}"


def write_source(path: Path, n: int, *, edit: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    records = []
    for i in range(n):
        rec: dict[str, Any] = {"id": i, "vector": vectors[i].tolist(), "metadata": {"n": i, "tag": WORDS[i % 10]},
                               "text": text_of(i)}
        rec.update((edit or {}).get(i, {}))
        records.append(rec)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def read_all(spec_path: Path, side: str) -> Batch:
    spec = load_spec(spec_path)
    store = getattr(spec, side)
    parts: list[Batch] = []
    with provider_class(store.provider)(store) as p:
        parts.extend(b for b in p.scan(None, None, 500) if len(b))
    return Batch(ids=[i for b in parts for i in b.ids], vectors=np.concatenate([b.vectors for b in parts]),
                 metadata=[m for b in parts for m in b.metadata],
                 texts=[t for b in parts for t in (b.texts or [None] * len(b))])


def assert_reembedded(target: Batch, expected: dict[Any, tuple[str, np.ndarray, dict[str, Any], str | None]],
                      keep_old: str) -> None:
    """Every record's vector is the model's own embedding of its text (cosine >= 0.9999), and
    nothing else changed: metadata as in the source plus the old vector, bit for bit."""
    assert sorted(map(str, target.ids)) == sorted(map(str, expected))
    assert target.vectors.shape[1] == DIM and target.vectors.dtype == np.float32
    by_key = {str(k): v for k, v in expected.items()}
    texts = [by_key[str(rid)][0] for rid in target.ids]
    want = local_model().embed(texts)
    cos = np.sum(target.vectors * want, axis=1) / (np.linalg.norm(target.vectors, axis=1)
                                                   * np.linalg.norm(want, axis=1))
    assert float(cos.min()) >= 0.9999
    for rid, meta, text in zip(target.ids, target.metadata, target.texts or [], strict=True):
        _, old, source_meta, source_text = by_key[str(rid)]
        kept = np.asarray(meta[keep_old], dtype=np.float32)
        assert kept.tobytes() == np.asarray(old, dtype=np.float32).tobytes(), rid
        assert {k: v for k, v in meta.items() if k != keep_old} == source_meta
        assert text == source_text


def copy_records(p: Plan) -> dict[str, int]:
    total: dict[str, int] = {}
    for a in p.actions:
        if a.kind == "copy_shard" and a.records:
            for k, v in a.records.items():
                total[k] = total.get(k, 0) + v
    return total


def test_jsonl_to_jsonl_reembeds_keeps_the_old_vector_and_plans_no_change_after(tmp_path: Path) -> None:
    n = 60
    records = write_source(tmp_path / "in.jsonl", n)
    spec = write_spec(tmp_path, """
        version: 1
        name: reembed-jsonl
        source: {provider: jsonl, connection: {path: in.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        transform:
          embed: {model: all-MiniLM-L6-v2, text: text, device: cpu, batch_size: 16, keep_old: old_vector,
                  cache: emb.db}
        strategy: {type: big-bang, batch_size: 16, concurrency: 2, shard_size: 1000}
        """)
    ui = QuietUi()
    result = apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), ui)
    assert result.applied and result.records == n
    assert all(a.params.get("embed") for a in result.plan.actions if a.kind == "copy_shard")
    expected = {r["id"]: (r["text"], np.asarray(r["vector"], dtype=np.float32), r["metadata"], r["text"])
                for r in records}
    assert_reembedded(read_all(spec, "target"), expected, "old_vector")
    embed = load_spec(spec).transform.embed
    assert embed is not None
    model, _ = shared_model(config_from_spec(embed))
    with EmbeddingCache(tmp_path / "emb.db") as cache:
        assert cache.count(model.identity) == n

    # Nothing changed: nothing to do (vectors are not compared: the target's are the new model's).
    assert not plan(PlanRequest(spec), ui).plan.has_changes
    # With keep_old, a source vector changed alone changes the target's old_vector field: one record to
    # change, written again with its embedding from the cache (its text did not change).
    records = write_source(tmp_path / "in.jsonl", n, edit={7: {"vector": [0.5] * DIM}})
    assert copy_records(plan(PlanRequest(spec), ui).plan) == {"add": 0, "change": 1, "delete": 0, "unchanged": n - 1}
    # Counted over applies of saved plans: planning probes the model's speed on sampled texts
    # (a local model's time, no cache write), which is not the copy embedding anything.
    saved = tmp_path / "delta.plan"
    plan(PlanRequest(spec, out_file=saved), ui)
    before = model.texts_embedded
    assert apply_ops.apply(apply_ops.ApplyRequest(saved, auto_approve=True), ui).applied
    assert model.texts_embedded == before
    # One text edited: exactly that record is to change, and only its text is embedded.
    records = write_source(tmp_path / "in.jsonl", n, edit={7: {"vector": [0.5] * DIM},
                                                          12: {"text": "a brand new text for twelve"}})
    assert copy_records(plan(PlanRequest(spec, out_file=saved), ui).plan) == {
        "add": 0, "change": 1, "delete": 0, "unchanged": n - 1}
    before = model.texts_embedded
    assert apply_ops.apply(apply_ops.ApplyRequest(saved, auto_approve=True), ui).applied
    assert model.texts_embedded - before == 1
    expected = {r["id"]: (r["text"], np.asarray(r["vector"], dtype=np.float32), r["metadata"], r["text"])
                for r in records}
    assert_reembedded(read_all(spec, "target"), expected, "old_vector")
    assert not plan(PlanRequest(spec), ui).plan.has_changes


def test_without_keep_old_a_changed_source_vector_is_no_change(tmp_path: Path) -> None:
    # The target's vector is a function of the text alone: with the old vector not kept, a source
    # vector that changed under the same text leaves nothing to do.
    n = 20
    write_source(tmp_path / "in.jsonl", n)
    spec = write_spec(tmp_path, """
        version: 1
        name: reembed-no-keep
        source: {provider: jsonl, connection: {path: in.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        transform: {embed: {model: all-MiniLM-L6-v2, text: text, device: cpu, cache: false}}
        """)
    ui = QuietUi()
    assert apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), ui).records == n
    write_source(tmp_path / "in.jsonl", n, edit={3: {"vector": [0.25] * DIM}})
    assert not plan(PlanRequest(spec), ui).plan.has_changes
    write_source(tmp_path / "in.jsonl", n, edit={3: {"vector": [0.25] * DIM, "metadata": {"n": 3, "tag": "new"}}})
    assert copy_records(plan(PlanRequest(spec), ui).plan) == {"add": 0, "change": 1, "delete": 0, "unchanged": n - 1}


def test_pgvector_to_pgvector_reembeds_a_metadata_field(pg_db: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    n = 80
    data = make_docs_table(pg_db, "docs", n, DIM, seed=3)
    for k, v in env_for(pg_db).items():
        monkeypatch.setenv(k, v)
    spec = write_spec(tmp_path, """
        version: 1
        name: reembed-pg
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_v2,
                 fields: {id: id, vector: embedding, text: body, metadata: meta}}
        transform:
          embed: {model: all-MiniLM-L6-v2, text: title, device: cpu, keep_old: old_embedding, cache: emb.db}
        strategy: {type: big-bang, batch_size: 20, concurrency: 2, shard_size: 1000}
        """)
    ui = QuietUi()
    result = apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), ui)
    assert result.applied and result.records == n
    expected = {rid: (meta["title"], vec, meta, text)
                for rid, vec, meta, text in zip(data.ids, data.vectors, data.metadata, data.texts, strict=True)}
    assert_reembedded(read_all(spec, "target"), expected, "old_embedding")
    validated = [a for a in result.plan.actions if a.kind == "validate_completeness"]
    assert validated and validated[0].params["reembedded"]
    assert not plan(PlanRequest(spec), ui).plan.has_changes


def test_a_model_other_than_the_planned_one_and_an_empty_text_are_refused_naming_what(tmp_path: Path) -> None:
    write_source(tmp_path / "in.jsonl", 3)
    spec_path = write_spec(tmp_path, """
        version: 1
        name: reembed-refusals
        source: {provider: jsonl, connection: {path: in.jsonl}}
        target: {provider: jsonl, connection: {path: out.jsonl}}
        transform: {embed: {model: all-MiniLM-L6-v2, text: "{tag}: {text}", device: cpu, cache: false}}
        """)
    spec = load_spec(spec_path)
    assert spec.transform.embed is not None
    model, _ = shared_model(config_from_spec(spec.transform.embed))
    ctx = RunContext(spec=spec, state=None, round=1)  # type: ignore[arg-type]  # the step reads no state
    batch = Batch(ids=["a", "b"], vectors=np.zeros((2, DIM), dtype=np.float32),
                  metadata=[{"tag": "x"}, {"tag": "y"}], texts=["first", "second"])
    good = EmbedParams.from_spec(spec.transform.embed, identity=model.identity, dimension=model.dimension)
    parts = reembed_batch(ctx, good, batch, map_batch(spec, batch))
    want = local_model().embed(["x: first", "y: second"])  # the template over the source's fields
    assert np.allclose(parts[0].vectors, want, atol=1e-5)
    stale = EmbedParams.from_spec(spec.transform.embed, identity="local:all-MiniLM-L6-v2@0000", dimension=DIM)
    with pytest.raises(TerminalError, match="the model changed since the plan: plan again"):
        reembed_batch(ctx, stale, batch, map_batch(spec, batch))
    plain = EmbedParams.from_spec(dataclasses.replace(spec.transform.embed, text="text"), identity=model.identity,
                                  dimension=DIM)
    empty = Batch(ids=["a", "b"], vectors=np.zeros((2, DIM), dtype=np.float32), metadata=[{}, {}],
                  texts=["fine", "  "])
    with pytest.raises(UnembeddableText, match="record 'b' has an empty text"):
        reembed_batch(ctx, plain, empty, map_batch(spec, empty))
