"""pgvector search against the embedded PostgreSQL: filters as SQL equal ``vecmig.filters.matches``
on random metadata and filters (typed columns and one jsonb document), the query uses the index
readers use, and a deliberately poor IVFFlat index (many lists, ``probes = 1``) finds measurably
less than exact search, which ``search_settings`` explains."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.support.filters import ARGS, BOOLS, FLOATS, INTS, STRINGS, random_filter
from tests.support.postgres import PgServer
from vecmig.errors import TerminalError
from vecmig.filters import check, matches
from vecmig.providers.pgvector.filtersql import where
from vecmig.providers.pgvector.provider import PgvectorProvider
from vecmig.search import similarities, top_k
from vecmig.spec import Fields, StoreSpec

DIM = 8
ROWS = 240

@pytest.fixture(scope="module")
def db(pg: PgServer) -> Iterator[str]:
    name = "search_tests"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg.url(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    try:
        yield dsn
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def provider(dsn: str, table: str, **fields: Any) -> PgvectorProvider:
    p = PgvectorProvider(StoreSpec(provider="pgvector", connection={"dsn": dsn}, collection=table,
                                   fields=Fields(**fields), pointer="/source"))
    p.connect()
    return p


def vec(rng: random.Random) -> str:
    return "[" + ",".join(repr(rng.uniform(-1, 1)) for _ in range(DIM)) + "]"


# ---- random metadata and filters ---------------------------------------------------------------

def typed_value(rng: random.Random, kind: str) -> Any:
    if rng.random() < 0.2:
        return None
    if kind == "i":
        return rng.choice(INTS)
    if kind == "f":
        return rng.choice([*FLOATS, math.nan, -math.inf])
    if kind == "b":
        return rng.choice(BOOLS)
    if kind == "s":
        return rng.choice(STRINGS)
    return [rng.choice([*STRINGS, None]) for _ in range(rng.randint(0, 3))]  # text[]


def json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(INTS)
    if roll < 0.45:
        return rng.choice(FLOATS[:-1])
    if roll < 0.65:
        return rng.choice(STRINGS)
    if roll < 0.75:
        return rng.choice(BOOLS)
    if roll < 0.8:
        return None
    if roll < 0.95 and depth < 2:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"x": rng.choice(INTS)}


def agree(p: PgvectorProvider, filters: list[dict[str, Any]]) -> None:
    """Each filter selects, in SQL, exactly the records ``matches`` passes over the metadata the
    provider reads back."""
    batch = next(p.scan(None, None, 10_000))
    layout = p.layout()
    for flt in filters:
        check(flt)
        want = {rid for rid, m in zip(batch.ids, batch.metadata, strict=True) if matches(m, flt)}
        query = sql.SQL("SELECT t.{} FROM {} AS t WHERE {}").format(
            sql.Identifier(layout.id.name), sql.Identifier(layout.relation.name), where(layout, flt))
        with p.transaction() as cur:
            got = {r[0] for r in cur.execute(query).fetchall()}
        assert got == want, (f"filter {json.dumps(flt)}: SQL extra {sorted(got - want)[:5]}, "
                             f"missing {sorted(want - got)[:5]}")


def test_filters_over_typed_columns_equal_the_reference(db: str) -> None:
    rng = random.Random(5)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE typed (id bigint PRIMARY KEY, embedding vector({DIM}), i bigint, i4 int4, "
                     "f float8, r real, n numeric, b bool, s text, v varchar(20), tags text[], j jsonb)")
        with conn.cursor() as cur:
            for rid in range(ROWS):
                i, f, s = typed_value(rng, "i"), typed_value(rng, "f"), typed_value(rng, "s")
                i4 = i if i is None or abs(i) < 2**31 else 7
                r = None if f is None or (math.isfinite(f) and abs(f) > 1e30) else f
                n = f if f is None or math.isfinite(f) else None
                j = json_value(rng)
                cur.execute("INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            (rid, vec(rng), i, i4, f, r, n, typed_value(rng, "b"), s, s, typed_value(rng, "l"),
                             None if j is None else Jsonb(j)))
    p = provider(db, "typed")
    try:
        names = {"i": INTS, "i4": INTS, "f": FLOATS, "r": FLOATS, "n": FLOATS, "b": BOOLS, "s": STRINGS,
                 "v": STRINGS, "tags": STRINGS, "j": ARGS, "missing": ARGS, "id": INTS}
        agree(p, [random_filter(rng, names) for _ in range(600)])
    finally:
        p.close()


def test_filters_over_one_jsonb_document_equal_the_reference(db: str) -> None:
    rng = random.Random(6)
    names = {k: ARGS for k in ("a", "b", "c", "d", "doc")}
    names["a"] = [*ARGS, 0.0, -0.0, math.inf, -math.inf, 1.7976931348623157e308]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE docs (id text PRIMARY KEY, embedding vector({DIM}), doc jsonb)")
        with conn.cursor() as cur:
            for rid in range(ROWS):
                if rid % 40 == 39:  # a document that is not an object reads as {"doc": value}
                    doc: Any = json_value(rng)
                else:
                    doc = {k: json_value(rng) for k in "abcd" if rng.random() < 0.8}
                cur.execute("INSERT INTO docs VALUES (%s, %s, %s)", (f"r{rid}", vec(rng), Jsonb(doc)))
            # Numbers Python parses to inf or 0.0 (written as text: no Python float holds them).
            huge, tiny = "1" + "0" * 400 + ".5", "0." + "0" * 400 + "1"
            for i, text in enumerate([f'{{"a": {huge}}}', f'{{"a": -{huge}}}', f'{{"a": {tiny}}}',
                                      f'{{"a": [{tiny}, 1.7976931348623157e308]}}']):
                cur.execute("INSERT INTO docs VALUES (%s, %s, %s::jsonb)", (f"x{i}", vec(rng), text))
    p = provider(db, "docs", metadata="doc")
    try:
        agree(p, [random_filter(rng, names) for _ in range(600)])
    finally:
        p.close()


# ---- the query itself ---------------------------------------------------------------------------

def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * 4
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)).astype(np.float32)).astype(
        np.float32)


def load(dsn: str, table: str, vectors: np.ndarray, metric_comment: str | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}), grp int)").format(
            sql.Identifier(table), sql.Literal(vectors.shape[1])))
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} (id, embedding, grp) FROM STDIN").format(
                sql.Identifier(table))) as cp:
            for i, v in enumerate(vectors):
                cp.write_row((i, "[" + ",".join(repr(float(x)) for x in v) + "]", i % 5))
        if metric_comment:
            conn.execute(sql.SQL("COMMENT ON COLUMN {}.embedding IS {}").format(
                sql.Identifier(table), sql.Literal(f"vecmig:metric={metric_comment}")))


def recall(p: PgvectorProvider, vectors: np.ndarray, queries: np.ndarray, metric: str, k: int = 10) -> float:
    ids = list(range(len(vectors)))
    scores = similarities(metric, vectors, queries)
    found = 0
    for qi, q in enumerate(queries):
        exact = {h.id for h in top_k(scores[qi], ids, k)}
        found += len(exact & {h.id for h in p.query(q, k)})
    return found / (k * len(queries))


def test_a_poor_ivfflat_index_loses_recall_and_says_why(db: str) -> None:
    vectors = clustered(3000, 16, 40, seed=1)
    queries = vectors[np.random.default_rng(2).choice(len(vectors), 40, replace=False)] + np.float32(0.3)
    load(db, "poor", vectors)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE INDEX poor_ivf ON poor USING ivfflat (embedding vector_l2_ops) WITH (lists = 200)")
        conn.execute("ANALYZE poor")
    p = provider(db, "poor")
    try:
        settings = p.search_settings()
        assert settings == {"type": "ivfflat", "name": "poor_ivf", "opclass": "vector_l2_ops", "lists": 200,
                            "metric": "euclidean", "probes": 1, "ef_search": 40}
        with p.transaction() as cur:
            plan = "\n".join(r[0] for r in cur.execute(sql.SQL("EXPLAIN ") + p.query_sql(10),
                                                        (vectors[0],)).fetchall())
        assert "poor_ivf" in plan, f"the query uses the index readers use: {plan}"
        poor = recall(p, vectors, queries, "euclidean")
    finally:
        p.close()
    # The same index with probes raised where readers get it from: the database's default.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET ivfflat.probes = 200").format(
            sql.Identifier(conn.info.dbname)))
    p = provider(db, "poor")
    try:
        assert p.search_settings()["probes"] == 200, "the database's default reaches the session"
        good = recall(p, vectors, queries, "euclidean")
    finally:
        p.close()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET ivfflat.probes").format(sql.Identifier(conn.info.dbname)))
    print(f"recall@10 ivfflat lists=200: probes=1 {poor:.3f}, probes=200 {good:.3f}")
    assert good == 1.0, "probing every list is exact"
    assert poor < 0.8, f"probes=1 over 200 lists should miss neighbours in other lists (recall {poor})"


def test_hnsw_scores_are_similarities_and_views_search_their_table(db: str) -> None:
    vectors = clustered(500, 8, 5, seed=3)
    load(db, "hn", vectors)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE INDEX hn_idx ON hn USING hnsw (embedding vector_cosine_ops) WITH (m = 8)")
        conn.execute("CREATE VIEW hn_live AS SELECT id, embedding, grp FROM hn")
    p = provider(db, "hn_live")
    try:
        settings = p.search_settings()
        assert settings == {"type": "hnsw", "name": "hn_idx", "opclass": "vector_cosine_ops", "m": 8,
                            "ef_construction": 64, "metric": "cosine", "ef_search": 40, "probes": 1}
        q = vectors[7]
        with p.transaction() as cur:
            backend = cur.connection.info.backend_pid
        hits = p.query(q, 5, {"grp": {"$in": [2, 4]}})
        for v in vectors[:20]:
            p.query(v, 3)
        with p.transaction() as cur:
            assert cur.connection.info.backend_pid == backend, "every query on the provider's one session"
        assert hits and all(int(h.id) % 5 in (2, 4) for h in hits)
        want = similarities("cosine", vectors[[int(h.id) for h in hits]], q)[0]
        assert np.allclose([h.score for h in hits], want, atol=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        with p.transaction() as cur:  # a zero vector: pgvector's cosine distance is NaN (HNSW leaves it out)
            cur.execute("INSERT INTO hn VALUES (-1, %s, 0)", ("[" + ",".join(["0"] * 8) + "]",))
            cur.execute("SET enable_indexscan = off")
        zero = [h for h in p.query(q, 501) if h.id == -1]
        assert len(zero) == 1 and zero[0].score == 0.0, "similar to nothing, as vecmig.search scores it"
    finally:
        p.close()


@pytest.mark.parametrize("metric", ["euclidean", "dotproduct"])
def test_distances_become_similarities(db: str, metric: str) -> None:
    vectors = clustered(200, 8, 3, seed=4)
    table = f"exact_{metric}"
    load(db, table, vectors, metric_comment=metric)
    p = provider(db, table)
    try:
        q = vectors[3] * np.float32(0.5)
        hits = p.query(q, 10)
        exact = top_k(similarities(metric, vectors, q)[0], list(range(len(vectors))), 10)
        assert [h.id for h in hits] == [h.id for h in exact]
        assert np.allclose([h.score for h in hits], [h.score for h in exact], atol=1e-4)
    finally:
        p.close()


def test_a_table_without_index_or_metric_is_refused_in_one_line(db: str) -> None:
    load(db, "nometric", clustered(10, 4, 1, seed=5))
    p = provider(db, "nometric")
    try:
        with pytest.raises(TerminalError) as err:
            p.query(np.ones(4, np.float32), 3)
        line = err.value.one_line()
        assert "\n" not in line and "nometric" in line and "vecmig:metric=" in line
    finally:
        p.close()
