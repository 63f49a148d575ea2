"""Stage 5, assembly: the validated, resolved spec built into the immutable objects of ``vecmig.spec``.

Defaults are filled in here, never in the public copy, so the spec hash only changes when
a person edits the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vecmig.spec import (
    CostSpec,
    CreateSpec,
    EmbedApiSpec,
    EmbedSpec,
    ExecutorSpec,
    Fields,
    IndexSpec,
    Locations,
    MappingSpec,
    NamespaceMapping,
    PointerSpec,
    QueriesSpec,
    RetrievalSpec,
    Spec,
    StoreSpec,
    StrategySpec,
    TransformSpec,
    ValidateSpec,
    WaveSpec,
)
from vecmig.specload.run_rules import assemble_gate, assemble_replay, assemble_rollback_on


def _assemble(
    spec: dict[str, Any], public: dict[str, Any], locations: Locations, base_dir: Path, secrets: frozenset[str],
    shown: tuple[tuple[str, str], ...] = (),
) -> Spec:
    state = spec.get("state", {})
    state_url = state.get("url")
    state_path = None
    if state_url is None:
        raw = Path(state.get("path", f".vecmig/{spec['name']}.db")).expanduser()
        state_path = Path(os.path.normpath(raw if raw.is_absolute() else base_dir / raw))
    return Spec(
        version=spec["version"],
        name=spec["name"],
        source=_store(spec["source"], "/source", base_dir),
        target=_store(spec["target"], "/target", base_dir),
        strategy=_strategy(spec.get("strategy", {})),
        mapping=_mapping(spec.get("mapping", {})),
        validate=_validate(spec.get("validate", {}), base_dir),
        state_path=state_path,
        state_url=state_url,
        public=public,
        locations=locations,
        secrets=secrets,
        shown=shown,
        cost=_cost(spec.get("cost", {})),
        rollback_on=assemble_rollback_on(spec.get("rollback_on")),
        transform=_transform(spec.get("transform") or {}, base_dir),
        executor=_executor(spec.get("executor") or {}),
    )


def _resolve(base_dir: Path, file: str) -> Path:
    raw = Path(file).expanduser()
    return Path(os.path.normpath(raw if raw.is_absolute() else base_dir / raw))


def _transform(data: dict[str, Any], base_dir: Path) -> TransformSpec:
    embed = data.get("embed")
    return TransformSpec(embed=None if embed is None else _embed(embed, base_dir))


def _embed(data: dict[str, Any], base_dir: Path) -> EmbedSpec:
    cache = data.get("cache", True)
    if cache is True:
        cache = str(base_dir / ".vecmig" / "embeddings.db")
    elif cache is False:
        cache = None
    elif "://" not in cache:
        cache = str(_resolve(base_dir, cache))
    api = data.get("api")
    return EmbedSpec(
        model=str(data["model"]),
        text=str(data["text"]),
        device=data.get("device", EmbedSpec.device),
        batch_size=int(data.get("batch_size", EmbedSpec.batch_size)),
        truncate=bool(data.get("truncate", False)),
        keep_old=data.get("keep_old"),
        cache=cache,
        api=None if api is None else EmbedApiSpec(
            base_url=str(api["base_url"]).rstrip("/"),
            api_key=str(api.get("api_key", "")),
            concurrency=int(api.get("concurrency", EmbedApiSpec.concurrency)),
            tokens_per_minute=int(api["tokens_per_minute"]) if "tokens_per_minute" in api else None,
            tokenizer=api.get("tokenizer"),
            max_tokens=int(api["max_tokens"]) if "max_tokens" in api else None,
            dimension=int(api["dimension"]) if "dimension" in api else None,
            timeout=float(api.get("timeout", EmbedApiSpec.timeout)),
        ),
    )


def _executor(data: dict[str, Any]) -> ExecutorSpec:
    return ExecutorSpec(
        type=data.get("type", "local"),
        address=data.get("address"),
        workers=int(data["workers"]) if "workers" in data else None,
        threads_per_worker=int(data["threads_per_worker"]) if "threads_per_worker" in data else None,
    )


def _store(data: dict[str, Any], pointer: str, base_dir: Path) -> StoreSpec:
    return StoreSpec(
        provider=data["provider"],
        connection=dict(data["connection"]),
        collection=data.get("collection"),
        namespace=data.get("namespace"),
        fields=_fields(data.get("fields", {})),
        create=_create(data["create"]) if "create" in data else None,
        alias=data.get("alias"),
        live_pointer=_live_pointer(data["pointer"]) if "pointer" in data else None,
        pointer=pointer,
        base_dir=base_dir,
    )


def _live_pointer(data: dict[str, Any]) -> PointerSpec:
    return PointerSpec(file=data.get("file"), command=data.get("command"),
                       timeout=float(data.get("timeout", PointerSpec.timeout)))


def _cost(data: dict[str, Any]) -> CostSpec:
    prices = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in data.items() if isinstance(v, dict)))
    return CostSpec(prices=prices, transition_days=float(data.get("transition_days", CostSpec.transition_days)))


def _fields(data: dict[str, Any]) -> Fields:
    metadata = data.get("metadata")
    return Fields(
        id=data.get("id", Fields.id),
        vector=data.get("vector", Fields.vector),
        text=data.get("text"),
        metadata=tuple(metadata) if isinstance(metadata, list) else metadata,
    )


def _create(data: dict[str, Any]) -> CreateSpec:
    index = data.get("index")
    # int(): JSON Schema counts 384.0 as an integer; the engine wants a real int.
    return CreateSpec(
        dimension=int(data["dimension"]) if "dimension" in data else None,
        metric=data.get("metric"),
        index=None if index is None else IndexSpec(
            type=index.get("type", IndexSpec.type),
            m=int(index.get("m", IndexSpec.m)),
            ef_construction=int(index.get("ef_construction", IndexSpec.ef_construction)),
            lists=int(index.get("lists", IndexSpec.lists)),
            ef_search=int(index["ef_search"]) if "ef_search" in index else None,
            probes=int(index["probes"]) if "probes" in index else None,
        ),
        id_type=data.get("id_type"),
        cloud=data.get("cloud"),
        region=data.get("region"),
        deletion_protection=data.get("deletion_protection"),
        tags=tuple(sorted((str(k), str(v)) for k, v in (data.get("tags") or {}).items())),
        sparse=bool(data.get("sparse", False)),
    )


def _strategy(data: dict[str, Any]) -> StrategySpec:
    waves = data.get("waves")
    lag = data.get("max_lag")  # the schema allows an integer (records) or "<n>s" (seconds)
    return StrategySpec(
        type=data.get("type", StrategySpec.type),
        batch_size=int(data.get("batch_size", StrategySpec.batch_size)),
        concurrency=int(data.get("concurrency", StrategySpec.concurrency)),
        shard_size=int(data.get("shard_size", StrategySpec.shard_size)),
        decommission=bool(data.get("decommission", StrategySpec.decommission)),
        max_lag=int(lag) if isinstance(lag, int) else StrategySpec.max_lag,
        max_lag_seconds=float(lag[:-1]) if isinstance(lag, str) else None,
        freeze_writes=bool(data.get("freeze_writes", StrategySpec.freeze_writes)),
        waves=tuple(_wave(w) for w in waves) if isinstance(waves, list) else (),
        waves_by_namespace=isinstance(waves, dict),
        rest=bool(data.get("rest", StrategySpec.rest)),
        replay=assemble_replay(data.get("replay")),
        gate=assemble_gate(data.get("gate")),
    )


def _wave(data: dict[str, Any]) -> WaveSpec:
    ids = data.get("ids") or {}
    return WaveSpec(name=str(data["name"]), namespace=data.get("namespace"), ids_from=ids.get("from"),
                    ids_to=ids.get("to"), filter=data.get("filter"), alias=data.get("alias"),
                    pointer=_live_pointer(data["pointer"]) if "pointer" in data else None)


def _mapping(data: dict[str, Any]) -> MappingSpec:
    metadata = data.get("metadata", {})
    return MappingSpec(
        rename=tuple(metadata.get("rename", {}).items()),
        drop=tuple(metadata.get("drop", [])),
        namespace=_namespace_mapping(data["namespace"]) if "namespace" in data else None,
    )


def _namespace_mapping(data: dict[str, Any]) -> NamespaceMapping:
    return NamespaceMapping(
        to="field" if data.get("to") == "field" else "namespace",
        from_field=data.get("from") == "field",
        name=data.get("name"),
        names=tuple(sorted((data.get("names") or {}).items())),
        composite_ids=bool(data.get("composite_ids", False)),
    )


def _validate(data: dict[str, Any], base_dir: Path) -> ValidateSpec:
    queries = _queries(data["queries"], base_dir) if "queries" in data else None
    retrieval = _retrieval(data["retrieval"], base_dir) if "retrieval" in data else None
    completeness = data.get("completeness", True)
    if completeness is False:
        return ValidateSpec(completeness=False, checksums=False, queries=queries, retrieval=retrieval)
    if completeness is True:
        return ValidateSpec(queries=queries, retrieval=retrieval)
    return ValidateSpec(completeness=True, checksums=bool(completeness.get("checksums", True)), queries=queries,
                        retrieval=retrieval)


def _retrieval(data: dict[str, Any], base_dir: Path) -> RetrievalSpec:
    def threshold(key: str) -> float | None:
        value = data.get(key, getattr(RetrievalSpec, key))
        return None if value is None else float(value)

    return RetrievalSpec(
        file=str(data["file"]),
        path=_resolve(base_dir, str(data["file"])),
        k=int(data.get("k", RetrievalSpec.k)),
        old_model=data.get("old_model"),
        min_recall=threshold("min_recall"),
        min_ndcg=threshold("min_ndcg"),
        max_recall_drop=threshold("max_recall_drop"),
        max_ndcg_drop=threshold("max_ndcg_drop"),
    )


def _queries(data: dict[str, Any], base_dir: Path) -> QueriesSpec:
    file = data.get("file")
    path = None
    if file is not None:
        raw = Path(file).expanduser()
        path = Path(os.path.normpath(raw if raw.is_absolute() else base_dir / raw))

    def threshold(key: str) -> float | None:
        value = data.get(key, getattr(QueriesSpec, key))
        return None if value is None else float(value)

    return QueriesSpec(
        sample=int(data.get("sample", 0)),
        seed=int(data.get("seed", 0)),
        k=int(data.get("k", QueriesSpec.k)),
        file=file,
        path=path,
        filter=dict(data["filter"]) if "filter" in data else None,
        concurrency=int(data.get("concurrency", QueriesSpec.concurrency)),
        min_overlap=threshold("min_overlap"),
        min_recall=threshold("min_recall"),
        max_recall_drop=threshold("max_recall_drop"),
        max_latency_ratio=threshold("max_latency_ratio"),
        max_score_diff=threshold("max_score_diff"),
        max_error_rate=threshold("max_error_rate"),
    )
