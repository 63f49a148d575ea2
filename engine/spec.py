"""The validated migration spec as immutable objects.

Loading (YAML with positions, ``${env:NAME}``, JSON Schema, helpful errors) lives in
``spec_loader``; this module only fixes the shapes the rest of the engine reads.

Two views of the same spec exist on purpose: ``public`` keeps the ``${env:NAME}``
placeholders and is what plans, state and logs may carry; the resolved values are only in
the ``StoreSpec.connection`` objects handed to providers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vecmig.spec_runs import ReplaySpec, RollbackOnSpec
from vecmig.state.redact import Redactor

_PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

Metric = Literal["cosine", "euclidean", "dotproduct"]
IMPLEMENTED_STRATEGIES = ("big-bang", "blue-green", "cdc", "phased", "parallel-run")


@dataclass(frozen=True)
class Fields:
    """Where the canonical record parts live in a store.

    ``metadata`` is a tuple of column names (typed columns) or a single name (one jsonb /
    object column); ``None`` means the provider's default.
    """

    id: str = "id"
    vector: str = "embedding"
    text: str | None = None
    metadata: tuple[str, ...] | str | None = None


@dataclass(frozen=True)
class IndexSpec:
    """A vector index in engine-neutral words: what the spec asks for, what a source's
    ``Inventory.index`` reports (see :mod:`vecmig.indexes`), what ``build_index`` builds.

    ``ef_search`` (hnsw) and ``probes`` (ivfflat) are query-time settings: None leaves the
    store's default. Each store translates the names (Milvus ``M``/``efConstruction``/``nlist``,
    Qdrant ``ef_construct``, ...) in its own folder."""

    type: Literal["hnsw", "ivfflat", "none"] = "hnsw"
    m: int = 16
    ef_construction: int = 64
    lists: int = 100
    ef_search: int | None = None
    probes: int | None = None


@dataclass(frozen=True)
class CreateSpec:
    dimension: int | None = None
    metric: Metric | None = None
    # None: carry the source's index over (vecmig.indexes); ``type: none`` asks for none.
    index: IndexSpec | None = None
    id_type: Literal["int", "text"] | None = None
    # Managed stores (Pinecone serverless): where the new index lives and how it is guarded.
    # None means the provider's default; stores without these notions never read them.
    cloud: str | None = None
    region: str | None = None
    deletion_protection: Literal["enabled", "disabled"] | None = None
    tags: tuple[tuple[str, str], ...] = ()  # pairs, so the frozen spec stays hashable
    sparse: bool = False  # create room for sparse values (Pinecone: needs metric dotproduct)


@dataclass(frozen=True)
class PointerSpec:
    """What readers of a store without aliases follow: a file and/or a command (Pinecone).

    ``file`` is rewritten atomically at cutover; ``command`` is run with the new index in
    its environment. At least one is set (the loader checks).
    """

    file: str | None = None
    command: str | None = None
    timeout: float = 120.0  # seconds the command may take before the cutover fails


@dataclass(frozen=True)
class StoreSpec:
    provider: str
    # Holds resolved secrets: kept out of repr so a logged spec cannot leak them.
    connection: dict[str, Any] = field(repr=False)
    collection: str | None = None
    namespace: str | None = None
    fields: Fields = field(default_factory=Fields)
    create: CreateSpec | None = None
    alias: str | None = None
    # target.pointer in the spec; named live_pointer here because ``pointer`` below is the
    # JSON pointer of this store within the spec.
    live_pointer: PointerSpec | None = None
    # JSON pointer of this store in the spec ("/source" or "/target"), for error messages.
    pointer: str = ""
    base_dir: Path = field(default_factory=Path.cwd)

    def path(self, value: str) -> Path:
        """Relative paths in a spec are relative to the spec file, not to the shell's cwd."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.collection or self.connection.get('path', '')}"


@dataclass(frozen=True)
class StrategySpec:
    type: str = "big-bang"
    batch_size: int = 1000
    concurrency: int = 4
    shard_size: int = 50_000
    decommission: bool = False
    # cdc: cutover waits until the target trails the source by at most this many records, or
    # (max_lag_seconds set) by at most this many seconds.
    max_lag: int = 100
    max_lag_seconds: float | None = None
    freeze_writes: bool = False
    # phased: the waves in order (vecmig.waves), or one per source namespace (``by: namespace``);
    # ``rest``: a last wave takes what no wave takes (False: it is left behind, and the plan says so).
    waves: tuple[WaveSpec, ...] = ()
    waves_by_namespace: bool = False
    rest: bool = True
    # parallel-run: the query log replayed against both stores, and the thresholds that gate
    # the cutover on it (vecmig.quality.Gate's keys, as written).
    replay: ReplaySpec | None = None
    gate: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class WaveSpec:
    """One wave of strategy phased: exactly one of a source namespace, a half-open id range
    ``[ids_from, ids_to)`` or a metadata filter (vecmig.filters); ``alias`` (or ``pointer``) is
    switched to the target once the wave is validated."""

    name: str
    namespace: str | None = None
    ids_from: int | str | None = None
    ids_to: int | str | None = None
    filter: dict[str, Any] | None = None
    alias: str | None = None
    pointer: PointerSpec | None = None  # what this wave's readers follow (e.g. one tenant's config)

    def definition(self) -> dict[str, Any]:
        """What selects the wave's records, as plans carry it."""
        if self.namespace is not None:
            return {"namespace": self.namespace}
        if self.filter is not None:
            return {"filter": self.filter}
        return {"ids": {"from": self.ids_from, "to": self.ids_to}}


