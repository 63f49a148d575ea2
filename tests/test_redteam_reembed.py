"""Red-team of issue 14 through the real CLI: a cache that cannot hold a SQLite file (a
directory, a device, a FIFO, a URL scheme vecmig does not know) is one line at plan, exit 1, no
state touched; before, the plan passed and apply died mid-copy with "internal error:
OperationalError" after creating the target. The check runs before the model loads: no model
is loaded here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.pinecone_local import SpawnedPineconeLocal
from tests.support.cli import vecmig
from tests.support.pinecone import API_KEY

SPEC = """\
version: 1
name: redteam-cache
state: {{path: state.db}}
source: {{provider: jsonl, connection: {{path: src.jsonl}}}}
target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
transform:
  embed: {{model: all-MiniLM-L6-v2, text: text, cache: '{cache}'}}
"""


def _place(tmp_path: Path, kind: str) -> str:
    if kind == "directory":
        (tmp_path / "cachedir").mkdir()
        return str(tmp_path / "cachedir")
    if kind == "fifo":
        os.mkfifo(tmp_path / "cache.fifo")
        return str(tmp_path / "cache.fifo")
    if kind == "device":
        return "/dev/null"
    if kind == "under-a-file":
        (tmp_path / "plain").write_text("x")
        return str(tmp_path / "plain" / "c.db")
    return "mysql://h/cache"


KINDS = [("directory", "is a directory"), ("fifo", "not a regular file"), ("device", "not a regular file"),
         ("under-a-file", "cannot be read"), ("scheme", "not a cache vecmig knows")]


@pytest.mark.parametrize(("kind", "what"), KINDS, ids=[k for k, _ in KINDS])
def test_a_cache_that_cannot_be_a_file_is_refused_at_plan(tmp_path: Path, kind: str, what: str) -> None:
    (tmp_path / "src.jsonl").write_text("".join(
        json.dumps({"id": i, "vector": [0.5, 0.25], "text": f"text {i}"}) + "\n" for i in range(3)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(cache=_place(tmp_path, kind)))
    for command in ("plan", "apply"):
        r = vecmig(command, str(spec), *(["--auto-approve"] if command == "apply" else []))
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert "spec.yaml:7:" in lines[0] and "/transform/embed/cache" in lines[0] and what in lines[0], lines[0]
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "state.db").exists() and not (tmp_path / "out.jsonl").exists()
        assert not (tmp_path / "mysql:").exists()


@pytest.mark.parametrize("price", [".nan", ".inf"])
def test_a_price_that_is_not_a_number_is_refused_at_validate(tmp_path: Path, price: str) -> None:
    # Before: accepted, and the plan's re-embed line read "$nan (cost.embedding)".
    (tmp_path / "src.jsonl").write_text(json.dumps({"id": 1, "vector": [0.5, 0.25], "text": "t"}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(cache="c.db") + f"cost: {{embedding: {{usd_per_million_tokens: {price}}}}}\n")
    r = vecmig("validate", str(spec))
    assert r.returncode == 1, r.stdout + r.stderr
    line, = r.stderr.strip().splitlines()
    assert "spec.yaml:8:" in line and "/cost/embedding/usd_per_million_tokens" in line and "finite" in line, line


def test_truncate_prices_and_times_the_cut_text_not_the_whole(tmp_path: Path) -> None:
    # Before: a 25,000-token text with truncate: true counted 25,000 tokens; the plan said minutes
    # for an apply of 0.3 s (and an endpoint would have been priced for tokens it never bills).
    (tmp_path / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 0, "vector": [0.5, 0.25], "text": "short"},
        {"id": 1, "vector": [0.5, 0.25], "text": "żółw 🐢 " * 5000}]))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("text: text, cache: '{cache}'", "text: text, truncate: true").format())
    r = vecmig("plan", str(spec), "-out", str(tmp_path / "p.plan"))
    assert r.returncode == 0, r.stdout + r.stderr
    embedding = json.loads((tmp_path / "p.plan").read_text())["embedding"]
    assert embedding["max_tokens"] == 256
    assert embedding["tokens"]["expected"] <= 256 + 10, embedding["tokens"]


def test_keep_old_into_pinecone_is_refused_at_plan(tmp_path: Path, pinecone_srv: SpawnedPineconeLocal) -> None:
    # Before: the plan passed; apply created the index, then failed the first shard with PC004
    # (Pinecone's metadata lists hold strings only, and keep_old writes a list of floats).
    from pinecone import Pinecone

    (tmp_path / "src.jsonl").write_text("".join(
        json.dumps({"id": str(i), "vector": [0.5, 0.25], "text": f"text {i}"}) + "\n" for i in range(3)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("{{provider: jsonl, connection: {{path: out.jsonl}}}}",
                                 f'{{{{provider: pinecone, connection: {{{{api_key: "${{{{env:PCK}}}}", '
                                 f'host: "{pinecone_srv.url}"}}}}, collection: docs-v2, '
                                 "create: {{metric: cosine}}}}")
                    .replace("cache: '{cache}'", "keep_old: old_vec").format())
    for command in ("plan", "apply"):
        r = vecmig(command, str(spec), *(["--auto-approve"] if command == "apply" else []), env={"PCK": API_KEY})
        assert r.returncode == 1, r.stdout + r.stderr
        line, = r.stderr.strip().splitlines()
        assert "spec.yaml:7:" in line and "/transform/embed/keep_old" in line and "strings only" in line, line
        assert API_KEY not in r.stdout + r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "state.db").exists()
    with Pinecone(api_key=API_KEY, host=pinecone_srv.url) as pc:
        assert "docs-v2" not in [i.name for i in pc.list_indexes()]
