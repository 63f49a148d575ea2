"""The apply flow tells the truth (issue 9): a failed validation is followed by a re-copy of
what failed (or a re-plan when the source changed), a migration's own records never count
as "pre-existing", and configuration is honoured or refused — never silently ignored.

Validation is made to fail deterministically with PostgreSQL triggers: an event trigger
puts a row trigger on the target table the moment vecmig creates it, and a ``tamper`` table
says what that row trigger does while vecmig writes record 5 (change the value written,
change the source row once, or add a source row once).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.support.cli import table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec

N = 2500

TRIGGERS = """
CREATE TABLE tamper (mode text);
INSERT INTO tamper VALUES (NULL);
CREATE FUNCTION tamper_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE m text;
BEGIN
  SELECT mode INTO m FROM tamper;
  IF NEW.id = 5 AND m = 'target' THEN
    NEW.title := 'tampered';
  ELSIF NEW.id = 5 AND m = 'source-once' THEN
    UPDATE docs SET title = 'changed at the source' WHERE id = 5;
    UPDATE tamper SET mode = NULL;
  ELSIF NEW.id = 5 AND m = 'insert-once' THEN
    INSERT INTO docs SELECT 0, embedding, 'new', lang, year, score, published, tags, body FROM docs WHERE id = 5;
    UPDATE tamper SET mode = NULL;
  ELSIF NEW.id = 5 AND m = 'extra-once' THEN
    UPDATE tamper SET mode = NULL;
    INSERT INTO docs_v2 (id, embedding) VALUES (99999, NEW.embedding);
  END IF;
  RETURN NEW;