@dataclass(frozen=True)
class NamespaceMapping:
    """Where a record's namespace goes (``mapping.namespace``); see :mod:`vecmig.namespaces`.

    ``to: field``: the source namespace becomes metadata field ``name`` of a namespace-less
    target; ``from: field``: field ``name`` of a namespace-less source names the target namespace
    (and is removed, so a round trip gives back what was exported); ``to: namespace`` (the
    default between namespaced stores): a namespace stays itself, or becomes ``names[it]``.
    ``composite_ids``: ids are ``"<namespace>/<id>"`` in the namespace-less store, so the same
    id in two namespaces stays two records; ``from: field`` strips the prefix again.
    """

    to: Literal["field", "namespace"] = "namespace"
    from_field: bool = False  # ``from: field``: the reverse of ``to: field``
    name: str | None = None
    names: tuple[tuple[str, str], ...] = ()
    composite_ids: bool = False

    @property
    def is_identity(self) -> bool:
        return self.to == "namespace" and not self.from_field and not self.names


@dataclass(frozen=True)
class MappingSpec:
    rename: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()
    namespace: NamespaceMapping | None = None

    @property
    def is_identity(self) -> bool:
        return not self.rename and not self.drop and (self.namespace is None or self.namespace.is_identity)

    def apply(self, metadata: dict[str, Any]) -> dict[str, Any]:
        if not self.rename and not self.drop:
            return metadata
        renames = dict(self.rename)
        return {renames.get(k, k): v for k, v in metadata.items() if k not in self.drop}


@dataclass(frozen=True)
class QueriesSpec:
    """``validate.queries``: query parity between source and target before cutover.

    Queries are ``sample`` source records' vectors (picked by ``seed``) and/or the queries of
    ``file`` (``file`` as written, ``path`` resolved against the spec's folder). ``filter`` is in
    the source's field names; the target's side is renamed through the mapping. A threshold left
    out of the spec keeps its default here, so a gate always gates (set a threshold to 0, or
    ``max_recall_drop: 1``, to measure without gating it).
    """

    sample: int = 0
    seed: int = 0
    k: int = 10
    file: str | None = None
    path: Path | None = None
    filter: dict[str, Any] | None = None
    concurrency: int = 4
    min_overlap: float | None = 0.9
    # No absolute recall floor unless asked: the source's own index may not reach one (HNSW at
    # ef_search 40 found 0.90 of the true top-10 on the benchmark's data), and a faithful copy
    # must pass. What is gated by default is the target losing recall against the source.
    min_recall: float | None = None
    max_recall_drop: float | None = 0.05
    max_latency_ratio: float | None = None
    max_score_diff: float | None = None
    max_error_rate: float | None = 0.0


@dataclass(frozen=True)
class RetrievalSpec:
    """``validate.retrieval``: the new model's retrieval quality against the old one's on an
    evaluation set (queries as text, with the ids that are relevant), side by side.

    The target is searched with the new model's embedding of each query; the source with the
    query's old vector (``vector`` in the file) or ``old_model``'s embedding of it. Unset
    thresholds are not gated, except the default: the new model may lose at most 0.05 recall@k.
    """

    file: str
    path: Path
    k: int = 10
    old_model: str | None = None
    min_recall: float | None = None
    min_ndcg: float | None = None
    max_recall_drop: float | None = 0.05
    max_ndcg_drop: float | None = None


@dataclass(frozen=True)
class ValidateSpec:
    completeness: bool = True
    checksums: bool = True
    queries: QueriesSpec | None = None
    retrieval: RetrievalSpec | None = None


