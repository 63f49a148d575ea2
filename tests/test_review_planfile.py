"""Saved plans are self-contained, and each reason to refuse one has its own message."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import psycopg
import pytest

from tests.support.cli import vecmig
from tests.support.data import make_docs_table
from tests.support.specs import SECRET, big_bang_spec, env_for
from vecmig.model import canonical_json, sha256_hex
from vecmig.schemas import load as load_schema
from vecmig.spec_loader import load_spec, public_of_file


def reseal(path: Path, edit: dict[str, object]) -> None:
    """Change a saved plan *and* fix its checksum, to reach the checks behind the checksum."""
    body = json.loads(path.read_text())
    body.pop("checksum")
    body.update(edit)
    body["checksum"] = sha256_hex(canonical_json(body))
    path.write_text(json.dumps(body))


@pytest.fixture
def planned(pg_db: str, tmp_path: Path) -> tuple[Path, Path, dict[str, str], str]:
    make_docs_table(pg_db, "docs", 300, 8)
    spec = big_bang_spec(tmp_path)
    env = env_for(pg_db)
    out = tmp_path / "plan.json"
    r = vecmig("plan", str(spec), "-out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    return spec, out, env, pg_db


def test_saved_plan_is_self_contained(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    spec, out, env, _ = planned
    body = json.loads(out.read_text())
    jsonschema.validate(body, load_schema("plan.v1"))
    assert body["spec_file"] == str(spec.resolve()) and body["spec_dir"] == str(spec.parent.resolve())
    assert body["spec"]["source"]["connection"]["dsn"] == "${env:SOURCE_DSN}"
    assert body["source"]["fingerprint"] and body["target"]["exists"] is False
    assert body["tool_version"] and body["state"] == {"lineage": None, "serial": 0, "round": 1}
    assert SECRET not in out.read_text()
    # The spec hash of the file as written equals the one the loader computes.
    assert public_of_file(spec)[1] == load_spec(spec, env=env).spec_hash == body["spec_hash"]
    # Moving the spec away does not matter: the plan carries it.
    spec.rename(spec.with_suffix(".moved"))
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_refused_when_edited(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    _, out, env, _ = planned
    body = json.loads(out.read_text())
    body["actions"][0]["reason"] = "trust me"
    out.write_text(json.dumps(body))
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "was modified after it was written (checksum mismatch)" in r.stderr


def test_refused_when_pointed_at_another_spec(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    _, out, env, _ = planned
    body = json.loads(out.read_text())
    body["spec_file"] = "/elsewhere/spec.yaml"  # the location is covered by the checksum too
    out.write_text(json.dumps(body))
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "checksum mismatch" in r.stderr


def test_refused_when_made_by_an_incompatible_version(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    _, out, env, _ = planned
    reseal(out, {"tool_version": "7.0.0"})
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "was made by vecmig 7.0.0, which is incompatible" in r.stderr
    reseal(out, {"format_version": 99})
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "has format version 99" in r.stderr


def test_refused_when_state_moved_on(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    spec, out, env, _ = planned
    assert vecmig("apply", str(spec), "--auto-approve", env=env).returncode == 0
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "saved plan is stale: state serial changed" in r.stderr


def test_refused_when_stores_changed(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    _, out, env, dsn = planned
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE docs_v2 (LIKE docs INCLUDING ALL)")
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "saved plan is stale: target changed since planning (" in r.stderr
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE docs_v2")
        conn.execute("DELETE FROM docs WHERE id = 7")
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "saved plan is stale: source changed since planning (count: 300 → 299" in r.stderr


def test_refused_when_spec_value_changed(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    spec, out, env, _ = planned
    text = spec.read_text()
    spec.write_text(text.replace("batch_size: 200", "batch_size: 250"))
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1
    assert f"the spec file {spec.resolve()} changed since {out} was made (changed: /strategy/batch_size)" in r.stderr
    assert "vecmig plan" in r.stderr
    assert not (spec.parent / ".vecmig").exists(), "nothing may be written for a refused plan"
    # Comments and formatting are not values.
    spec.write_text("# reviewed\n" + text)
    # A different secret (same database, another connection string) is not a change.
    env2 = {k: v + "&connect_timeout=17" for k, v in env.items()}
    r = vecmig("apply", str(out), env=env2)
    assert r.returncode == 0, r.stdout + r.stderr


def test_refused_when_spec_no_longer_parses(planned: tuple[Path, Path, dict[str, str], str]) -> None:
    spec, out, env, _ = planned
    spec.write_text(spec.read_text() + "\n  broken: [\n")
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "was changed since" in r.stderr and "no longer parses" in r.stderr
