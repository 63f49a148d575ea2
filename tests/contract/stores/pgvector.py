"""pgvector in the contract suite: the session's embedded PostgreSQL (``tests/support/postgres``,
the one the ``pg`` fixture holds too), one database for the suite, one table per collection.

Transient faults come from PostgreSQL itself: while armed, an event trigger gives the table the
apply creates a statement trigger that fails every third write with SQLSTATE 40001
(serialization_failure), what a lost race between transactions raises. Its count lives in a
sequence, which a rolled-back statement does not roll back, so a retried write gets through.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from tests.contract.kit import Faults, StoreUnderTest
from tests.support import postgres
from vecmig.spec import Fields, StoreSpec

EVERY = 3
FAULTS_SQL = """
CREATE TABLE contract_armed (tbl text PRIMARY KEY, every int NOT NULL);
CREATE SEQUENCE contract_calls;
CREATE FUNCTION contract_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  e int;
  n bigint;
BEGIN
  SELECT every INTO e FROM contract_armed WHERE tbl = TG_TABLE_NAME;
  IF e IS NOT NULL THEN
    n := nextval('contract_calls');
    IF n % e = 0 THEN
      RAISE EXCEPTION 'injected fault: write % to % lost a race', n, TG_TABLE_NAME USING ERRCODE = '40001';
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION contract_attach() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    IF EXISTS (SELECT 1 FROM contract_armed a WHERE r.object_identity IN (a.tbl, 'public.' || a.tbl)) THEN
      EXECUTE format('CREATE TRIGGER contract_fault BEFORE INSERT OR UPDATE ON %s '
                     'FOR EACH STATEMENT EXECUTE FUNCTION contract_fault()', r.object_identity);
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER contract_attach ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION contract_attach();
"""


def under_test(tmp: Path) -> StoreUnderTest:
    server = postgres.acquire()
    database = f"contract_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        dsn = server.url(database)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FAULTS_SQL)  # type: ignore[arg-type] - a fixed script, no parameters
    except BaseException:
        postgres.release()
        raise

    def spec(collection: str, role: str) -> StoreSpec:
        return StoreSpec(provider="pgvector", connection={"dsn": dsn}, collection=collection,
                         fields=Fields(text="body"), pointer=f"/{role}", base_dir=tmp)

    @contextmanager
    def faults(target: StoreSpec) -> Iterator[Faults]:
        def injected() -> int:
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT last_value, is_called FROM contract_calls").fetchone()
            assert row is not None
            return int(row[0]) // EVERY if row[1] else 0

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT setval('contract_calls', 1, false)")
            conn.execute("INSERT INTO contract_armed VALUES (%s, %s)", (target.collection, EVERY))
        try:
            yield Faults(target, injected)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DELETE FROM contract_armed")

    def stop() -> None:
        try:
            with psycopg.connect(server.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        finally:
            postgres.release()

    # Metadata goes into typed columns (the store's default): each keeps its type exactly.
    return StoreUnderTest(provider="pgvector", spec=spec, max_batch=5000, stop=stop, faults=faults)
