"""Lint policy (raise, lower, silence findings by code) and the explicit flag for destructive actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import table_rows, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import big_bang_spec, env_for
from tests.test_review_markdown import make_plan
from vecmig import policy
from vecmig.errors import SpecError
from vecmig.spec_loader import load_spec
from vecmig.state.store import StateStore


def foreign_target(dsn: str) -> None:
    """A target that already holds data: the plan gets VM102 and a destructive delete_extra."""
    make_docs_table(dsn, "docs", 300, 8, seed=1)
    make_docs_table(dsn, "shared", 120, 8, seed=2, start=250)


def test_policy_levels_unit() -> None:
    plan = make_plan(2)
    assert [w.severity for w in plan.warnings] == ["warning"]
    raised = policy.apply(plan, policy.Policy({"VM101": "error"}))
    assert [w.severity for w in raised.warnings] == ["error"] and policy.errors(raised)
    silenced = policy.apply(plan, policy.Policy({"VM101": None}))
    assert silenced.warnings == () and "lint findings silenced by policy: VM101" in silenced.notes
    assert policy.apply(silenced, policy.Policy({"VM101": None})).notes == silenced.notes  # idempotent
    lowered = policy.apply(raised, policy.Policy({"VM101": "warning"}))
    assert not policy.errors(lowered)
    with pytest.raises(policy.PolicyError, match=r"error-level lint finding.*VM101"):
        policy.check_apply_allowed(raised, allow_destructive=True)
    destructive = make_plan(2, destructive=True)
    with pytest.raises(policy.PolicyError, match=r"destructive actions: decommission\.source"):
        policy.check_apply_allowed(destructive, allow_destructive=False)
    policy.check_apply_allowed(destructive, allow_destructive=True)


def test_error_level_finding_fails_plan_and_apply(pg_db: str, tmp_path: Path) -> None:
    foreign_target(pg_db)
    spec = big_bang_spec(tmp_path, target="shared", extra="policy: {error: [VM102]}")
    env = env_for(pg_db)
    out = tmp_path / "plan.json"
    r = vecmig("plan", str(spec), "-out", str(out), "--detailed-exitcode", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error VM102" in r.stdout and "delete_extra.target" in r.stdout, "the plan is printed first"
    assert "1 error-level lint finding(s): VM102" in r.stderr and "not saved" in r.stderr
    assert not out.exists()
    r = vecmig("plan", str(spec), "--format", "markdown", env=env)
    assert r.returncode == 1 and "| `VM102` | **error** |" in r.stdout and "apply will refuse" in r.stdout
    r = vecmig("apply", str(spec), "--auto-approve", "--allow-destructive", env=env)
    assert r.returncode == 1 and "error-level lint finding(s): VM102" in r.stderr
    assert not (tmp_path / ".vecmig").exists(), "refused before any state was written"


def test_ignore_and_warn_and_policy_file(pg_db: str, tmp_path: Path) -> None:
    foreign_target(pg_db)
    (tmp_path / "team-policy.yaml").write_text("error: [VM102, VM103]\nignore: [VM101]\n")
    # The file raises VM102; the spec's own list lowers it back to a warning (inline wins).
    spec = big_bang_spec(tmp_path, target="shared", extra="policy: {file: team-policy.yaml, warn: [VM102]}")
    env = env_for(pg_db)
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert [(w["code"], w["severity"]) for w in json.loads(r.stdout)["warnings"]] == [("VM102", "warning")]
    spec = big_bang_spec(tmp_path, target="shared", extra="policy: {file: team-policy.yaml}")
    r = vecmig("plan", str(spec), "--json", env=env)
    assert r.returncode == 1 and json.loads(r.stdout)["warnings"][0]["severity"] == "error"
    spec = big_bang_spec(tmp_path, target="shared", extra="policy: {ignore: [VM102]}")
    r = vecmig("plan", str(spec), env=env)
    assert r.returncode == 0 and "VM102" not in r.stdout.replace("silenced by policy: VM102", "")
    assert "lint findings silenced by policy: VM102" in r.stdout


@pytest.mark.parametrize(("extra", "where", "what"), [
    ("policy: {error: [VM102], ignore: [VM102]}", "/policy/ignore/0", "listed under both policy.error and "
                                                                      "policy.ignore"),
    ("policy: {error: [vm102]}", "/policy/error/0", "is not a lint code"),
    ("policy: {file: nowhere.yaml}", "/policy/file", "policy file not found"),
    ("policy: {block: [VM102]}", "/policy/block", "block"),
])
def test_bad_policy_is_a_spec_error(tmp_path: Path, extra: str, where: str, what: str) -> None:
    spec = big_bang_spec(tmp_path, extra=extra)
    with pytest.raises(SpecError) as e:
        load_spec(spec, env={"SOURCE_DSN": "postgresql://h/a", "TARGET_DSN": "postgresql://h/a"})
    assert where in str(e.value.where) and what in e.value.message
    r = vecmig("validate", str(spec), env={"SOURCE_DSN": "postgresql://h/a", "TARGET_DSN": "postgresql://h/a"})
    assert r.returncode == 1 and what in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_policy_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("error: VM102\n")
    spec = big_bang_spec(tmp_path, extra="policy: {file: p.yaml}")
    r = vecmig("validate", str(spec), env={"SOURCE_DSN": "postgresql://h/a", "TARGET_DSN": "postgresql://h/a"})
    assert r.returncode == 1 and "p.yaml" in r.stderr and "policy.error must be a list of lint codes" in r.stderr


def test_destructive_actions_need_the_flag(pg_db: str, tmp_path: Path) -> None:
    foreign_target(pg_db)
    before = table_rows(pg_db, "shared")
    spec = big_bang_spec(tmp_path, target="shared")
    env = env_for(pg_db)
    r = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert r.returncode == 1
    assert "the plan contains destructive actions: delete_extra.target" in r.stderr
    assert "--allow-destructive" in r.stderr
    assert not (tmp_path / ".vecmig").exists() and table_rows(pg_db, "shared") == before

    out = tmp_path / "plan.json"
    assert vecmig("plan", str(spec), "-out", str(out), env=env).returncode == 0
    r = vecmig("apply", str(out), env=env)
    assert r.returncode == 1 and "destructive actions: delete_extra.target" in r.stderr
    assert table_rows(pg_db, "shared") == before
    r = vecmig("apply", str(out), "--allow-destructive", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    state = StateStore.open("e2e", tmp_path / ".vecmig" / "e2e.db", None, create=False)
    assert state is not None
    authorised = [json.loads(e["data_json"]) for e in state.audit_events() if e["event"] == "apply_authorised"]
    assert len(authorised) == 1
    assert authorised[0]["allow_destructive"] is True and authorised[0]["approval"] == "saved-plan"
    assert authorised[0]["destructive_actions"] == ["delete_extra.target"]
    assert {"code": "VM102", "severity": "warning"} in authorised[0]["findings"]
