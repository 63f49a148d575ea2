"""Throughput of vecmig's embedding layer against the model called directly, in the same run.

The baseline is the packaged model's own ``SentenceTransformer.encode`` over the same texts with
the same batch size (it sorts the whole input by length: the fastest way the library offers).
vecmig's figure is ``Embedder.embed`` on the local backend: every text checked with the real
tokenizer, sorted by length within a window, embedded in batches, order restored; then the same
with a cold SQLite cache (the cost of storing every vector) and a warm one (a re-run). The runs
alternate and the median of ``--repeat`` is kept, so load from other processes hits both sides.
``--api`` adds the OpenAI-compatible path through tests/openai_local (HTTP + JSON on loopback).

Goal (issue 14): vecmig ≥ 0.9 × direct, in texts/s and tokens/s.

Usage::

    python bench/embed_throughput.py                  # 1,000 texts, batch 32, 3 repeats
    python bench/embed_throughput.py -n 4000 --batch-size 64 --api
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.openai_local for --api

from vecmig.embed import ApiConfig, EmbedConfig, Embedder, EmbeddingCache, make_model
from vecmig.embed.local import LocalModel

WORD_TEXT = ("vector store migration embedding record metadata index shard checkpoint cosine "
         "query recall latency postgres pinecone qdrant milvus chroma lance parquet plan apply "
         "rollback state journal batch token model text search similarity dimension")
WORDS = WORD_TEXT.split()


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    # Lengths spread like documents' chunks: mostly short, some long (4 to 120 words).
    return [" ".join(rng.choice(WORDS) for _ in range(int(rng.triangular(4, 120, 20)))) + f" #{i}"
            for i in range(n)]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--api", action="store_true", help="also through the local OpenAI-compatible server")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    texts = make_texts(args.n)
    ids = [f"r{i}" for i in range(len(texts))]
    model = make_model(EmbedConfig(model="all-MiniLM-L6-v2", batch_size=args.batch_size))
    assert isinstance(model, LocalModel)
    st = model._st  # the very same weights, called directly
    tokens = sum(model.count_tokens(texts))
    direct = lambda: st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True,  # noqa: E731
                               show_progress_bar=False)
    layer = lambda: Embedder(model).embed(ids, texts)  # noqa: E731
    direct(), layer()  # warm-up: allocator, thread pools, lazy imports

    times: dict[str, list[float]] = {"direct": [], "vecmig": [], "vecmig+cold cache": [], "vecmig warm cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            print(f"repeat {r + 1}/{args.repeat}", file=sys.stderr, flush=True)
            # Alternate which goes first, so neither side always runs right after the other's garbage.
            for name, fn in ([("direct", direct), ("vecmig", layer)] if r % 2 == 0
                             else [("vecmig", layer), ("direct", direct)]):
                times[name].append(timed(fn))
            with EmbeddingCache(Path(tmp) / f"cache{r}.sqlite") as cache:
                times["vecmig+cold cache"].append(timed(lambda c=cache: Embedder(model, c).embed(ids, texts)))
                times["vecmig warm cache"].append(timed(lambda c=cache: Embedder(model, c).embed(ids, texts)))

        if args.api:
            from tests.openai_local import OpenAILocal
            from tests.openai_local.server import DEFAULT_API_KEY

            with OpenAILocal(model, model_name="all-MiniLM-L6-v2") as srv:
                api = make_model(EmbedConfig(model="all-MiniLM-L6-v2", batch_size=args.batch_size,
                                             api=ApiConfig(base_url=srv.url, api_key=DEFAULT_API_KEY,
                                                           tokenizer="all-MiniLM-L6-v2")))
                api.embed(texts[:64])
                times["vecmig via API (loopback)"] = [timed(lambda: Embedder(api).embed(ids, texts))
                                                      for _ in range(args.repeat)]

    base = statistics.median(times["direct"])
    rows = []
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
