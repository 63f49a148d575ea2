"""Kill-and-resume of a re-embedding apply with no text paid for twice.

The CLI applies in a subprocess against tests/openai_local (the real model behind a real HTTP
server, the real ``openai`` client, 429s injected on every third request). The server itself
SIGKILLs the apply when given requests arrive: the kill lands while a request is in flight and
the other shard may sit anywhere between its cache write, its upsert and its checkpoint. The
killed request is refused, so the provider never finished it (a kill between the provider's
answer and the cache's commit, a few milliseconds per batch, would pay that batch again: no
design with an external cache avoids that window, so it is not the one provoked here).

After the resumes: every record is the expected re-embedding, and the server embedded each
distinct text exactly once. Rollback and apply again, and a second target sharing the cache,
embed nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.openai_local import Faults, OpenAILocal
from tests.openai_local.server import DEFAULT_API_KEY, ApiFailure
from tests.support.cli import spawn, vecmig
from tests.support.embed import MODEL, local_model
from tests.support.specs import write_spec

pytestmark = pytest.mark.integration

N = 120
DIM = 384
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"]


class KillingServer(OpenAILocal):
    """SIGKILLs ``victim`` when the ``kill_at``-th request arrives, and refuses that request."""

    kill_at: frozenset[int] = frozenset()
    victim: subprocess.Popen[str] | None = None
    kills = 0

    def _fault(self) -> None:
        super()._fault()
        with self._lock:
            n = self.stats.requests
        if n in self.kill_at and self.victim is not None and self.victim.poll() is None:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.kills += 1
            raise ApiFailure(503, "the client was killed", kind="server_error")


@pytest.fixture(scope="module")
def server() -> Iterator[KillingServer]:
    with KillingServer(local_model(batch_size=64), model_name=MODEL) as srv:
        yield srv


def text_of(i: int) -> str:
    # Every fifth record repeats an earlier record's text: a text is paid for once however often it appears.
    j = i - 3 if i % 5 == 4 else i
    return f"note {j}: {WORDS[j % 11]} {WORDS[(j * 3) % 11]} {WORDS[(j * 7) % 11]}"


def write_source(path: Path) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    path.write_text("".join(json.dumps({"id": f"r{i}", "vector": vectors[i].tolist(), "metadata": {"i": i},
                                        "text": text_of(i)}) + "\n" for i in range(N)))


def spec_for(tmp: Path, name: str, target: str, url: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    return write_spec(folder, f"""
        version: 1
        name: {name}
        source: {{provider: jsonl, connection: {{path: ../in.jsonl}}}}
        target: {{provider: jsonl, connection: {{path: ../{target}}}}}
        transform:
          embed:
            model: {MODEL}
            text: text
            batch_size: 8
            cache: ../cache/embeddings.db
            api: {{base_url: "{url}", api_key: "${{env:EMBED_KEY}}", tokenizer: {MODEL}, dimension: {DIM}}}
        strategy: {{type: big-bang, batch_size: 10, concurrency: 2}}
        """)


def target_vectors(path: Path) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}


def assert_reembedded(path: Path, want: np.ndarray) -> None:
    """``want``: the model's own vectors of the N texts, row i for record r<i>."""
    got = target_vectors(path)
    assert sorted(got) == sorted(f"r{i}" for i in range(N))
    have = np.stack([got[f"r{i}"] for i in range(N)])
    cos = np.sum(have * want, axis=1) / (np.linalg.norm(have, axis=1) * np.linalg.norm(want, axis=1))
    assert have.shape[1] == DIM and float(cos.min()) >= 0.9999


def test_killed_reembed_resumes_without_paying_twice(server: KillingServer, tmp_path: Path) -> None:
    server.reset()
    server.kills = 0
    server.faults = Faults(rate_limit_every=3, retry_after=0.01)
    write_source(tmp_path / "in.jsonl")
    spec = spec_for(tmp_path, "first", "out.jsonl", server.url)
    env = {"EMBED_KEY": DEFAULT_API_KEY}
    distinct = len({text_of(i) for i in range(N)})
    # Kills at requests the 429s leave alone (not multiples of 3), spread over the copy.
    server.kill_at = frozenset({4, 10, 17})
    runs = 0
    while True:
        runs += 1
        assert runs <= 10, "the apply never finished"
        proc = spawn("apply", str(spec), "--auto-approve", env=env)
        server.victim = proc
        out, err = proc.communicate(timeout=300)
        if proc.returncode == -signal.SIGKILL:
            continue
        assert proc.returncode == 0, out + err
        break
    server.victim = None
    assert server.kills == 3 and server.stats.rate_limited > 0
    want = server.model.embed([text_of(i) for i in range(N)])  # the model itself, in this process
    assert_reembedded(tmp_path / "out.jsonl", want)
    # Every distinct text embedded exactly once, across four runs, three kills and the retried 429s.
    assert server.stats.texts_embedded == distinct
    assert max(server.stats.texts.values()) == 1
    # Nothing to do after the apply: vectors are not compared, ids, metadata and text are equal.
    assert vecmig("plan", str(spec), "--detailed-exitcode", env=env).returncode == 0

    # Rollback and apply again: everything comes from the cache.
    r = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_reembedded(tmp_path / "out.jsonl", want)
    # A second target under another spec, sharing the cache, pays nothing either.
    second = spec_for(tmp_path, "second", "out2.jsonl", server.url)
    r = vecmig("apply", str(second), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_reembedded(tmp_path / "out2.jsonl", want)
    assert server.stats.texts_embedded == distinct