@dataclass(frozen=True)
class EmbedApiSpec:
    """``transform.embed.api``: an OpenAI-compatible ``/v1/embeddings`` endpoint. The key stays
    here (resolved from ``${env:...}``) and never reaches a plan: the plan holds the rest."""

    base_url: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 1
    tokens_per_minute: int | None = None
    tokenizer: str | None = None
    max_tokens: int | None = None
    dimension: int | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class EmbedSpec:
    """``transform.embed``: the target's vectors are ``model``'s embeddings of each record's text.

    ``text`` names the source field holding it (``fields.text`` or a metadata key) or is a
    template over them (``"{title}: {body}"``). ``keep_old`` names a target metadata field that
    keeps the record's old vector. ``cache`` is where embeddings are kept by (model, text hash):
    a path (resolved against the spec's folder), a ``postgresql://`` URL, or None for no cache.
    """

    model: str
    text: str
    device: Literal["cpu", "cuda", "auto"] = "auto"
    batch_size: int = 32
    truncate: bool = False
    keep_old: str | None = None
    cache: str | None = None
    api: EmbedApiSpec | None = None

    @property
    def is_template(self) -> bool:
        return "{" in self.text


@dataclass(frozen=True)
class TransformSpec:
    embed: EmbedSpec | None = None


@dataclass(frozen=True)
class ExecutorSpec:
    """Where copy shards run: ``local`` threads, or ``dask`` workers (the scheduler at
    ``address``, or a ``LocalCluster`` of ``workers`` started for the apply)."""

    type: Literal["local", "dask"] = "local"
    address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None


@dataclass(frozen=True)
class CostSpec:
    """Price overrides per provider (``cost: {pinecone: {...}}``) and the transition period.

    ``transition_days`` is how long both sides are paid for (blue stays until decommission):
    the storage line of a plan covers that long.
    """

    prices: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    transition_days: float = 30.0

    def for_provider(self, name: str) -> dict[str, Any]:
        return next((dict(values) for provider, values in self.prices if provider == name), {})


@dataclass(frozen=True)
class Locations:
    """JSON pointer → (line, column) of the YAML node, so later stages can point at the spec."""

    file: str
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def where(self, pointer: str) -> str:
        probe = pointer
        while probe and probe not in self.positions:
            probe = probe.rsplit("/", 1)[0]
        line, col = self.positions.get(probe, (1, 1))
        return f"{self.file}:{line}:{col}: {pointer or '/'}"


@dataclass(frozen=True)
class Spec:
    version: int
    name: str
    source: StoreSpec
    target: StoreSpec
    strategy: StrategySpec
    mapping: MappingSpec
    validate: ValidateSpec
    state_path: Path | None
    state_url: str | None
    public: dict[str, Any]  # the spec as written, placeholders intact: safe to persist
    locations: Locations
    # Secret values (DSNs, API keys, state URLs, URL userinfo): never persisted, never shown.
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    # Resolved non-secret values from the environment -> their text as written
    # ("/data/in.jsonl" -> "${env:DATA}/in.jsonl"): shown and persisted as written only.
    shown: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    cost: CostSpec = field(default_factory=CostSpec)
    # After cutover: what switches readers back (`vecmig watch`; see vecmig.spec_runs).
    rollback_on: RollbackOnSpec | None = None
    transform: TransformSpec = field(default_factory=TransformSpec)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)

    @property
    def redactor(self) -> Redactor:
        """Masks this spec's secrets (and anything shaped like one) and restores placeholders."""
        return Redactor(self.secrets, dict(self.shown))

    # Non-secret values read from the environment: (JSON pointer, resolved value), and the
    # variables behind them (name, value), to resolve ``${env:NAME}`` in a plan's parameters.
    env_values: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    env_vars: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def env_digest(self, prefix: str = "") -> str | None:
        """A digest of the non-secret environment values under ``prefix`` ("/source"), or None.

        The spec hash covers the spec as written, so it cannot see ``DATA_DIR`` change; this
        does, without carrying the values. Secrets take no part: a rotated password is not a
        change to the migration.
        """
        values = [(p, v) for p, v in self.env_values if p == prefix or p.startswith(prefix + "/") or not prefix]
        if not values:
            return None
        blob = json.dumps(values, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def resolve_shown(self, value: Any) -> Any:
        """The inverse of the redactor's placeholders: ``${env:NAME}`` back to its value.

        Plans and state hold non-secret environment values as written; the work uses them
        resolved. Only variables this spec read for non-secret keys are resolved.
        """
        if not self.env_vars:
            return value
        table = dict(self.env_vars)

        def one(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: table.get(m.group(1), m.group(0)), text)

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return one(v) if "${env:" in v else v
            if isinstance(v, dict):
                return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, tuple):
                return tuple(walk(x) for x in v)
            return v

        return walk(value)

    @property
    def spec_hash(self) -> str:
        """Hash of the spec as written: a changed secret value does not make a plan stale."""
        blob = json.dumps(self.public, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def where(self, pointer: str) -> str:
        return self.locations.where(pointer)
