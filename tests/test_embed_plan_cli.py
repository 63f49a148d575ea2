"""A re-embed's bad input through the real CLI: one line (what, where, how to fix), exit 1, no
traceback, no state, no cache file. A bad model name is a plan-time error (loading the model is a
read the spec loader does not make); a bad template or a literal key fails at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import vecmig

SPEC = """\
version: 1
name: reembed-cli
state: {{path: state.db}}
source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
transform:
  embed: {embed}
"""
KEY = "sk-cli-literal-0123456789"
CASES = [
    ("template", "{model: all-MiniLM-L6-v2, text: '{title!r}'}", ["validate", "plan"], ":7:",
     "/transform/embed/text", "conversion or format spec"),
    ("literal-key", f"{{model: m, text: title, api: {{base_url: 'http://127.0.0.1:9/v1', api_key: {KEY}}}}}",
     ["validate", "plan"], ":7:", "/transform/embed/api/api_key", "${env:NAME}"),
    ("model", "{model: no-such-model-v9, text: text}", ["plan", "apply"], ":7:", "/transform/embed/model",
     "neither a packaged model nor a local directory"),
]


@pytest.mark.parametrize(("name", "embed", "commands", "where", "pointer", "what"), CASES, ids=[c[0] for c in CASES])
def test_bad_re_embed_is_one_line_exit_1_nothing_written(tmp_path: Path, name: str, embed: str, commands: list[str],
                                                         where: str, pointer: str, what: str) -> None:
    (tmp_path / "src.jsonl").write_text("".join(
        json.dumps({"id": i, "vector": [0.5, 0.25], "metadata": {"title": f"t{i}"}, "text": f"text {i}"}) + "\n"
        for i in range(3)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(embed=embed))
    for command in commands:
        r = vecmig(command, str(spec), *(["--auto-approve"] if command == "apply" else []))
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        line = lines[0]
        assert line.startswith("Error: ") and f"spec.yaml{where}" in line and pointer in line and what in line
        assert "Traceback" not in r.stderr and KEY not in r.stderr + r.stdout
        assert not (tmp_path / ".vecmig").exists() and not (tmp_path / "state.db").exists()
        assert not (tmp_path / "out.jsonl").exists()