END $$;
CREATE FUNCTION add_tamper() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF r.object_identity = 'public.docs_v2' THEN
      EXECUTE 'CREATE TRIGGER tamper BEFORE INSERT OR UPDATE ON public.docs_v2 '
              'FOR EACH ROW EXECUTE FUNCTION tamper_row()';
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER add_tamper ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION add_tamper();
"""


def tamper(dsn: str, mode: str | None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE tamper SET mode = %s", (mode,))


def pg_spec(tmp: Path, *, source: str = "pgvector", strategy: str = "big-bang", extra: str = "") -> Path:
    if source == "pgvector":
        src = ('{provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs, '
               "fields: {id: id, vector: embedding, text: body}}")
    else:
        src = "{provider: jsonl, connection: {path: src.jsonl}}"
    alias = "alias: docs_live," if strategy == "blue-green" else ""
    return write_spec(tmp, f"""
        version: 1
        name: truth
        source: {src}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_v2, {alias}
                 fields: {{id: id, vector: embedding, text: body}}}}
        strategy: {{type: {strategy}, batch_size: 100, concurrency: 1, shard_size: 1000}}
        {extra}
        """)


def setup(dsn: str) -> None:
    make_docs_table(dsn, "docs", N, 8, seed=3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TRIGGERS)


def write_jsonl(tmp: Path) -> None:
    lines = [json.dumps({"id": i, "vector": [float(i), 1.0, 0.5, 0.25], "metadata": {"title": f"t{i}"},
                         "text": f"body {i}"}) for i in range(1, N + 1)]
    (tmp / "src.jsonl").write_text("\n".join(lines) + "\n")


def target_title(dsn: str, rid: int) -> str:
    with psycopg.connect(dsn) as conn:
        return str(conn.execute("SELECT title FROM docs_v2 WHERE id = %s", (rid,)).fetchone()[0])


def assert_target_equals_source(dsn: str) -> None:
    src, tgt = table_rows(dsn, "docs"), table_rows(dsn, "docs_v2")
    assert src == tgt


def test_failed_validation_then_apply_recopies_the_shard(pg_db: str, tmp_path: Path) -> None:
    """pgvector → pgvector: the target was changed while vecmig wrote it; the next apply copies
    the shard again (the old code only re-validated, failing forever)."""
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path)
    tamper(pg_db, "target")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "completeness check failed" in r.stderr
    assert "id 5: metadata.title is 'title-" in r.stderr or "id 5: metadata.title" in r.stderr, r.stderr
    assert "re-copy shard 0" in r.stderr  # the hint names what the next apply will do
    tamper(pg_db, None)

    saved = tmp_path / "plan.json"
    p = vecmig("plan", str(spec), "-out", str(saved), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "re-copying shard 0: validation found 1 record(s) different (e.g. id 5: metadata.title)" in p.stdout
    assert "(re-copy)" in p.stdout
    assert [a["status"] for a in json.loads(saved.read_text())["actions"]] == ["recopy", "planned"]

    r = vecmig("apply", str(saved), env=env)  # exactly the reviewed plan: shard 0 again, then validation
    assert r.returncode == 0, r.stdout + r.stderr
    assert target_title(pg_db, 5) != "tampered"
    assert_target_equals_source(pg_db)
    v = vecmig("state", "verify", str(spec), env=env)
    assert v.returncode == 0, v.stdout + v.stderr


def test_second_failure_says_why_the_recopy_did_not_help(pg_db: str, tmp_path: Path) -> None:
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path)
    tamper(pg_db, "target")  # stays on: the target rewrites what vecmig writes
    first = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert first.returncode == 1
    second = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "re-copying shard 0" in second.stdout
    err = " ".join(second.stderr.split())
    assert "again after re-copying this shard with the source unchanged" in err, err
    assert "the target does not keep the values vecmig writes" in err
    assert "id 5: metadata.title" in err and "'tampered' in the target" in err
    assert "find what changes the target after vecmig writes it" in err  # not only "apply again"
    third = vecmig("plan", str(spec), env=env)
    assert "copying it again did not fix it last time, with the source unchanged" in " ".join(third.stdout.split())
    # The findings kept with the failure are covered by the audit chain like any result.
    v = vecmig("state", "verify", str(spec), env=env)
    assert v.returncode == 0, v.stdout + v.stderr
    exported = vecmig("state", "export", str(spec), "--format", "json", "-o", str(tmp_path / "audit.json"), env=env)
    assert exported.returncode == 0, exported.stdout + exported.stderr


def test_source_row_changed_between_copy_and_validate_is_recopied(pg_db: str, tmp_path: Path) -> None:
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path, strategy="blue-green")
    tamper(pg_db, "source-once")  # writing record 5 changes its source row (count unchanged)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "id 5: metadata.title" in r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "re-copying shard 0" in r.stdout
    assert target_title(pg_db, 5) == "changed at the source"
    assert_target_equals_source(pg_db)


def test_source_grew_between_copy_and_validate_replans(pg_db: str, tmp_path: Path) -> None:
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path)
    tamper(pg_db, "insert-once")  # a new source record (id 0) appears after its shard was copied
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 missing (ids 0)" in r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "round 1 failed validation and the source changed since it started: re-planned as round 2" in r.stdout
    assert_target_equals_source(pg_db)
    with sqlite3.connect(tmp_path / ".vecmig" / "truth.db") as c:
        assert c.execute("SELECT round, status FROM rounds ORDER BY round").fetchall() == [
            (1, "superseded"), (2, "complete")]
    # Both rounds are undone: the collection this migration created is dropped.
    rb = vecmig("rollback", str(spec), "--auto-approve", env=env)
    assert rb.returncode == 0, rb.stdout + rb.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('docs_v2')").fetchone()[0] is None


def test_extra_target_record_without_delete_extra_replans(pg_db: str, tmp_path: Path) -> None:
    """blue-green has no delete_extra in its first round: a record someone added to the new
    collection fails validation, and the next apply re-plans with one (the collection is vecmig's)."""
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path, strategy="blue-green")
    tamper(pg_db, "extra-once")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "target has 1 records not in the source (ids 99999)" in r.stderr
    assert "delete the records not in the source" in r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "which no action of that round removes: re-planned as round 2" in " ".join(r.stdout.split())
    assert "delete_extra.target" in r.stdout and "destructive" not in r.stdout
    assert_target_equals_source(pg_db)


def test_blue_green_second_round_prunes_its_own_collection(pg_db: str, tmp_path: Path) -> None:
    setup(pg_db)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path, strategy="blue-green")
    assert vecmig("apply", str(spec), "--auto-approve", env=env).returncode == 0
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("DELETE FROM docs WHERE id = 9")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VM102" not in r.stdout
    assert_target_equals_source(pg_db)


