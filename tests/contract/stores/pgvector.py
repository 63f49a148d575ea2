"""pgvector in the contract suite: the session's embedded PostgreSQL (``tests/support/postgres``,
the one the ``pg`` fixture holds too), one database for the suite, one table per collection."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from tests.contract.kit import StoreUnderTest
from tests.support import postgres
from vecmig.spec import Fields, StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    server = postgres.acquire()
    database = f"contract_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except BaseException:
        postgres.release()
        raise
    dsn = server.url(database)

    def spec(collection: str, role: str) -> StoreSpec:
        return StoreSpec(provider="pgvector", connection={"dsn": dsn}, collection=collection,
                         fields=Fields(text="body"), pointer=f"/{role}", base_dir=tmp)

    def stop() -> None:
        try:
            with psycopg.connect(server.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        finally:
            postgres.release()

    # Metadata goes into typed columns (the store's default): each keeps its type exactly.
    return StoreUnderTest(provider="pgvector", spec=spec, max_batch=5000, stop=stop)
