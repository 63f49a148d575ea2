"""JSONL lines that parsers and numpy accept but that would lose or change data silently.

Each is refused in one line naming file:line and what is wrong, exit 1, nothing written:
a key named twice in one object (any depth: parsers keep the last value silently), vector
elements that are not numbers (numpy turned "0.1" and true into floats), a top-level key
that also is a metadata key (one value was dropped), top-level keys that an explicit
``fields.metadata: <object key>`` would drop.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.cli import vecmig

OK = '{"id": 1, "vector": [0.1, 0.2], "metadata": {"a": 1}}'


def _apply(tmp: Path, line: str, target: str, fields: str = "") -> tuple[int, str]:
    (tmp / "src.jsonl").write_text(OK + "\n" + line + "\n")
    (tmp / "spec.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        name: hostile
        source: {{provider: jsonl, connection: {{path: src.jsonl}}{fields}}}
        target: {{provider: {target}, connection: {{path: out.{target}}}}}
        strategy: {{type: big-bang, batch_size: 100}}
        validate: {{completeness: {{checksums: true}}}}
        """))
    r = vecmig("apply", str(tmp / "spec.yaml"), "--auto-approve")
    return r.returncode, r.stderr


@pytest.mark.parametrize(("line", "fields", "said"), [
    ('{"id": 2, "id": 3, "vector": [0.1, 0.2]}', "", "key 'id' appears twice"),
    ('{"id" : 2, "vector": [0.1, 0.2], "id" : 3}', "", "key 'id' appears twice"),
    ('{"id": 2, "vector": [0.1, 0.2], "metadata": {"a": 1, "a": 2}}', "", "key 'a' appears twice"),
    ('{"id": 2, "vector": [0.1, 0.2], "metadata": {"n": {"b": "x", "b": "y"}}}', "", "key 'b' appears twice"),
    ('{"id": 2, "vector": [0.1, 0.2], "metadata": {"a": 1}, "metadata": {"b": 2}}', "", "key 'metadata' appears twice"),
    ('{"id": 2, "vector": ["0.1", "0.2"]}', "", "not str \"0.1\""),
    ('{"id": 2, "vector": [true, 0.2]}', "", "not bool true"),
    ('{"id": 2, "vector": [0.1, false], "metadata": {"t": true}}', "", "not bool false"),
    ('{"id": 2, "vector": [0.1, 0.2], "a": 5, "metadata": {"a": 1}}', "", "'a' both at the top level"),
    ('{"id": 2, "vector": [0.1, 0.2], "extra": 5, "metadata": {"a": 1}}', ", fields: {metadata: metadata}",
     "top-level key(s) 'extra'"),
])
@pytest.mark.parametrize("target", ["jsonl", "parquet"])
def test_refused_naming_the_line(tmp_path: Path, line: str, fields: str, said: str, target: str) -> None:
    code, err = _apply(tmp_path, line, target, fields)
    assert code == 1, err
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "src.jsonl:2" in errors[0] and said in errors[0], err
    assert not (tmp_path / f"out.{target}").exists()


@pytest.mark.parametrize("line", [
    '{"id": 2, "vector": [0.1, 0.2], "metadata": {"q": "say \\"a\\": true", "t": false}, "text": "true: \\"x\\""}',
    '{"id": 2, "vector": [0.1, 0.2], "metadata": {"k\\u0022": "\\u0022"}}',
    '{"id": 2, "vector": [0.1, 0.2], "metadata": {"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}}',
])
def test_lookalikes_still_round_trip(tmp_path: Path, line: str) -> None:
    code, err = _apply(tmp_path, line, "jsonl")
    assert code == 0, err
