"""Throughput of vecmig's re-embedding apply against the model called directly, in the same run.

vecmig's figure is a whole ``apply`` of a JSONL → JSONL migration with ``transform.embed``
(in-process through the operations layer): read, texts from each record, checks with the real
tokenizer, embedding, write, checkpoint, then validation. Counted two ways: the copy actions'
seconds (``ApplyResult.copy_seconds``: what re-embedding costs inside the copy) and the whole
apply (planning and validation included). The baseline is the same loaded weights'
``SentenceTransformer.encode`` over the same texts with the same batch size. Runs alternate
and the median of ``--repeat`` is kept, so load from other processes hits both sides.

Goal (issue 14): vecmig ≥ 0.9 × direct, in texts/s and tokens/s.

Usage::

    python bench/reembed.py                    # 2,000 texts, batch 32, 3 repeats
    python bench/reembed.py -n 5000 --cache    # also with a cold SQLite cache
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.embed_throughput

from bench.embed_throughput import make_texts
from vecmig.actions import Reporter, SilentReporter
from vecmig.actions.reembed import shared_model
from vecmig.embed.local import LocalModel
from vecmig.embed.settings import config_from_spec
from vecmig.model import Action, Plan
from vecmig.operations import apply as apply_ops
from vecmig.operations.ui import Approval
from vecmig.spec_loader import load_spec
from vecmig.state.redact import Redactor
from vecmig.state.store import StateStore

DIM = 384


class QuietUi:
    def redact_with(self, redactor: Redactor) -> None: ...
    def show_plan(self, plan: Plan, state: StateStore | None) -> None: ...
    def show_undo(self, steps: tuple[Action, ...]) -> None: ...
    def confirm(self, question: str) -> Approval:
        return "interactive"

    @contextmanager
    def progress(self, actions: tuple[Action, ...]) -> Iterator[Reporter]:
        yield SilentReporter()

    def say(self, line: str) -> None: ...


def write_source(path: Path, texts: list[str]) -> None:
    zero = [0.0] * DIM
    path.write_text("".join(json.dumps({"id": i, "vector": zero, "metadata": {"i": i}, "text": t}) + "\n"
                            for i, t in enumerate(texts)))


def spec_in(folder: Path, source: Path, batch_size: int, cache: bool) -> Path:
    folder.mkdir(parents=True)
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""
        version: 1
        name: bench-reembed
        source: {{provider: jsonl, connection: {{path: {source}}}}}
        target: {{provider: jsonl, connection: {{path: out.jsonl}}}}
        transform:
          embed: {{model: all-MiniLM-L6-v2, text: text, device: cpu, batch_size: {batch_size},
                  cache: {"emb.db" if cache else "false"}}}
        strategy: {{type: big-bang, batch_size: 500, concurrency: 2}}
        """))
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", action="store_true", help="also apply with a cold SQLite embedding cache")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    texts = make_texts(args.n)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "in.jsonl"
        write_source(source, texts)
        first = spec_in(tmp / "warm", source, args.batch_size, cache=False)
        embed = load_spec(first).transform.embed
        assert embed is not None
        model, _ = shared_model(config_from_spec(embed))  # the very model the applies use
        assert isinstance(model, LocalModel)
        st = model._st
        tokens = sum(model.count_tokens(texts))

        def direct() -> float:
            t0 = time.perf_counter()
            st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
            return time.perf_counter() - t0

        runs = 0

        def vecmig(cache: bool) -> tuple[float, float]:
            nonlocal runs
            runs += 1
            spec = spec_in(tmp / f"run{runs}", source, args.batch_size, cache)
            t0 = time.perf_counter()
            result = apply_ops.apply(apply_ops.ApplyRequest(spec, auto_approve=True), QuietUi())
            assert result.records == len(texts), result.records
            return result.copy_seconds, time.perf_counter() - t0

        apply_ops.apply(apply_ops.ApplyRequest(first, auto_approve=True), QuietUi())  # warm-up
        direct()
        times: dict[str, list[float]] = {"direct encode": [], "vecmig copy": [], "vecmig apply (whole)": []}
        if args.cache:
            times["vecmig copy, cold cache"] = []
        for r in range(args.repeat):
            print(f"repeat {r + 1}/{args.repeat}", file=sys.stderr, flush=True)
            order = ["direct", "vecmig"] if r % 2 == 0 else ["vecmig", "direct"]
            for side in order:
                if side == "direct":
                    times["direct encode"].append(direct())
                else:
                    copy, whole = vecmig(cache=False)
                    times["vecmig copy"].append(copy)
                    times["vecmig apply (whole)"].append(whole)
            if args.cache:
                times["vecmig copy, cold cache"].append(vecmig(cache=True)[0])

    base = statistics.median(times["direct encode"])
    rows: list[dict[str, Any]] = []
    for name, ts in times.items():
        t = statistics.median(ts)
        rows.append({"path": name, "seconds": round(t, 3), "texts_per_s": round(len(texts) / t, 1),
                     "tokens_per_s": round(tokens / t, 1), "vs_direct": round(base / t, 3)})
    print(f"{len(texts)} texts, {tokens} tokens, batch {args.batch_size}, device {model.device}, "
          f"median of {args.repeat}")
    print(f"{'path':28} {'s':>8} {'texts/s':>9} {'tokens/s':>10} {'× direct':>9}")
    for row in rows:
        print(f"{row['path']:28} {row['seconds']:8.3f} {row['texts_per_s']:9.1f} {row['tokens_per_s']:10.1f} "
              f"{row['vs_direct']:9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"texts": len(texts), "tokens": tokens, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