def test_jsonl_to_pgvector_tampered_target_is_recopied(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE docs (id bigint primary key, embedding vector(4), title text, lang text, "
                     "year int, score float8, published bool, tags text[], body text)")
        conn.execute(TRIGGERS)
    write_jsonl(tmp_path)
    env = env_for(pg_db)
    spec = pg_spec(tmp_path, source="jsonl")
    tamper(pg_db, "target")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "id 5: metadata.title is 't5' in the source, 'tampered' in the target" in " ".join(r.stderr.split())
    tamper(pg_db, None)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "re-copying shard" in r.stdout
    assert target_title(pg_db, 5) == "t5"


# ---- a migration's own records are never "pre-existing" (VM102, delete_extra, before-images)

POLICY_SPEC = """
    version: 1
    name: own
    source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
             fields: {{id: id, vector: embedding, text: body}}}}
    target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: {target},
             fields: {{id: id, vector: embedding, text: body}}}}
    strategy: {{type: big-bang, batch_size: 150, concurrency: 2, shard_size: 3000}}
    policy: {{error: [VM102]}}
    """


def test_killed_apply_resumes_under_vm102_error_policy(pg_db: str, tmp_path: Path) -> None:
    from tests.test_kill_resume import kill_at

    make_docs_table(pg_db, "docs", 12_000, 48, seed=5)
    env = env_for(pg_db)
    spec = write_spec(tmp_path, POLICY_SPEC.format(target="docs_v2"))
    db = tmp_path / ".vecmig" / "own.db"
    assert kill_at(spec, env, db, ("records", 1500), 0.0), "the apply finished before it could be killed"
    with psycopg.connect(pg_db) as conn:
        assert 0 < conn.execute("SELECT count(*) FROM docs_v2").fetchone()[0] < 12_000
    p = vecmig("plan", str(spec), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "VM102" not in p.stdout
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")
    # A later round (the source lost a record) prunes its own copy without --allow-destructive
    # and without VM102: every record in docs_v2 was written by this migration.
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("DELETE FROM docs WHERE id = 7")
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VM102" not in r.stdout
    assert table_rows(pg_db, "docs") == table_rows(pg_db, "docs_v2")


def test_target_with_foreign_records_still_gets_vm102(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 3000, 8, seed=5)
    make_docs_table(pg_db, "theirs", 40, 8, seed=9, start=2990)
    env = env_for(pg_db)
    spec = write_spec(tmp_path, POLICY_SPEC.format(target="theirs"))
    p = vecmig("plan", str(spec), env=env)
    assert p.returncode == 1
    assert "VM102: target already holds 40 records" in p.stdout
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 1 and "VM102" in r.stderr
    # Warned, not refused: it applies (destructively, with before-images), and a later plan
    # still counts the 40 records that were there before this migration, not what it wrote.
    spec.write_text(spec.read_text().replace("error: [VM102]", "warn: [VM102]"))
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1 and "--allow-destructive" in r.stderr
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("DELETE FROM docs WHERE id = 7")
    p = vecmig("plan", str(spec), env=env)
    assert "VM102: target held 40 records before this migration wrote to it (round 1)" in p.stdout, p.stdout
    assert "destructive" in p.stdout


# ---- configuration that would be accepted and then ignored is refused, naming file:line and key

PG = '{provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs}'
PC = '{provider: pinecone, connection: {api_key: "${env:PINECONE_API_KEY}"}, collection: docs'
JL = "{provider: jsonl, connection: {path: out.jsonl}"

IGNORED = [
    # (name, source, target, extra top-level lines, key, reason)
    ("pgvector-namespace", PG[:-1] + ", namespace: prod}", JL + "}", "", "/source/namespace",
     "pgvector has no namespaces"),
    ("jsonl-namespace", PG, JL + ", namespace: prod}", "", "/target/namespace", "jsonl has no namespaces"),
    ("pinecone-source-nested", PC.replace("}, collection", ", nested_metadata: json}, collection") + "}",
     JL + "}", "", "/source/connection/nested_metadata", "applies to a pinecone target, not a source"),
    ("pinecone-source-ready", PC.replace("}, collection", ", ready_timeout: 5}, collection") + "}",
     JL + "}", "", "/source/connection/ready_timeout", "applies to a pinecone target, not a source"),
    ("pinecone-source-shard-size", PC + "}", JL + "}", "strategy: {shard_size: 5000}", "/strategy/shard_size",
     "read one shard per namespace"),
    ("jsonl-index", PG, JL + ", create: {index: {type: hnsw}}}", "", "/target/create/index",
     "builds no index in a jsonl target"),
    ("parquet-metric", PG, "{provider: parquet, connection: {path: out.parquet}, create: {metric: cosine}}", "",
     "/target/create/metric", "records no metric"),
    ("hnsw-lists", PG, PG.replace("docs}", "docs_v2, create: {index: {type: hnsw, lists: 10}}}"), "",
     "/target/create/index/lists", "applies to ivfflat indexes, not hnsw"),
    ("ivfflat-m", PG, PG.replace("docs}", "docs_v2, create: {index: {type: ivfflat, m: 8}}}"), "",
     "/target/create/index/m", "applies to hnsw indexes, not ivfflat"),
    ("none-ef", PG, PG.replace("docs}", "docs_v2, create: {index: {type: none, ef_construction: 8}}}"), "",
     "/target/create/index/ef_construction", "not none"),
    ("pointer-timeout", PG, PC.replace("collection: docs", "collection: docs-v2")
     + ", pointer: {file: live.json, timeout: 30}}", "strategy: {type: blue-green}", "/target/pointer/timeout",
     "no command is set"),
    ("checksums-false", PG, JL + "}", "validate: {completeness: {checksums: false}}",
     "/validate/completeness/checksums", "always compares checksums"),
    ("pinecone-fields-id", PC + ", fields: {id: doc_id}}", JL + "}", "", "/source/fields/id",
     "pinecone records keep the id in a fixed place"),
    ("pinecone-metadata-column", PG, PC.replace("docs", "docs-v2") + ", fields: {metadata: meta}}", "",
     "/target/fields/metadata", "not in one named column"),
    ("pinecone-id-type", PG, PC.replace("docs", "docs-v2") + ", create: {id_type: int}}", "",
     "/target/create/id_type", "keeps every id as a string"),
    ("transition-days-unmetered", PG, JL + "}", "cost: {transition_days: 10}", "/cost/transition_days",
     "neither store is metered"),
    ("cost-unused-provider", PG, JL + "}", "cost: {pinecone: {write_units_per_million: 5.0}}", "/cost/pinecone",
     "neither the source nor the target is pinecone"),
]


@pytest.mark.parametrize(("source", "target", "extra", "key", "reason"), [c[1:] for c in IGNORED],
                         ids=[c[0] for c in IGNORED])
def test_ignored_configuration_is_refused(tmp_path: Path, source: str, target: str, extra: str, key: str,
                                          reason: str) -> None:
    spec = write_spec(tmp_path, f"version: 1\nname: ignored\nsource: {source}\ntarget: {target}\n{extra}\n")
    env = {"SOURCE_DSN": "postgresql://nowhere/db", "PINECONE_API_KEY": "pc-key"}
    r = vecmig("validate", str(spec), env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "spec.yaml:" in line and key in line and reason in line, line


def test_create_settings_an_existing_target_lacks_are_refused(pg_db: str, tmp_path: Path) -> None:
    make_docs_table(pg_db, "docs", 1000, 8, seed=1)
    make_docs_table(pg_db, "docs_v2", 10, 8, seed=2, id_type="text", index="hnsw")
    env = env_for(pg_db)
    for create, key, what in (("{metric: euclidean}", "/target/create/metric", "exists with metric"),
                              ("{id_type: int}", "/target/create/id_type", "exists with text ids")):
        spec = write_spec(tmp_path, f"""
            version: 1
            name: existing
            source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs}}
            target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_v2,
                     create: {create}}}
            """)
        r = vecmig("plan", str(spec), env=env)
        assert r.returncode == 1, r.stdout + r.stderr
        assert key in r.stderr and what in r.stderr, r.stderr
