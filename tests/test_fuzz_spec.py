"""Fuzz tier: the spec loader in-process, on random YAML trees, junk values and junk text.

Every outcome is a Spec or a VecmigError whose one line says where (the file, and a line:col
or a JSON pointer); never another exception. See ``tests/fuzz_support.py`` for the profiles.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzz_support as fz
from vecmig.errors import VecmigError
from vecmig.spec_loader import load_spec_text

pytestmark = pytest.mark.fuzz

BASE: dict[str, Any] = {
    "version": 1,
    "name": "fuzz",
    "state": {"path": ".vecmig/fuzz.db"},
    "source": {"provider": "jsonl", "connection": {"path": "in.jsonl"},
               "fields": {"id": "id", "vector": "vector", "text": "text", "metadata": "metadata"}},
    "target": {"provider": "pgvector", "connection": {"dsn": "${env:TARGET_DSN}"}, "collection": "docs_v2",
               "alias": "docs", "create": {"dimension": 8, "metric": "cosine", "index": {"type": "hnsw", "m": 16}},
               "pointer": {"file": "live.json"}},
    "mapping": {"metadata": {"rename": {"a": "b"}, "drop": ["c"]}},
    "strategy": {"type": "blue-green", "batch_size": 10, "concurrency": 2, "shard_size": 1000},
    "validate": {"completeness": {"checksums": True}},
    "policy": {"error": ["VM102"], "warn": ["VM101"], "ignore": ["VM103"]},
    "cost": {"transition_days": 30, "pinecone": {"write_units_per_million": 4.0}},
}
ENV = {"TARGET_DSN": "postgresql://u:p@h/db", "X": "1"}

junk = st.recursive(
    st.one_of(st.none(), st.booleans(), fz.ints(None), fz.floats(), fz.text(surrogates=True),
              st.sampled_from(["${env:X}", "${env:UNSET_VAR}", "${env:", "${", "$", "~", "*", "&a", "!!python/none",
                               "../../etc/passwd", "/dev/null", "-1", "1e309", ".nan", "2001-01-01", "0x10",
                               "pgvector", "jsonl", "parquet", "pinecone", "big-bang", "cdc", "VM999"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fz.text(6, surrogates=True), inner,
                                                                          max_size=3)),
    max_leaves=8,
)


def pointers(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += pointers(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += pointers(v, (*prefix, i))
    return out


def check(text: str, tmp_path: Path) -> None:
    try:
        load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env=ENV)
    except VecmigError as e:
        line = e.one_line()
        assert "\n" not in line.strip() or line.count("\n") < 3, line
        assert e.where and "spec.yaml" in e.where, f"no location: {line}"


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    tree = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(pointers(tree)))
        value = draw(junk)
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if not path:
            tree = value if action == "replace" else tree
            continue
        parent = tree
        for p in path[:-1]:
            parent = parent[p]
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(fz.text(8, surrogates=True))] = value
        else:
            parent[path[-1]] = value
        if not isinstance(tree, dict):
            break
    return tree


@settings(max_examples=fz.examples(400))
@given(tree=mutated(), style=st.sampled_from(["block", "flow", "json"]))
def test_mutated_specs_fail_with_a_location(tmp_path: Path, tree: Any, style: str) -> None:
    if style == "json":
        text = json.dumps(tree, ensure_ascii=False)
    else:
        text = yaml.safe_dump(tree, default_flow_style=style == "flow", allow_unicode=True)
    check(text, tmp_path)


@settings(max_examples=fz.examples(300))
@given(text=st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.text(alphabet=st.sampled_from([*list("{}[]:,-?!&*|>'\"#%@` \n\t\\abc01.~="), "\ufeff", "\x00", "\x85"]),
            max_size=80),
))
def test_junk_text_fails_with_a_location(tmp_path: Path, text: str) -> None:
    check(text, tmp_path)


@settings(max_examples=fz.examples(200))
@given(data=st.data())
def test_junk_lines_in_a_good_spec(tmp_path: Path, data: st.DataObject) -> None:
    lines = yaml.safe_dump(BASE, default_flow_style=False).splitlines()
    i = data.draw(st.integers(0, len(lines)))
    junk_line = data.draw(st.one_of(fz.text(30, surrogates=False), st.sampled_from(
        ["<<: *x", "a: &x [1", "  - ]", "? [a]\n: 1", "%YAML 1.1", "--- !!binary AAAA", "key: !!int x",
         "k: *undefined", "&a a: *a", "x: !!python/object:os.system {}", "\t- tab", "a: 'unterminated"])))
    check("\n".join([*lines[:i], junk_line, *lines[i:]]), tmp_path)
