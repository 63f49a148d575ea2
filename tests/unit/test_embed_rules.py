"""``transform.embed`` in the spec: every way of writing a re-embed that would fail per record, be
ignored, or check the wrong thing is refused at load in one line naming file:line:col, the key
and how to fix it; a good one loads. No store is contacted and no model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecmig.errors import SpecError
from vecmig.spec import Spec
from vecmig.spec_loader import load_spec_text

ENV = {"OPENAI_API_KEY": "sk-test-secret-key-1234"}
BASE = """\
version: 1
name: reembed
source: {provider: jsonl, connection: {path: src.jsonl}}
target: {provider: jsonl, connection: {path: out.jsonl}}
"""


def embed(body: str, extra: str = "") -> str:
    return BASE + "transform:\n  embed:\n" + "".join(f"    {line}\n" for line in body.splitlines()) + extra


def load(text: str) -> Spec:
    return load_spec_text(text, file="s.yaml", base_dir=Path("/tmp/specs"), env=ENV)


def fails(text: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        load(text)
    line = err.value.one_line()
    assert "\n" not in line and "s.yaml:" in line
    assert ENV["OPENAI_API_KEY"] not in line
    return err.value


def test_a_good_re_embed_loads_with_its_settings() -> None:
    spec = load(embed("model: all-MiniLM-L6-v2\ntext: \"{title}: {text}\"\nkeep_old: old_vec\nbatch_size: 16\n"
                      "cache: false"))
    e = spec.transform.embed
    assert e is not None and e.text == "{title}: {text}" and e.keep_old == "old_vec" and e.batch_size == 16
    assert e.cache is None


@pytest.mark.parametrize(("text", "what"), [
    ("{title.upper}", "plain field names only"),
    ("{tags[0]}", "plain field names only"),
    ("{0}", "plain field names only"),
    ("{}", "empty placeholder"),
    ("{title!r}", "conversion or format spec"),
    ("{score:.2f}", "conversion or format spec"),
    ("{title", "not a valid template"),
    ("title}", "not a valid template"),
])
def test_a_template_reads_plain_names_only(text: str, what: str) -> None:
    e = fails(embed(f"model: all-MiniLM-L6-v2\ntext: \"{text}\""))
    assert what in e.message
    assert e.where is not None and e.where.startswith("s.yaml:8:") and e.where.endswith(": /transform/embed/text")


def test_escaped_braces_and_plain_names_load() -> None:
    assert load(embed('model: m\ntext: "{{literal}} {title}"')).transform.embed is not None
    assert load(embed("model: m\ntext: body")).transform.embed is not None


@pytest.mark.parametrize(("keep", "fields", "mapping", "what"), [
    ("id", "", "", "target's id field"),
    ("embedding", "", "", "target's vector field"),
    ("vec", "  fields: {vector: vec}\n", "", "target's vector field"),
    ("text", "", "", "target's text field"),
    ("body", "  fields: {text: body}\n", "", "target's text field"),
    ("meta", "  fields: {metadata: meta}\n", "", "metadata column"),
    ("lang", "  fields: {metadata: [lang, year]}\n", "", "one of target.fields.metadata"),
    ("old", "", "mapping: {metadata: {rename: {title: old}}}\n", "where mapping.metadata.rename puts 'title'"),
])
def test_keep_old_cannot_land_on_a_field_the_target_already_fills(keep: str, fields: str, mapping: str,
                                                                  what: str) -> None:
    text = BASE.replace("target: {provider: jsonl, connection: {path: out.jsonl}}\n",
                        "target:\n  provider: jsonl\n  connection: {path: out.jsonl}\n" + fields)
    text += mapping + f"transform:\n  embed: {{model: m, text: title, keep_old: {keep}}}\n"
    e = fails(text)
    assert what in e.message and e.where is not None and "/transform/embed/keep_old" in e.where


@pytest.mark.parametrize(("strategy", "what"), [
    ("cdc", "the catch-up would write the source's old vectors"),
    ("parallel-run", "same query vector to both sides"),
])
def test_strategies_that_would_send_old_vectors_are_refused(strategy: str, what: str) -> None:
    e = fails(embed("model: m\ntext: title", f"strategy: {{type: {strategy}}}\n"))
    assert "not supported yet" in e.message and what in e.message
    assert e.where is not None and "/strategy/type" in e.where


def test_query_parity_is_refused_in_favour_of_retrieval() -> None:
    e = fails(embed("model: m\ntext: title", "validate: {queries: {sample: 20}}\n"))
    assert "validate.retrieval" in (e.hint or "") and e.where is not None and "/validate/queries" in e.where


@pytest.mark.parametrize(("api", "pointer"), [
    ("{base_url: 'https://api.example.com/v1', api_key: sk-live-written-here}", "/transform/embed/api/api_key"),
    ("{base_url: 'https://user:pw123456@api.example.com/v1'}", "/transform/embed/api/base_url"),
])
def test_credentials_written_in_the_spec_are_refused(api: str, pointer: str) -> None:
    e = fails(embed(f"model: text-embedding-3-small\ntext: title\napi: {api}"))
    assert "credential written in the spec" in e.message and e.where is not None and pointer in e.where
    assert "sk-live-written-here" not in e.one_line() and "pw123456" not in e.one_line()


def test_a_cache_url_with_a_password_is_refused_and_an_env_key_is_fine() -> None:
    e = fails(embed("model: m\ntext: title\ncache: 'postgresql://u:hunter22@db/cache'"))
    assert e.where is not None and "/transform/embed/cache" in e.where and "hunter22" not in e.one_line()
    spec = load(embed("model: text-embedding-3-small\ntext: title\n"
                      "api: {base_url: 'https://api.example.com/v1', api_key: '${env:OPENAI_API_KEY}'}"))
    assert spec.transform.embed is not None and spec.transform.embed.api is not None
    assert spec.transform.embed.api.api_key == ENV["OPENAI_API_KEY"]
    assert ENV["OPENAI_API_KEY"] not in str(spec.public)


def test_embedding_prices_without_a_re_embed_are_refused() -> None:
    e = fails(BASE + "cost: {embedding: {usd_per_million_tokens: 0.02}}\n")
    assert "re-embeds nothing" in e.message
