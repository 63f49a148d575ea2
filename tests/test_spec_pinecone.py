"""Spec keys for Pinecone: create options, connection options, per-provider dimension limits,
the pointer that blue-green repoints, and cost overrides. Good specs become the right
dataclasses; bad ones say what, where and how, and never show the API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecmig.errors import SpecError
from vecmig.providers.pinecone import PineconeProvider
from vecmig.spec import CostSpec, CreateSpec, PointerSpec, Spec
from vecmig.spec_loader import load_spec_text

KEY = "pcsk_S3cr3t-key-for-spec-tests"
ENV = {"PINECONE_API_KEY": KEY, "SOURCE_DSN": "postgresql://app:pw@db/prod"}

# Appended lines start at line 10.
PG_TO_PC = """\
version: 1
name: demo
source:
  provider: pgvector
  connection: {dsn: "${env:SOURCE_DSN}"}
  collection: docs
target:
  provider: pinecone
  connection: {api_key: "${env:PINECONE_API_KEY}"}
"""
TARGET = PG_TO_PC + "  collection: docs-v2\n"
PC_TO_JSONL = """\
version: 1
name: demo
source:
  provider: pinecone
  connection: {api_key: "${env:PINECONE_API_KEY}"}
  collection: docs
target:
  provider: jsonl
  connection: {path: out.jsonl}
"""


def load(text: str) -> Spec:
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp/specs"), env=ENV)


def fails(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text)
    err = info.value
    for shown in (err.one_line(), str(err), repr(err.args), err.hint or ""):
        assert KEY not in shown
    return err


def test_full_pinecone_target_loads_into_the_dataclasses() -> None:
    spec = load(PG_TO_PC + """\
  collection: docs-v2
  namespace: prod
  pointer: {file: live.json, command: ./repoint.sh, timeout: 30}
  create:
    dimension: 20000
    metric: dotproduct
    cloud: gcp
    region: europe-west4
    deletion_protection: enabled
    tags: {team: search, env: prod}
    sparse: true
strategy: {type: blue-green}
cost:
  transition_days: 14
  pinecone: {plan: enterprise, write_units_per_million: 5.5, as_of: "2026-01"}
