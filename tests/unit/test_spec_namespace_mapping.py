"""``mapping.namespace`` in the spec: good mappings become the right dataclass; every way of
writing one that would be ignored or do something else than written is one line naming
file:line:col, the key, and how to fix it. No store is contacted (kits only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecmig.errors import SpecError
from vecmig.spec import NamespaceMapping, Spec
from vecmig.spec_loader import load_spec_text

ENV = {"PINECONE_API_KEY": "pcsk_spec-test-key"}


def spec_text(source_ns: str | None, target: str, mapping: str) -> str:
    ns = f'  namespace: "{source_ns}"\n' if source_ns is not None else ""
    return ("version: 1\n"
            "name: ns\n"
            "source:\n"
            "  provider: pinecone\n"
            '  connection: {api_key: "${env:PINECONE_API_KEY}"}\n'
            "  collection: docs\n"
            f"{ns}"
            f"target: {target}\n"
            "mapping:\n"
            f"  namespace: {mapping}\n")


JSONL = "{provider: jsonl, connection: {path: out.jsonl}}"
PC_ALL = '{provider: pinecone, connection: {api_key: "${env:PINECONE_API_KEY}"}, collection: dst, namespace: "*"}'


def load(text: str) -> Spec:
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp/specs"), env=ENV)


def fails(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text)
    return info.value


def test_to_field_with_composite_ids() -> None:
    spec = load(spec_text("*", JSONL, "{to: field, name: tenant, composite_ids: true}"))
    assert spec.mapping.namespace == NamespaceMapping(to="field", name="tenant", composite_ids=True)
    assert not spec.mapping.is_identity


def test_from_field_into_every_namespace() -> None:
    text = ("version: 1\nname: ns\nsource: {provider: jsonl, connection: {path: in.jsonl}}\n"
            f"target: {PC_ALL}\nmapping:\n  namespace: {{from: field, name: tenant}}\n")
    spec = load(text)
    assert spec.mapping.namespace == NamespaceMapping(from_field=True, name="tenant")
    assert not spec.mapping.is_identity


def test_to_namespace_is_the_identity_unless_renamed() -> None:
    assert load(spec_text("*", PC_ALL, "{to: namespace}")).mapping.is_identity
    renamed = load(spec_text("*", PC_ALL, "{to: namespace, names: {a: x, b: y}}"))
    assert renamed.mapping.namespace is not None
    assert renamed.mapping.namespace.names == (("a", "x"), ("b", "y"))
    assert not renamed.mapping.is_identity


# (mapping, source namespace, target, the message's words, the hint's words)
BAD = [
    ("{to: collection}", "*", JSONL, "to: collection is not supported yet", "own target collection"),
    ("{to: field, name: t, template: '{collection}_{namespace}'}", "*", JSONL, "template is ignored",
     "remove template"),
    ("{to: field, from: field, name: t}", "*", JSONL, "takes `to` or `from`, not both", "`from: field`"),
    ("{to: field}", "*", JSONL, "needs `name`", "name: tenant"),
    ("{to: field, name: t}", None, JSONL, 'reads every namespace (source.namespace: "*")',
     'source.namespace: "*"'),
    ("{to: field, name: t}", "*", PC_ALL, "target.namespace \"*\" writes each record into its namespace",
     "to: namespace"),
    ("{to: field, name: t, names: {a: b}}", "*", JSONL, "names is ignored with a field", "remove names"),
    ("{to: namespace, names: {a: x, b: x}}", "*", PC_ALL, "maps both 'a' and 'b' to 'x'", "own new name"),
    ("{to: namespace}", "*", JSONL, "needs source.namespace: \"*\" and target.namespace: \"*\"",
     "map the namespace to a field"),
    ("{to: namespace, composite_ids: true}", "*", PC_ALL, "composite_ids is ignored with `to: namespace`",
     "remove composite_ids"),
    ("{from: field, name: t}", "*", JSONL, "from: field needs a target that writes each record",
     'target.namespace: "*"'),
    ("{to: feild, name: t}", "*", JSONL, "feild", ""),
    ("{to: field, nmae: t}", "*", JSONL, "nmae", ""),
]


@pytest.mark.parametrize(("mapping", "source_ns", "target", "message", "hint"), BAD)
def test_bad_namespace_mappings_say_what_where_and_how(mapping: str, source_ns: str | None, target: str,
                                                       message: str, hint: str) -> None:
    text = spec_text(source_ns, target, mapping)
    err = fails(text)
    line = err.one_line()
    assert "\n" not in line
    assert message in line, line
    at = text.splitlines().index(f"  namespace: {mapping}") + 1  # the line of mapping.namespace
    assert f"s.yaml:{at}:" in line, line
    assert "/mapping/namespace" in line, line
    assert hint in line, line


def test_a_field_the_metadata_mapping_renames_into_is_refused() -> None:
    text = spec_text("*", JSONL, "{to: field, name: tenant}") + "  metadata: {rename: {owner: tenant}}\n"
    line = fails(text).one_line()
    assert "name 'tenant' is also a field mapping.metadata renames or drops" in line
    assert "s.yaml:10:" in line


def test_from_field_from_a_source_that_reads_every_namespace_is_refused() -> None:
    text = spec_text("*", PC_ALL, "{from: field, name: tenant}")
    assert "already gives each record its namespace" in fails(text).one_line()


def test_cdc_with_a_namespace_mapping_is_not_supported_yet() -> None:
    text = spec_text("*", JSONL, "{to: field, name: tenant}") + "strategy: {type: cdc}\n"
    assert "mapping.namespace with strategy cdc is not supported yet" in fails(text).one_line()


def test_a_target_writing_every_namespace_needs_records_that_carry_one() -> None:
    text = ("version: 1\nname: ns\nsource: {provider: jsonl, connection: {path: in.jsonl}}\n"
            f"target: {PC_ALL}\n")
    line = fails(text).one_line()
    assert line.startswith("s.yaml:4:"), line
    assert "/target/namespace" in line and "the source gives its records no namespace" in line, line
    assert "from: field, name: tenant" in line, line
