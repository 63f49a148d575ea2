"""Which index a target gets (vecmig.indexes): the spec's, else the source's carried over, else
the nearest the target store builds, and the plan's findings when it gets none or another."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.memory import SOURCE, Harness
from vecmig import indexes
from vecmig.model import Inventory, Plan
from vecmig.planner import make_plan
from vecmig.providers import provider_class
from vecmig.refresh import Refreshed, refresh
from vecmig.spec import IndexSpec, Spec
from vecmig.spec_loader import load_spec_text

HNSW = {"type": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 40}
IVF = {"type": "ivfflat", "lists": 50, "probes": 7}
ENV = {"DSN": "postgresql://localhost/x", "MILVUS_URI": "http://localhost:19530", "QDRANT_URL": "http://localhost:6333"}
TARGETS = {
    "pgvector": 'connection: {dsn: "${env:DSN}"}',
    "milvus": 'connection: {uri: "${env:MILVUS_URI}"}',
    "lancedb": "connection: {path: lance}",
    "qdrant": 'connection: {url: "${env:QDRANT_URL}"}',
    "memory": "connection: {name: dst}",
}


def spec(target: str = "pgvector", create: str = "") -> Spec:
    text = textwrap.dedent(f"""\
        version: 1
        name: idx
        source: {{provider: memory, connection: {{name: {SOURCE}}}, collection: docs}}
        target: {{provider: {target}, {TARGETS[target]}, collection: docs_v2{', create: ' + create if create else ''}}}
        """)
    return load_spec_text(text, file="spec.yaml", env=ENV)


def source(index: dict[str, Any] | None, provider: str = "pgvector") -> Inventory:
    return Inventory(provider=provider, collection="docs", exists=True, dimension=8, metric="cosine", count=10,
                     count_exact=True, id_type="int", index=index)


ABSENT = Inventory(provider="pgvector", collection="docs_v2", exists=False)


def decide(sp: Spec, src: Inventory, target: Inventory = ABSENT) -> indexes.Decision:
    return indexes.resolve(sp, src, target, provider_class(sp.target.provider))


def codes(d: indexes.Decision) -> list[str]:
    return [w.code for w in d.findings]


def test_no_create_block_carries_the_source_hnsw_with_its_query_time_setting() -> None:
    d = decide(spec(), source({**HNSW, "name": "docs_embedding_hnsw_idx", "opclass": "vector_cosine_ops"}))
    assert d.index == IndexSpec(type="hnsw", m=16, ef_construction=64, ef_search=40)
    assert codes(d) == [indexes.READER_SETTINGS]
    assert "SET hnsw.ef_search = 40" in d.findings[0].message and d.findings[0].severity == "info"


def test_create_block_without_index_carries_ivfflat_lists_and_probes() -> None:
    d = decide(spec(create="{metric: cosine}"), source(IVF))
    assert d.index == IndexSpec(type="ivfflat", lists=50, probes=7)
    assert "SET ivfflat.probes = 7" in d.findings[0].message


def test_source_without_index_and_no_index_asked_is_a_warning_naming_what_to_set() -> None:
    for d in (decide(spec(), source(None)), decide(spec(create="{metric: cosine}"), source(None)),
              decide(spec(), source({"type": "flat", "name": "vector"}, "milvus"))):
        assert d.index is None and codes(d) == [indexes.NO_INDEX]
        w = d.findings[0]
        assert w.severity == "warning" and "will have no vector index" in w.message
        assert "target.create.index" in w.hint


def test_explicit_type_none_is_no_index_and_says_what_the_source_had() -> None:
    d = decide(spec(create="{index: {type: none}}"), source(HNSW))
    assert d.index is None and codes(d) == [indexes.NO_INDEX]
    assert "hnsw (m 16, ef_construction 64, ef_search 40)" in d.findings[0].message


def test_the_spec_wins_over_the_source() -> None:
    d = decide(spec(create="{index: {type: ivfflat, lists: 10, probes: 3}}"), source(HNSW))
    assert d.index == IndexSpec(type="ivfflat", lists=10, probes=3)


def test_pinecone_managed_source_gets_the_target_store_default_and_says_so() -> None:
    d = decide(spec("milvus"), source({"type": "managed"}, "pinecone"))
    assert d.index == IndexSpec(type="hnsw")
    assert codes(d) == [indexes.STORE_DEFAULT] and "milvus's default" in d.findings[0].message


def test_a_type_the_target_cannot_build_gets_the_nearest_and_the_plan_says_so() -> None:
    d = decide(spec("lancedb"), source({"type": "ivf_pq", "lists": 64}, "lancedb"))
    assert d.index == IndexSpec(type="ivfflat", lists=64)
    assert codes(d) == [indexes.NEAREST]
    d = decide(spec("pgvector"), source({"type": "diskann"}, "milvus"))
    assert d.index == IndexSpec(type="hnsw") and codes(d) == [indexes.NEAREST]


def test_a_store_with_its_own_index_says_when_the_source_parameters_are_not_kept() -> None:
    d = decide(spec("qdrant"), source(HNSW))
    assert d.index is None and codes(d) == [indexes.NEAREST]
    assert "indexes every collection itself" in d.findings[0].message
    assert decide(spec("qdrant"), source(None)).findings == ()


def test_a_store_that_cannot_index_warns_only_when_an_index_is_lost() -> None:
    assert decide(spec("memory"), source(None)) == indexes.Decision(None)
    d = decide(spec("memory"), source(HNSW))
    assert d.index is None and codes(d) == [indexes.NO_INDEX] and "memory builds none" in d.findings[0].message


def test_an_existing_target_vecmig_did_not_create_keeps_its_index() -> None:
    existing = Inventory(provider="pgvector", collection="docs_v2", exists=True, index={"type": "ivfflat"})
    assert decide(spec(), source(HNSW), existing) == indexes.Decision(None)
    bare = replace(existing, index=None)
    assert codes(decide(spec(), source(HNSW), bare)) == [indexes.NO_INDEX]


# -- the plan --------------------------------------------------------------------------------

def plan(h: Harness, sp: Spec, index: dict[str, Any] | None) -> Plan:
    """The plan for a pgvector/lancedb target that does not exist yet, the memory source reporting ``index``."""
    h.seed(20)
    src = provider_class("memory")(sp.source)
    src.connect()
    inv = src.inventory()
    shards = tuple(src.shards(inv, sp.strategy.shard_size))
    target = Inventory(provider=sp.target.provider, collection="docs_v2", exists=False)
    return make_plan(sp, None, Refreshed(source=replace(inv, index=index), target=target, shards=shards))


@pytest.mark.parametrize("index, want", [(HNSW, IndexSpec("hnsw", 16, 64, ef_search=40)),
                                         (IVF, IndexSpec("ivfflat", lists=50, probes=7))])
def test_plan_freezes_the_carried_index_into_the_build_index_action(h: Harness, index: dict[str, Any],
                                                                    want: IndexSpec) -> None:
    p = plan(h, spec(), index)
    build = next(a for a in p.actions if a.kind == "build_index")
    assert build.params["index"] == asdict(want) and "carried over from the source" in build.reason
    assert [w.code for w in p.warnings if w.code.startswith("VM14")] == [indexes.READER_SETTINGS]


def test_plan_without_source_index_builds_none_and_warns(h: Harness) -> None:
    p = plan(h, spec(create="{metric: cosine}"), None)
    assert "build_index" not in [a.kind for a in p.actions]
    assert indexes.NO_INDEX in [w.code for w in p.warnings]


def test_spec_query_time_settings_are_checked_against_the_type() -> None:
    from vecmig.errors import SpecError

    with pytest.raises(SpecError, match="ef_search is ignored"):
        spec(create="{index: {type: ivfflat, ef_search: 40}}")
    with pytest.raises(SpecError, match="probes is ignored"):
        spec(create="{index: {type: hnsw, probes: 4}}")
    assert spec(create="{index: {ef_search: 80}}").target.create.index == IndexSpec(ef_search=80)  # type: ignore[union-attr]


def test_a_file_source_has_no_index_so_the_target_gets_none_and_the_plan_warns(tmp_path: Path) -> None:
    rows = [{"id": i, "vector": [float(i), 1.0, 0.5, -1.0]} for i in range(1, 6)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sp = load_spec_text(textwrap.dedent("""\
        version: 1
        name: file-idx
        source: {provider: jsonl, connection: {path: in.jsonl}}
        target: {provider: lancedb, connection: {path: lance}, collection: docs, create: {metric: cosine}}
        """), file="spec.yaml", base_dir=tmp_path)
    p = make_plan(sp, None, refresh(sp))
    assert "build_index" not in [a.kind for a in p.actions]
    warning = next(w for w in p.warnings if w.code == indexes.NO_INDEX)
    assert "the source has no vector index" in warning.message and "target.create.index" in warning.hint
