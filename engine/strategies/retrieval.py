"""The ``validate.retrieval`` step: the new model's retrieval quality against the old one's, before
the switch.

Planned after completeness (and query parity) and before the cutover, wherever
``validate.queries`` is. Everything apply needs is frozen into the action's parameters: k, the
thresholds, the evaluation file as written and its sha256, ``old_model`` with the identity
planning loaded, and the copy's ``transform.embed`` as :class:`EmbedParams` (the new model's
identity and dimension from the model itself, built once per process through
:func:`vecmig.embed.loaded`).

Planning refuses what would measure nothing: a query with neither an old vector nor an
``old_model`` to embed its text, a vector or a model of another width than the source's, a
query text the model cannot take, stores that cannot search or filter.

The estimate: each model's load where one embeds (weights read and hashed), the queries'
embedding, and every query sent to both sides at the strategy's concurrency.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from vecmig import estimate
from vecmig.actions.params import EmbedParams
from vecmig.embed import EmbedConfig, EmbedConfigError, Model, UnembeddableText, loaded
from vecmig.embed.settings import config_from_spec
from vecmig.errors import PlanError, SpecError
from vecmig.model import Action, Estimate
from vecmig.providers import stores_that
from vecmig.quality.evalset import EvalQuery, load_eval
from vecmig.quality.retrieval import RetrievalGate
from vecmig.quality.retrieval_params import RetrievalParams
from vecmig.spec import RetrievalSpec, Spec
from vecmig.state.reader import StateReader
from vecmig.strategies.context import PlanContext
from vecmig.strategies.queries import FILES_WITHOUT_METRIC, per_query_seconds

KIND = "validate_retrieval"
ACTION_ID = "validate.retrieval"
AT = "/validate/retrieval"
# Planned seconds: a local model's load (torch, the weights read and hashed) and one query text's
# embedding (a short text on a CPU; an API answers a batch in about as long).
MODEL_LOAD_S = 5.0
EMBED_TEXT_S = 0.01

PHRASES = {
    "min_recall": "recall ≥ {v:g}",
    "min_ndcg": "nDCG ≥ {v:g}",
    "max_recall_drop": "recall drop ≤ {v:g}",
    "max_ndcg_drop": "nDCG drop ≤ {v:g}",
}


def gate_of(r: RetrievalSpec) -> RetrievalGate:
    return RetrievalGate(min_recall=r.min_recall, min_ndcg=r.min_ndcg, max_recall_drop=r.max_recall_drop,
                         max_ndcg_drop=r.max_ndcg_drop)


def validate_retrieval(ctx: PlanContext, after: tuple[str, ...]) -> list[Action]:
    r = ctx.spec.validate.retrieval
    if r is None:
        return []
    _check_searchable(ctx)
    written = str(((ctx.spec.public.get("validate") or {}).get("retrieval") or {}).get("file") or r.file)
    queries = _load(ctx, r)
    if any(q.filter for q in queries):
        _check_filters(ctx)
    source_dim = ctx.source.dimension or ctx.schema.dimension
    for q in queries:
        if q.vector is not None and len(q.vector) != source_dim:
            raise PlanError(f"{q.where}: vector has {len(q.vector)} dimensions; the source's vectors have {source_dim}",
                            where=ctx.spec.where(f"{AT}/file"),
                            hint="give each query's vector from the model that made the source's vectors")
    embed_old = [q for q in queries if q.vector is None]
    old = _old_model(ctx, r, embed_old, source_dim)
    new = _new_model(ctx, queries)
    gate = gate_of(r).to_json()
    params = RetrievalParams(
        k=r.k, file=written, sha256=hashlib.sha256(r.path.read_bytes()).hexdigest(), queries=len(queries),
        gate=gate, old_model=r.old_model, old_identity=old.identity if old is not None else None,
        old_device=_device(ctx), new=new, renames=dict(ctx.spec.mapping.rename),
        concurrency=ctx.spec.strategy.concurrency)
    return [Action(
        id=ACTION_ID,
        kind=KIND,
        reason=summary(params, len(embed_old)),
        depends_on=after,
        params=params.to_json(),
        reversible=True,
        reverse="nothing to undo (read-only)",
        estimate=_estimate(ctx, params, len(embed_old)),
    )]


def summary(p: RetrievalParams, embedded_old: int) -> str:
    """"40 queries of eval.jsonl, k=10, all-MiniLM-L6-v2 against old_model e5-small: recall drop ≤ 0.05"."""
    if p.new is not None:
        old = f"old_model {p.old_model}" if embedded_old else "their old vectors"
        sides = f"{p.new.model} (target) against {old} (source)"
    else:
        old = f"old_model {p.old_model}" if embedded_old else "their vectors"
        sides = f"target against source, both searched with {old}"
    checks = ", ".join(PHRASES[key].format(v=v) for key, v in p.gate.items() if key in PHRASES)
    what = f"{p.queries:,} quer{'y' if p.queries == 1 else 'ies'}"
    return f"{what} of {p.file}, k={p.k}, {sides}: {checks or 'measured, nothing gated'}"


def _device(ctx: PlanContext) -> str:
    embed = ctx.spec.transform.embed
    return embed.device if embed is not None else "auto"


def _load(ctx: PlanContext, r: RetrievalSpec) -> list[EvalQuery]:
    try:
        return load_eval(r.path, shown=r.file, default_k=r.k)
    except SpecError as e:
        raise PlanError(e.message, where=ctx.spec.where(f"{AT}/file"), hint=e.hint) from None


def _old_model(ctx: PlanContext, r: RetrievalSpec, embed: Sequence[EvalQuery], dimension: int) -> Model | None:
    if r.old_model is None:
        if embed:
            raise PlanError(f"{embed[0].where}: the query has no \"vector\" (the old model's vector of it) and "
                            "validate.retrieval names no old_model to embed its text with",
                            where=ctx.spec.where(f"{AT}/file"),
                            hint="give every query its old vector, or set validate.retrieval.old_model to the model "
                                 "that made the source's vectors")
        return None
    if not embed:
        raise PlanError(f"validate.retrieval.old_model is {r.old_model}, but every query of {r.file} carries its "
                        "old vector, so the model would embed nothing",
                        where=ctx.spec.where(f"{AT}/old_model"),
                        hint="remove old_model, or drop the queries' vectors to have it embed their texts")
    try:
        model = loaded(EmbedConfig(model=r.old_model, device=_device(ctx)))  # type: ignore[arg-type]
    except EmbedConfigError as e:
        raise PlanError(f"validate.retrieval.old_model: {e.message}", where=ctx.spec.where(f"{AT}/old_model"),
                        hint=e.hint) from None
    if model.dimension != dimension:
        raise PlanError(f"validate.retrieval.old_model {r.old_model} makes vectors of {model.dimension} dimensions; "
                        f"the source's have {dimension}", where=ctx.spec.where(f"{AT}/old_model"),
                        hint="name the model that made the source's vectors")
    _embeddable(ctx, model, embed, f"{AT}/old_model")
    return model


def _new_model(ctx: PlanContext, queries: Sequence[EvalQuery]) -> EmbedParams | None:
    embed = ctx.spec.transform.embed
    if embed is None:
        return None
    try:
        model = loaded(config_from_spec(embed))
        dimension = model.dimension
    except EmbedConfigError as e:
        raise PlanError(f"transform.embed: {e.message}", where=ctx.spec.where("/transform/embed/model"),
                        hint=e.hint) from None
    _embeddable(ctx, model, queries, "/transform/embed/model")
    return EmbedParams.from_spec(embed, identity=model.identity, dimension=dimension)


def _embeddable(ctx: PlanContext, model: Model, queries: Sequence[EvalQuery], at: str) -> None:
    """Each query text the model takes (not empty, within its token limit unless it truncates)."""
    try:
        model.prepare([q.text for q in queries], [q.where for q in queries])
    except UnembeddableText as e:
        raise PlanError(f"{e.record}: the query's text has {e.message.split(' has ', 1)[-1]}",
                        where=ctx.spec.where(at), hint=e.hint) from None


def _check_searchable(ctx: PlanContext) -> None:
    for side, store, cls in (("source", ctx.spec.source, ctx.source_cls), ("target", ctx.spec.target, ctx.target_cls)):
        if cls.capabilities.search == "none":
            raise PlanError(f"{side} {store.label} cannot answer nearest-neighbour queries ({store.provider} has no "
                            "search in vecmig), so validate.retrieval cannot measure it",
                            where=ctx.spec.where(AT),
                            hint="remove validate.retrieval, or use stores with search "
                                 f"({stores_that(lambda c: c.capabilities.search != 'none')})")
        if store.provider in FILES_WITHOUT_METRIC and not (store.connection or {}).get("metric"):
            raise PlanError(f"{side} {store.label} records no metric, so validate.retrieval cannot search it",
                            where=ctx.spec.where(f"/{side}/connection"),
                            hint=f"declare the metric its readers use: {side}.connection.metric: cosine "
                                 "(or euclidean, dotproduct)")


def _check_filters(ctx: PlanContext) -> None:
    for side, store, cls in (("source", ctx.spec.source, ctx.source_cls), ("target", ctx.spec.target, ctx.target_cls)):
        if not cls.capabilities.search_filters:
            raise PlanError(f"{side} {store.label} cannot filter queries by metadata, and queries of "
                            "validate.retrieval have filters", where=ctx.spec.where(f"{AT}/file"),
                            hint="remove the filters, or use stores that filter "
                                 f"({stores_that(lambda c: c.capabilities.search_filters)})")


def _estimate(ctx: PlanContext, p: RetrievalParams, embedded_old: int) -> Estimate:
    n = ctx.total_records or (ctx.source.count or 0)
    local_models = sum(1 for used, api in ((embedded_old > 0, False),
                                           (p.new is not None, p.new is not None and p.new.api is not None))
                       if used and not api)
    embedded = embedded_old + (p.queries if p.new is not None else 0)
    centre = local_models * MODEL_LOAD_S + embedded * EMBED_TEXT_S
    workers = max(1, min(p.concurrency, p.queries or 1))
    for cls, model in ((ctx.source_cls, ctx.read_model), (ctx.target_cls, ctx.write_model)):
        centre += p.queries * per_query_seconds(cls.capabilities.search, model, n) / workers
    est = estimate.around(centre)
    nbytes = n * ctx.bytes_per_record
    cost = [ctx.cost(side, "query", p.queries, nbytes=nbytes) for side in ("source", "target")]
    return estimate.with_cost(Estimate(seconds_low=est.seconds_low, seconds_high=est.seconds_high), *cost)


def retrieval_file_changed(spec: Spec, state: StateReader, round_no: int) -> str | None:
    """Why an open round cannot resume its check: the evaluation file it froze changed since (its
    sha256 differs, or it is gone), or the spec's validate.retrieval did (a threshold lowered after
    a failed check must be the one measured: resuming would run the frozen one again). The round
    is then planned afresh; the records already copied are found equal and stay."""
    r = spec.validate.retrieval
    for row in state.actions(round_no):
        if row["kind"] != KIND or row["status"] == "done":
            continue
        planned = json.loads(row["params_json"]).get("params", {})
        if r is None:
            return "validate.retrieval was removed from the spec since it started"
        now = hashlib.sha256(r.path.read_bytes()).hexdigest() if r.path.is_file() else None
        if planned.get("sha256") is not None and now != planned.get("sha256"):
            return "the evaluation file of validate.retrieval changed since it started"
        if (planned.get("gate") != gate_of(r).to_json() or planned.get("k") != r.k
                or planned.get("old_model") != r.old_model):
            return "validate.retrieval changed in the spec since it started"
    return None
