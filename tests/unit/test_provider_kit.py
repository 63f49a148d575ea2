"""The provider kit: what the engine learns about stores comes from their kits, not their names."""

from __future__ import annotations

from vecmig.operations.providers import list_providers
from vecmig.pointer import key_variables
from vecmig.policy import code_prefixes
from vecmig.providers import kits, provider_class, rules_of
from vecmig.specload.provider_schema import _merge, spec_schema


def test_every_built_in_store_has_a_kit_and_its_class_loads() -> None:
    names = set(kits())
    assert {"pgvector", "jsonl", "parquet", "pinecone", "memory"} <= names
    for name in names:
        assert provider_class(name).name == name


def test_the_spec_schema_carries_each_stores_keys_marked_as_its_own() -> None:
    conn = spec_schema()["$defs"]["connection"]["properties"]
    assert conn["dsn"]["x-providers"] == ["pgvector"]
    # Every store reading a local path marks the key (others may join: a subset, not the list).
    assert {"csv", "jsonl", "lancedb", "parquet", "vdf"} <= set(conn["path"]["x-providers"])
    assert "pinecone" in spec_schema()["$defs"]["cost"]["properties"]
    assert "region" in spec_schema()["$defs"]["create"]["properties"]


def test_a_key_two_stores_read_in_different_forms_accepts_either() -> None:
    props: dict = {}
    _merge(props, {"host": {"type": "string"}}, "a")
    _merge(props, {"host": {"type": "string"}, "port": {"type": "integer"}}, "b")
    _merge(props, {"host": {"$ref": "#/$defs/secret_string"}}, "c")
    assert props["host"]["x-providers"] == ["a", "b", "c"]
    assert props["host"]["anyOf"] == [{"type": "string"}, {"$ref": "#/$defs/secret_string"}]
    assert props["port"] == {"type": "integer", "x-providers": ["b"]}


def test_lint_prefixes_and_secret_variables_come_from_the_kits() -> None:
    assert "PC" in code_prefixes() and "VM" in code_prefixes()
    assert "PINECONE_API_KEY" in key_variables()
    rules = rules_of("pinecone")
    assert rules is not None and "api_key" in rules.secret_keys


def test_vecmig_providers_lists_every_store_installed_here() -> None:
    listed = {s.name: s for s in list_providers()}
    assert set(listed) == set(kits())
    assert all(s.installed for s in listed.values())
    assert "{path: data.jsonl}" in listed["jsonl"].connection
