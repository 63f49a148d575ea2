"""The example CI workflow: plan on pull requests into one comment, apply exactly that file on merge."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.cli import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "vecmig-plan.yml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) + str(s.get("with", "")) for s in job["steps"])


def test_triggers_and_jobs() -> None:
    wf = load()
    assert set(wf["on"]) == {"pull_request", "push"} and wf["on"]["push"]["branches"] == ["main"]
    assert wf["jobs"]["plan"]["if"] == "github.event_name == 'pull_request'"
    assert wf["jobs"]["apply"]["if"] == "github.event_name == 'push'"
    assert wf["permissions"] == {"contents": "read"}


def test_plan_job_comments_once_and_uploads_the_plan() -> None:
    job = load()["jobs"]["plan"]
    text = steps(job)
    assert 'vecmig plan "$SPEC" --format markdown -out plan.json > plan.md' in text
    assert "<!-- vecmig-ci:" in text and "updateComment" in text and "createComment" in text
    assert "actions/upload-artifact@v4" in text and "plan.json" in text
    assert job["permissions"]["pull-requests"] == "write"


def test_apply_job_applies_exactly_the_reviewed_file() -> None:
    job = load()["jobs"]["apply"]
    text = steps(job)
    assert "listPullRequestsAssociatedWithCommit" in text and "listWorkflowRuns" in text
    assert "actions/download-artifact@v4" in text and "run-id" in text
    assert "vecmig apply plan.json $FLAGS" in text and "vecmig plan" not in text
    assert "vecmig:allow-destructive" in text and "vecmig state verify" in text
    assert job["concurrency"]["cancel-in-progress"] is False
