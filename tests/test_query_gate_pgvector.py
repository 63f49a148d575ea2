"""validate.queries against real PostgreSQL + pgvector, through the CLI.

The source is a clustered, unit-norm table with an HNSW index (cosine) and a view ``docs_live``
readers use. Blue-green builds the target beside it and swaps the view only when the gate
passes:

* an HNSW target (the same parameters) passes, filtered file queries included, and the view
  switches;
* an IVFFlat target of 200 lists searched with pgvector's default ``probes = 1`` loses recall:
  exit 1, one line naming ``ivfflat lists=200 probes=1`` and the advice, the view untouched, the
  report in ``vecmig report`` and ``state export``;
* a target made beforehand with another metric (euclidean): on unit-norm vectors the ranking
  is the same, so overlap and recall pass, and only the scores tell, which ``max_score_diff``
  gates.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for, write_spec

N, DIM = 3000, 32


def view_target(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid "
                            "JOIN pg_class c ON c.oid = d.refobjid WHERE w.ev_class = 'docs_live'::regclass "
                            "AND c.relname <> 'docs_live'").fetchall()
    return [r[0] for r in rows]


def source(dsn: str) -> None:
    make_docs_table(dsn, "docs", N, DIM, index="hnsw")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE VIEW docs_live AS SELECT * FROM docs")


def spec_for(tmp_path: Path, create: str, queries: str) -> Path:
    return write_spec(tmp_path, f"""
        version: 1
        name: gate-pg
        source: {{provider: pgvector, connection: {{dsn: "${{env:SOURCE_DSN}}"}}, collection: docs,
                 fields: {{id: id, vector: embedding, text: body}}}}
        target: {{provider: pgvector, connection: {{dsn: "${{env:TARGET_DSN}}"}}, collection: docs_green,
                 alias: docs_live, fields: {{id: id, vector: embedding, text: body}}{create}}}
        strategy: {{type: blue-green, batch_size: 500, shard_size: 1500}}
        validate: {{queries: {queries}}}
        """)


def report(spec: Path, env: dict[str, str]) -> dict[str, object]:
    r = vecmig("report", str(spec), "--format", "json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_an_hnsw_target_passes_with_filtered_queries_and_the_view_switches(pg_db: str, tmp_path: Path) -> None:
    source(pg_db)
    with psycopg.connect(pg_db) as conn:
        rows = conn.execute("SELECT embedding::text FROM docs ORDER BY id DESC LIMIT 3").fetchall()
    lines = [{"id": f"en-{i}", "vector": json.loads(v), "filter": {"lang": "en"}} for i, (v,) in enumerate(rows)]
    lines.append({"id": "fr-or-es", "vector": json.loads(rows[0][0]), "filter": {"lang": {"$in": ["fr", "es"]}},
                  "k": 5})
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = spec_for(tmp_path, ", create: {metric: cosine, index: {type: hnsw, m: 16, ef_construction: 64}}",
                    "{sample: 40, file: queries.jsonl, min_overlap: 0.9, min_recall: 0.9, max_recall_drop: 0.05}")
    env = env_for(pg_db)
    plan = tmp_path / "plan.json"
    r = vecmig("plan", str(spec), "-out", str(plan), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("40 sampled + 4 file queries, k=10: overlap ≥ 0.9, recall ≥ 0.9, recall drop ≤ 0.05, errors ≤ 0%"
            in r.stdout)
    r = vecmig("apply", str(plan), env=env)  # the saved plan, exactly
    assert r.returncode == 0, r.stdout + r.stderr
    assert view_target(pg_db) == ["docs_green"]
    got = report(spec, env)
    assert got["status"] == "done" and got["failures"] == []
    agg = got["report"]["aggregate"]  # type: ignore[index]
    assert agg["queries"] == 44 and agg["overlap"] >= 0.9 and agg["recall_target"] >= 0.9
    named = {q["name"]: q for q in got["report"]["queries"]}  # type: ignore[index]
    assert named["fr-or-es"]["filter"] == {"lang": {"$in": ["fr", "es"]}}
    assert named["en-0"]["recall_target"] >= 0.8
    settings = got["search_settings"]["target"]  # type: ignore[index]
    assert (settings["type"], settings["m"], settings["ef_construction"]) == ("hnsw", 16, 64)


def test_a_poor_ivfflat_target_fails_with_exit_1_and_the_view_stays(pg_db: str, tmp_path: Path) -> None:
    source(pg_db)
    spec = spec_for(tmp_path, ", create: {metric: cosine, index: {type: ivfflat, lists: 200}}",
                    "{sample: 40, seed: 5, min_overlap: 0.9, min_recall: 0.9}")
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    line = next(x for x in r.stderr.splitlines() if "query parity failed" in x)
    assert "recall@10 " in line and "< 0.9 on target: ivfflat lists=200 probes=1" in line
    assert "raise probes (now 1) or build hnsw" in line
    assert view_target(pg_db) == ["docs"], "the view must still serve the source after a failed gate"
    got = report(spec, env)
    assert got["status"] == "failed"
    agg = got["report"]["aggregate"]  # type: ignore[index]
    assert agg["recall_target"] < 0.9 <= agg["recall_source"]
    md = vecmig("report", str(spec), env=env)
    assert "**Gate: failed**" in md.stdout and "ivfflat lists=200 probes=1" in md.stdout
    r = vecmig("state", "export", str(spec), env=env)
    assert r.returncode == 0
    exported = json.loads(r.stdout)
    gate = next(a for a in exported["actions"] if a["action_id"] == "validate.queries")
    assert gate["status"] == "failed" and gate["result"]["failures"]
    cut = next(a for a in exported["actions"] if a["action_id"] == "cutover.alias")
    assert cut["status"] == "pending"
    # The same apply again runs the gate again (the copy is not redone) and fails again.
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1 and "query parity failed" in r.stderr
    assert "copy.shard" not in r.stdout
    # Readers' sessions searching with more probes: the target is fixed, and the gate passes.
    with psycopg.connect(pg_db, autocommit=True) as conn:
        db = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(f'ALTER DATABASE "{db}" SET ivfflat.probes = 200')
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert view_target(pg_db) == ["docs_green"]
    assert report(spec, env)["status"] == "done"


def test_a_target_with_another_metric_is_caught_by_its_scores(pg_db: str, tmp_path: Path) -> None:
    source(pg_db)
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE TABLE docs_green (LIKE docs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        conn.execute("ALTER TABLE docs_green ADD PRIMARY KEY (id)")
        conn.execute("CREATE INDEX ON docs_green USING hnsw (embedding vector_l2_ops)")
    spec = spec_for(tmp_path, "", "{sample: 30, max_score_diff: 0.001}")
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(x for x in r.stderr.splitlines() if "query parity failed" in x)
    assert "scores differ by up to" in line and "the target searches by euclidean, the source by cosine" in line
    assert view_target(pg_db) == ["docs"]
    agg = report(spec, env)["report"]["aggregate"]  # type: ignore[index]
    assert agg["overlap"] >= 0.9  # unit-norm vectors: the same neighbours, other scores


def test_cdc_runs_the_gate_after_the_catch_up_and_before_the_switch(pg_db: str, tmp_path: Path) -> None:
    source(pg_db)
    spec = write_spec(tmp_path, """
        version: 1
        name: gate-cdc
        source: {provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs,
                 fields: {id: id, vector: embedding, text: body}}
        target: {provider: pgvector, connection: {dsn: "${env:TARGET_DSN}"}, collection: docs_green,
                 alias: docs_live, fields: {id: id, vector: embedding, text: body},
                 create: {metric: cosine, index: {type: hnsw, m: 16, ef_construction: 64}}}
        strategy: {type: cdc, batch_size: 500, shard_size: 1500, max_lag: 0, freeze_writes: true}
        validate: {queries: {sample: 20, min_overlap: 0.9, min_recall: 0.9}}
        """)
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = [a["id"] for a in json.loads(r.stdout)["actions"]]
    assert ids[ids.index("catch_up.source"):] == ["catch_up.source", "validate.completeness", "validate.queries",
                                                  "cutover.alias", "close_feed.source"]
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert view_target(pg_db) == ["docs_green"]
    assert report(spec, env)["status"] == "done"