""")
    t = spec.target
    assert t.connection == {"api_key": KEY}, "providers get the resolved key"
    assert "${env:PINECONE_API_KEY}" in str(spec.public), "plans keep the placeholder"
    assert t.create == CreateSpec(dimension=20000, metric="dotproduct", cloud="gcp", region="europe-west4",
                                  deletion_protection="enabled", tags=(("env", "prod"), ("team", "search")),
                                  sparse=True)
    assert t.live_pointer == PointerSpec(file="live.json", command="./repoint.sh", timeout=30.0)
    assert t.pointer == "/target", "the JSON pointer of the store is a different thing"
    assert spec.cost == CostSpec(prices=(("pinecone", (("as_of", "2026-01"), ("plan", "enterprise"),
                                                       ("write_units_per_million", 5.5))),),
                                 transition_days=14.0)
    assert spec.cost.for_provider("pinecone")["plan"] == "enterprise"
    assert spec.cost.for_provider("pgvector") == {}


def test_connection_options_reach_the_provider() -> None:
    spec = load(TARGET.replace(
        '{api_key: "${env:PINECONE_API_KEY}"}',
        '{api_key: "${env:PINECONE_API_KEY}", host: "http://127.0.0.1:5080", concurrency: 16, timeout: 5, '
        "ready_timeout: 60, nested_metadata: json}"))
    p = PineconeProvider(spec.target)
    assert (p._concurrency, p._timeout, p._ready_timeout, p._nested, p._host) == (
        16, 5.0, 60.0, "json", "http://127.0.0.1:5080")
    assert KEY not in repr(p) and KEY not in repr(spec.target)


def test_defaults_without_the_new_keys() -> None:
    spec = load(TARGET)
    assert spec.target.create is None and spec.target.live_pointer is None
    assert spec.cost == CostSpec()


def test_cost_overrides_feed_the_price_table() -> None:
    spec = load(TARGET + "cost: {pinecone: {write_units_per_million: 8.0, storage_gb_month: 1.0}}\n")
    p = PineconeProvider(spec.target)
    prices = spec.cost.for_provider("pinecone")
    listed = p.cost("write", 1_000_000, 4_000_000_000, {})
    doubled = p.cost("write", 1_000_000, 4_000_000_000, prices)
    assert doubled["pinecone_write_units"] == pytest.approx(2 * listed["pinecone_write_units"], rel=1e-3)
    assert p.cost("storage", 1_000_000, 1_000_000_000, prices) == {"pinecone_storage": 1.0}
    assert p.cost("fetch", 1000, 4_000_000, prices)["pinecone_read_units"] > 0
    assert p.cost("unknown", 10, 10, prices) == {}


def case(cid: str, text: str, message: str, where: str, hint: str) -> object:
    return pytest.param(text, message, where, hint, id=cid)


BAD = [
    case("pinecone-needs-api-key", TARGET.replace('{api_key: "${env:PINECONE_API_KEY}"}', '{host: "http://h"}'),
         "pinecone connection in /target needs 'api_key'", "s.yaml:9:3: /target/connection",
         'connection: {api_key: "${env:PINECONE_API_KEY}"}'),
    case("pinecone-needs-index", PG_TO_PC, "missing required key 'collection' in /target", "s.yaml:7:1: /target",
         "the index name: add `collection: <index>`"),
    case("pinecone-index-name", TARGET.replace("docs-v2", "Docs_V2"), "'Docs_V2' is not a valid Pinecone index name",
         "s.yaml:10:3: /target/collection", "lowercase letters, digits and '-'"),
    case("pinecone-option-on-pgvector",
         PC_TO_JSONL.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                             'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}", concurrency: 4}\n'
                             "  collection: docs_v2"),
         "'concurrency' is not a pgvector connection key", "s.yaml:9:42: /target/connection/concurrency",
         'connection: {dsn: "${env:PG_DSN}"}'),
    case("jsonl-hint-lists-no-pinecone-options", PC_TO_JSONL.replace("{path: out.jsonl}", "{pth: out.jsonl}"),
         "unknown key 'pth' in /target/connection (did you mean 'path'?)", "s.yaml:9:16: /target/connection/pth",
         "allowed keys in /target/connection: metric, path"),
    case("pinecone-hint-lists-its-options", TARGET.replace("{api_key:", "{concurency: 2, api_key:"),
         "unknown key 'concurency' in /target/connection (did you mean 'concurrency'?)",
         "s.yaml:9:16: /target/connection/concurency",
         "allowed keys in /target/connection: api_key, concurrency, host, nested_metadata, ready_timeout, timeout"),
    case("concurrency-range", TARGET.replace("{api_key:", "{concurrency: 0, api_key:"),
         "/target/connection/concurrency must be at least 1", "s.yaml:9:16: /target/connection/concurrency",
         "from 1 to 64"),
    case("nested-metadata-enum", TARGET.replace("{api_key:", "{nested_metadata: flatten, api_key:"),
         "/target/connection/nested_metadata must be one of error, json",
         "s.yaml:9:16: /target/connection/nested_metadata",
         "nested_metadata"),
    case("pinecone-dimension-limit", TARGET + "  create: {dimension: 20001}\n",
         "/target/create/dimension must be at most 20000, got integer 20001", "s.yaml:11:12: /target/create/dimension",
         "from 1 to 20000"),
    case("pgvector-dimension-limit",
         PC_TO_JSONL.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                             'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs_v2\n'
                             "  create: {dimension: 16001}"),
         "/target/create/dimension must be at most 16000, got integer 16001", "s.yaml:11:12: /target/create/dimension",
         "from 1 to 16000 (pgvector's limit)"),
    case("managed-key-on-pgvector",
         PC_TO_JSONL.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                             'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs_v2\n'
                             "  create: {region: us-east-1}"),
         "/target/create/region applies to pinecone, not pgvector",
         "s.yaml:11:12: /target/create/region", "remove region"),
    case("sparse-needs-dotproduct", TARGET + "  create: {metric: cosine, sparse: true}\n",
         "/target/create/sparse needs metric dotproduct, not cosine", "s.yaml:11:28: /target/create/sparse",
         "metric: dotproduct"),
    case("cloud-enum", TARGET + "  create: {cloud: aws-east}\n",
         "/target/create/cloud must be one of aws, gcp, azure", "s.yaml:11:12: /target/create/cloud", "cloud"),
    case("region-pattern", TARGET + "  create: {region: US East}\n",
         "'US East' is not a cloud region name", "s.yaml:11:12: /target/create/region", "us-east-1"),
    case("tags-values-are-strings", TARGET + "  create: {tags: {team: [a]}}\n",
         "/target/create/tags/team must be a string", "s.yaml:11:19: /target/create/tags/team", "write text"),
    case("blue-green-pinecone-needs-pointer", TARGET + "strategy: {type: blue-green}\n",
         "blue-green on pinecone needs target.pointer", "s.yaml:11:12: /strategy/type",
         "pointer: {file: live-index.json}"),
    case("pinecone-has-no-alias", TARGET + "  alias: docs_live\n",
         "pinecone has no aliases, so target.alias cannot be switched", "s.yaml:11:3: /target/alias",
         "`pointer: {file: live-index.json}`"),
    case("alias-and-pointer",
         PC_TO_JSONL.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                             'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n  collection: docs_v2\n'
                             "  alias: docs_live\n  pointer: {file: live.json}"),
         "target takes either alias or pointer, not both", "s.yaml:12:3: /target/pointer", "stores with aliases"),
    case("empty-pointer", TARGET + "  pointer: {}\n",
         "target.pointer needs 'file', 'command' or both", "s.yaml:11:3: /target/pointer", "pointer: {file:"),
    case("pointer-unknown-key", TARGET + "  pointer: {path: live.json}\n",
         "unknown key 'path' in /target/pointer", "s.yaml:11:13: /target/pointer/path",
         "allowed keys in /target/pointer: command, file, timeout"),
    case("pointer-under-source",
         PC_TO_JSONL.replace("  collection: docs\n", "  collection: docs\n  pointer: {file: x}\n"),
         "unknown key 'pointer' in /source", "s.yaml:7:3: /source/pointer", "'pointer' belongs under target"),
    case("cost-unknown-price", TARGET + "cost: {pinecone: {write_unit_usd: 0.000004}}\n",
         "unknown key 'write_unit_usd' in /cost/pinecone",
         "s.yaml:11:19: /cost/pinecone/write_unit_usd",
         "allowed keys in /cost/pinecone: as_of, plan, read_units_per_million, storage_gb_month, "
         "write_units_per_million"),
    case("cost-unknown-provider", TARGET + "cost: {pinecon: {storage_gb_month: 1}}\n",
         "unknown key 'pinecon' in /cost (did you mean 'pinecone'?)", "s.yaml:11:8: /cost/pinecon",
         "allowed keys in /cost: embedding, pinecone, transition_days"),
    case("cost-negative", TARGET + "cost: {pinecone: {read_units_per_million: -1}}\n",
         "/cost/pinecone/read_units_per_million must be at least 0",
         "s.yaml:11:19: /cost/pinecone/read_units_per_million",
         "at least 0"),
    case("cost-plan-enum", TARGET + "cost: {pinecone: {plan: starter}}\n",
         "/cost/pinecone/plan must be one of standard, enterprise", "s.yaml:11:19: /cost/pinecone/plan", "plan"),
]


@pytest.mark.parametrize(("text", "message", "where", "hint"), BAD)
def test_malformed_pinecone_spec_says_what_where_and_how(text: str, message: str, where: str, hint: str) -> None:
    err = fails(text)
    assert message in err.message
    assert err.where == where
    assert err.hint is not None and hint in err.hint, err.hint


def test_blue_green_on_pinecone_with_a_pointer_is_valid() -> None:
    spec = load(TARGET + "  pointer: {command: ./repoint.sh}\nstrategy: {type: blue-green}\n")
    assert spec.strategy.type == "blue-green" and spec.target.live_pointer == PointerSpec(command="./repoint.sh")


def test_pointer_on_pgvector_without_alias_is_valid() -> None:
    spec = load(PC_TO_JSONL.replace("provider: jsonl\n  connection: {path: out.jsonl}",
                                    'provider: pgvector\n  connection: {dsn: "${env:SOURCE_DSN}"}\n'
                                    "  collection: docs_v2\n  pointer: {file: live.json}") +
                "strategy: {type: blue-green}\n")
    assert spec.target.alias is None and spec.target.live_pointer == PointerSpec(file="live.json")


def test_pinecone_source_dimension_is_not_limited_by_the_spec() -> None:
    # The source's dimension comes from the index; only target.create is checked here.
    assert load(PC_TO_JSONL).source.provider == "pinecone"


def test_the_loader_and_the_providers_agree_on_dimension_limits() -> None:
    from vecmig.providers import kits, provider_class

    for name, rules in kits().items():
        limit = provider_class(name).capabilities.max_dimension
        if limit is not None:
            assert limit == rules.max_dimension, name
