"""Realistic sample data: clustered vectors and mixed metadata, deterministic from a seed.

Uniform noise makes every index and every checksum look good; real embeddings cluster by
topic, metadata is uneven and sometimes missing, and text lengths vary. This generator is
what the quickstart loads, and what tests and benchmarks move.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vecmig.records import Batch

LANGS = ("en", "en", "en", "de", "fr", "es", "ja")
TOPICS = ("billing", "search", "onboarding", "security", "latency", "pricing", "export", "sso", "gpu", "backup")
WORDS = ("vector", "index", "query", "latency", "cluster", "recall", "shard", "replica", "token", "embedding",
         "cosine", "migration", "snapshot", "tenant", "namespace", "payload", "batch", "cursor", "upsert")


def batches(n: int, dimension: int = 384, *, batch_size: int = 1000, seed: int = 0, clusters: int = 24,
            id_type: str = "int", start: int = 1) -> Iterator[Batch]:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(clusters, dimension)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for lo in range(0, n, batch_size):
        m = min(batch_size, n - lo)
        which = rng.integers(0, clusters, size=m)
        vecs = centroids[which] + rng.normal(scale=0.35, size=(m, dimension)).astype(np.float32) / np.sqrt(dimension)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ids: list[int | str] = [start + lo + i for i in range(m)]
        if id_type == "text":
            ids = [f"doc-{i:08d}" for i in ids]
        metas = []
        texts: list[str | None] = []
        for i in range(m):
            topic = TOPICS[int(which[i]) % len(TOPICS)]
            words = rng.choice(WORDS, size=int(rng.integers(5, 60)))
            meta = {
                "title": f"{topic.title()} note {lo + i}",
                "lang": LANGS[int(rng.integers(0, len(LANGS)))],
                "year": int(rng.integers(2015, 2027)),
                "score": round(float(rng.random()), 4),
                "published": bool(rng.random() < 0.8),
                "tags": [topic, *sorted({str(w) for w in words[:2]})],
            }
            if rng.random() < 0.1:
                meta["lang"] = None  # missing values exist in every real corpus
            metas.append(meta)
            texts.append(" ".join(str(w) for w in words) if rng.random() < 0.95 else None)
        yield Batch(ids=ids, vectors=np.ascontiguousarray(vecs, dtype=np.float32), metadata=metas, texts=texts)


METADATA_TYPES = {"title": "text", "lang": "text", "year": "int", "score": "float", "published": "bool",
                  "tags": "text[]"}


def write_jsonl(path: str, n: int, dimension: int, *, seed: int = 0, id_type: str = "int") -> None:
    """The JSONL record shape of ARCHITECTURE.md, one JSON object per line; float32 values round-trip exactly."""
    import json

    with open(path, "w", encoding="utf-8") as f:
        for batch in batches(n, dimension, seed=seed, id_type=id_type):
            texts = batch.texts if batch.texts is not None else [None] * len(batch)
            for rid, vec, meta, text in zip(batch.ids, batch.vectors.tolist(), batch.metadata, texts, strict=True):
                rec: dict[str, object] = {"id": rid, "vector": vec, "metadata": meta}
                if text is not None:
                    rec["text"] = text
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
