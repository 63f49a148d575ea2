"""Test data for PostgreSQL-backed tests: realistic pgvector tables, filled fast.

``make_docs_table`` creates a table shaped like a real document store (clustered, unit-norm
embeddings; mixed metadata types; some NULLs; non-ASCII text) and returns what it wrote, so
tests can compare a provider's output with the truth. Read it back with
``Fields(text="body")`` (the default field mapping would treat ``body`` as metadata).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from vecmig.records import Batch
from vecmig.spec import Fields, StoreSpec

LANGS = ("en", "de", "fr", "es", "ja")
WORDS = (
    "vector", "index", "migration", "cosine", "shard", "cursor", "café", "naïve", "日本語", "données",
    "latency", "recall", "embedding", "tenant", "audit", "rollback",
)  # fmt: skip
TAGS = ("news", "blog", "paper", "faq", "legal", "draft", "ml", "db")

DOCS_COLUMNS = {
    "title": "text",
    "lang": "text",
    "year": "integer",
    "score": "double precision",
    "published": "boolean",
    "tags": "text[]",
    "body": "text",
}
# The logical metadata types a provider should report for the table (body is the text).
DOCS_FIELDS = {"title": "text", "lang": "text", "year": "int", "score": "float", "published": "bool", "tags": "text[]"}


@dataclass
class DocsData:
    """What ``make_docs_table`` wrote, in id order of insertion (not necessarily sort order)."""

    ids: list[Any]
    vectors: np.ndarray  # (n, dim) float32, unit norm
    metadata: list[dict[str, Any]]  # NULLs omitted, as providers report them
    texts: list[str | None]  # the body column

    def batch(self) -> Batch:
        return Batch(ids=list(self.ids), vectors=self.vectors, metadata=list(self.metadata), texts=list(self.texts))

    def by_id(self) -> dict[Any, int]:
        return {rid: i for i, rid in enumerate(self.ids)}


def make_ids(n: int, id_type: str = "int", start: int = 1) -> list[Any]:
    """int: start..start+n-1; text: "doc-<i>" (lexicographic order differs from numeric);
    uuid: uuid5 strings of the same numbers."""
    nums = range(start, start + n)
    if id_type == "int":
        return list(nums)
    if id_type == "text":
        return [f"doc-{i}" for i in nums]
    if id_type == "uuid":
        return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"vecmig/{i}")) for i in nums]
    raise ValueError(f"unknown id_type {id_type!r}")


def make_vectors(n: int, dim: int, seed: int = 0, clusters: int | None = None) -> np.ndarray:
    """Unit-norm float32 vectors around ``clusters`` gaussian centroids (like real embeddings)."""
    rng = np.random.default_rng(seed)
    k = clusters or max(2, min(32, n // 50 or 1))
    centroids = rng.standard_normal((k, dim)).astype(np.float32)
    assign = rng.integers(0, k, size=n)
    vecs = centroids[assign] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.ascontiguousarray(vecs, dtype=np.float32)


def make_metadata(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Metadata rows (NULLs omitted) and bodies, deterministic for a seed."""
    rng = np.random.default_rng(seed + 1)
    lang_idx = rng.choice(len(LANGS), size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    years = rng.integers(1990, 2025, size=n)
    scores = rng.random(n)
    published = rng.random(n) < 0.7
    ntags = rng.integers(0, 4, size=n)
    tag_idx = rng.integers(0, len(TAGS), size=(n, 3))
    word_idx = rng.integers(0, len(WORDS), size=(n, 12))
    nulls = rng.random((n, 6))
    metadata: list[dict[str, Any]] = []
    texts: list[str | None] = []
    for i in range(n):
        words = [WORDS[j] for j in word_idx[i]]
        m: dict[str, Any] = {"title": f"Document {i}: {words[0]} {words[1]}", "lang": LANGS[lang_idx[i]]}
        if nulls[i, 0] > 0.05:
            m["year"] = int(years[i])
        if nulls[i, 1] > 0.05:
            m["score"] = float(scores[i])
        if nulls[i, 2] > 0.02:
            m["published"] = bool(published[i])
        if nulls[i, 3] > 0.05:  # else NULL; some rows get an empty array
            m["tags"] = [TAGS[j] for j in tag_idx[i, : ntags[i]]]
        if nulls[i, 4] < 0.02:
            del m["lang"]
        metadata.append(m)
        texts.append(None if nulls[i, 5] < 0.03 else " ".join(words) + f". Paragraph {i}.")
    return metadata, texts


def make_docs_table(
    dsn: str,
    name: str,
    n: int,
    dim: int,
    id_type: str = "int",
    seed: int = 0,
    *,
    start: int = 1,
    index: str | None = None,
) -> DocsData:
    """Create table ``name`` (id, embedding vector(dim), title, lang, year, score, published,
    tags, body) and fill it with ``n`` rows through binary COPY.

    ``id_type``: "int" (bigint), "text" ("doc-<i>") or "uuid" (uuid column); ids are
    numbered from ``start`` (so two tables can overlap on purpose).
    ``index``: optionally "hnsw" or "ivfflat" (cosine) built after loading.
    """
    ids = make_ids(n, id_type, start)
    vectors = make_vectors(n, dim, seed)
    metadata, texts = make_metadata(n, seed)
    id_sql = {"int": "bigint", "text": "text", "uuid": "uuid"}[id_type]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        table = sql.Identifier(name)
        cols = sql.SQL(", ").join(sql.SQL("{} " + t).format(sql.Identifier(c)) for c, t in DOCS_COLUMNS.items())
        conn.execute(
            sql.SQL("CREATE TABLE {} (id " + id_sql + " PRIMARY KEY, embedding vector({}) NOT NULL, {})").format(
                table, sql.Literal(dim), cols
            )
        )
        names = ["id", "embedding", *DOCS_COLUMNS]
        types = [id_sql, "vector", "text", "text", "int4", "float8", "bool", "text[]", "text"]
        with conn.transaction(), conn.cursor() as cur:
            stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                table, sql.SQL(", ").join(map(sql.Identifier, names))
            )
            with cur.copy(stmt) as cp:
                cp.set_types(types)
                for i in range(n):
                    m = metadata[i]
                    cp.write_row(
                        (
                            uuid.UUID(ids[i]) if id_type == "uuid" else ids[i],
                            vectors[i],
                            m.get("title"),
                            m.get("lang"),
                            m.get("year"),
                            m.get("score"),
                            m.get("published"),
                            m.get("tags"),
                            texts[i],
                        )
                    )
        if index:
            ops = sql.SQL("USING " + index + " (embedding vector_cosine_ops)")
            conn.execute(sql.SQL("CREATE INDEX ON {} {}").format(table, ops))
    return DocsData(ids=ids, vectors=vectors, metadata=metadata, texts=texts)


def pg_store(
    dsn: str | None = None,
    collection: str | None = "docs",
    *,
    embedded: str | None = None,
    fields: Fields | None = None,
    pointer: str = "/source",
    alias: str | None = None,
    **kw: Any,
) -> StoreSpec:
    """A pgvector ``StoreSpec`` for tests: ``dsn=...`` or ``embedded=PATH``."""
    connection = {"embedded": embedded} if embedded is not None else {"dsn": dsn}
    return StoreSpec(
        provider="pgvector",
        connection=connection,
        collection=collection,
        fields=fields or Fields(text="body"),
        pointer=pointer,
        alias=alias,
        **kw,
    )
