"""validate_retrieval: the new model's retrieval quality against the old one's, gated before the switch.

Every query of the plan's evaluation file (which must be byte for byte the file the plan hashed)
is asked twice: of the SOURCE with its old vector (the file's ``vector``, else ``old_model``'s
embedding of its text) and of the TARGET with the new model's embedding of its text (with no
``transform.embed`` in the plan, the same old vector: the target is then measured against the
source for one model). Each side's top-k is scored against the ids labelled relevant
(:mod:`vecmig.quality.retrieval`), and the gate compares the new side with its thresholds and
with the old side.

A failed gate raises :class:`ValidationFailed` carrying the report: the executor keeps it in
state and the audit log, and the cutover after this action does not run. Its message never
says "completeness check failed", so the next apply resumes the round and measures again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecmig.actions.base import ActionKind, RunContext
from vecmig.embed import EmbedConfig, Model, loaded
from vecmig.embed.settings import config_from_params
from vecmig.errors import Interrupted, StalePlanError, ValidationFailed
from vecmig.filters import rename
from vecmig.model import Action
from vecmig.quality.evalset import EvalQuery, load_eval
from vecmig.quality.frozen_file import check_frozen
from vecmig.quality.retrieval import RetrievalGate, measure
from vecmig.quality.retrieval_params import RetrievalParams
from vecmig.quality.runner import Answer, Call, run_queries
from vecmig.state.rows import ActionRow

TITLE = "Retrieval quality (validate.retrieval)"
PER_QUERY = 50  # queries kept per report in state: those that lost most


def eval_file(ctx: RunContext, written: str) -> Path:
    p = Path(written).expanduser()
    return p if p.is_absolute() else ctx.spec.source.base_dir / p


def names(p: RetrievalParams) -> tuple[str, str]:
    """(old side, new side) as the report's columns name them."""
    if p.new is not None:
        return p.old_model or "old vectors", p.new.model
    return p.old_model or "source", "target"


def old_model(p: RetrievalParams) -> Model:
    """``old_model`` as the plan loaded it (the same weights, or refused)."""
    assert p.old_model is not None
    model = loaded(EmbedConfig(model=p.old_model, device=p.old_device))  # type: ignore[arg-type]
    if p.old_identity and model.identity != p.old_identity:
        raise StalePlanError(f"old_model {p.old_model} is not the model the plan measured ({p.old_identity} "
                             f"planned, {model.identity} now)", hint="plan again")
    return model


def new_model(ctx: RunContext, p: RetrievalParams) -> Model:
    """The copy's new model, as the plan froze it; the API key comes from the live spec."""
    assert p.new is not None
    embed = ctx.spec.transform.embed
    key = embed.api.api_key if embed is not None and embed.api is not None else ""
    model = loaded(config_from_params(p.new, key))
    if p.new.identity and model.identity != p.new.identity:
        raise StalePlanError(f"model {p.new.model} is not the model the plan re-embeds with ({p.new.identity} "
                             f"planned, {model.identity} now)", hint="plan again")
    return model


def query_vectors(model: Model, queries: Sequence[EvalQuery]) -> list[np.ndarray]:
    if not queries:
        return []
    rows = model.embed([q.text for q in queries], [q.name for q in queries])
    return [np.asarray(r, dtype=np.float32) for r in rows]


def old_vectors(p: RetrievalParams, queries: Sequence[EvalQuery]) -> list[np.ndarray]:
    """Each query's old vector: its own, else ``old_model``'s embedding of its text."""
    missing = [q for q in queries if q.vector is None]
    embedded = iter(query_vectors(old_model(p), missing) if missing else [])
    out = []
    for q in queries:
        vec = q.array()
        out.append(vec if vec is not None else next(embedded))
    return out


class ValidateRetrieval(ActionKind):
    kind = "validate_retrieval"
    effect = "read"
    runs_beside_others = True

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        p = RetrievalParams.from_json(action.params)
        queries = self._queries(ctx, p)
        ctx.reporter.start(action, 2 * len(queries), 0)
        old = old_vectors(p, queries)
        new = query_vectors(new_model(ctx, p), queries) if p.new is not None else old
        answers_old = self._ask(ctx, action, ctx.spec.source, [Call(v, q.k, q.filter) for v, q in zip(
            old, queries, strict=True)], p.concurrency)
        answers_new = self._ask(ctx, action, ctx.spec.target, [Call(v, q.k, rename(q.filter, p.renames)
                                                                    if q.filter else None)
                                                               for v, q in zip(new, queries, strict=True)],
                                p.concurrency)
        if ctx.stop.is_set():
            raise Interrupted("interrupted during validate.retrieval (read-only: it runs again from its start)",
                              hint="run `vecmig apply` again to resume")
        report = measure(queries, answers_old, answers_new)
        gate = RetrievalGate.from_json(p.gate)
        old_name, new_name = names(p)
        failures = gate.check(report, new_name=new_name if p.new is not None else "the target",
                              old_name="the old model's" if p.new is not None else "the source's")
        agg = report.aggregate
        if queries and not agg.get("recall_old") and not agg.get("recall_new"):
            # Neither side found one relevant id in any query: the ids are not the source's (or the
            # queries are unrelated to the data), and a 0.00 against 0.00 "no worse" measured nothing.
            failures = [*failures, "neither the old nor the new side found any relevant id of any query: check "
                        "that the evaluation file's ids are the source's"]
        result: dict[str, Any] = {
            "title": TITLE,
            "ok": not failures,
            "report": report.to_json(per_query=PER_QUERY),
            "failures": failures,
            "gate": gate.to_json(),
            "models": {"old": old_name, "new": new_name},
            "file": p.file,
        }
        if failures:
            raise ValidationFailed(
                "retrieval check failed: " + "; ".join(failures) + f" on {p.file} ({len(queries)} queries)",
                result=result,
                hint="nothing was switched; `vecmig report SPEC` shows every query. Lower the thresholds of "
                     "validate.retrieval if the loss is acceptable, or keep the old model")
        return result

    def summarise(self, result: dict[str, Any]) -> str:
        a = (result.get("report") or {}).get("aggregate") or {}
        parts = [(f" · recall {a['recall_old']:.2f} → {a['recall_new']:.2f}"
                  if isinstance(a.get("recall_old"), float) and isinstance(a.get("recall_new"), float) else ""),
                 (f" · nDCG {a['ndcg_old']:.2f} → {a['ndcg_new']:.2f}"
                  if isinstance(a.get("ndcg_old"), float) and isinstance(a.get("ndcg_new"), float) else "")]
        return "".join(parts)

    def _queries(self, ctx: RunContext, p: RetrievalParams) -> list[EvalQuery]:
        path = eval_file(ctx, p.file)
        check_frozen(path, shown=p.file, planned_sha256=p.sha256, noun="evaluation file", key="validate.retrieval",
                     measures="the check measures the queries it was planned with or none")
        return load_eval(path, shown=p.file, default_k=p.k)

    def _ask(self, ctx: RunContext, action: Action, store: Any, calls: list[Call], concurrency: int) -> list[Answer]:
        lock = threading.Lock()

        def seen(_: int, __: Answer) -> None:
            with lock:
                ctx.reporter.advance(action, 1)

        return run_queries(lambda: ctx.provider(store), calls, concurrency=concurrency, stop=ctx.stop,
                           on_answer=seen)

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        return None  # read-only
