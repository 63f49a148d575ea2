"""`vecmig report SPEC`: the latest comparison report of a migration, as state keeps it.

Any done or failed action whose result holds ``{"title": ..., "report": {...}, "failures":
[...]}`` is a report (validate.queries writes one; so does any other action comparing the two
sides the same way, a parallel run's replay included; validate.retrieval's, whose report is of
kind "retrieval", is rendered as the old model against the new): the newest one (of ``round`` when given)
is shown, as Markdown or as the JSON state holds. Read-only: no lock, no store is contacted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecmig.errors import VecmigError
from vecmig.operations.common import existing_state, load
from vecmig.operations.ui import Ui
from vecmig.quality.report import render_markdown
from vecmig.quality.retrieval_report import render_retrieval
from vecmig.state.rows import ActionRow


@dataclass(frozen=True)
class ReportRequest:
    spec_path: Path
    round: int | None = None


@dataclass(frozen=True)
class ComparisonReport:
    migration: str
    round: int
    action: str
    status: str  # done (the gate passed) or failed
    title: str
    failures: tuple[str, ...]
    result: dict[str, Any] = field(default_factory=dict)  # the action's whole result, as state keeps it
    source: str = "source"
    target: str = "target"

    def to_json(self) -> dict[str, Any]:
        return {"migration": self.migration, "round": self.round, "action": self.action, "status": self.status,
                **self.result}

    def markdown(self) -> str:
        if self.result["report"].get("kind") == "retrieval":  # validate.retrieval: old model against new
            models = self.result.get("models") or {}
            return render_retrieval(self.result["report"], title=f"{self.title}: round {self.round}, {self.action}",
                                    failures=list(self.failures), old=str(models.get("old", self.source)),
                                    new=str(models.get("new", self.target)), file=self.result.get("file"))
        text = render_markdown(self.result["report"], title=f"{self.title}: round {self.round}, {self.action}",
                               failures=list(self.failures), source=self.source, target=self.target)
        settings = self.result.get("search_settings") or {}
        lines = [f"- {side} search: `{json.dumps(settings[side], sort_keys=True)}`"
                 for side in ("source", "target") if settings.get(side)]
        return text + ("\n" + "\n".join(lines) + "\n" if lines else "")


def report_of(row: ActionRow) -> dict[str, Any] | None:
    """The row's result when it is a comparison report (the shape above), else None."""
    if row["status"] not in ("done", "failed") or not row["result_json"]:
        return None
    try:
        result = json.loads(row["result_json"])
    except ValueError:
        return None
    if (isinstance(result, dict) and isinstance(result.get("report"), dict)
            and isinstance(result.get("failures"), list) and isinstance(result.get("title"), str)):
        return result
    return None


def comparison_report(request: ReportRequest, ui: Ui) -> ComparisonReport:
    spec = load(request.spec_path, ui)
    state = existing_state(spec, hint="nothing was applied yet: validate.queries writes its report during apply")
    found: list[tuple[ActionRow, dict[str, Any]]] = []
    for row in state.all_actions():
        if request.round is not None and row["round"] != request.round:
            continue
        result = report_of(row)
        if result is not None:
            found.append((row, result))
    if not found:
        where = f" in round {request.round}" if request.round is not None else ""
        raise VecmigError(f"no comparison report in the state of {spec.name}{where}",
                          hint="add `validate: {queries: {sample: 200}}` to the spec and run `vecmig apply`"
                          if request.round is None else "run `vecmig state list SPEC` to see the rounds")
    row, result = max(found, key=lambda f: (f[0]["round"], f[0]["finished"] or "", f[0]["seq"]))
    return ComparisonReport(
        migration=spec.name, round=row["round"], action=row["action_id"], status=row["status"],
        title=str(result["title"]), failures=tuple(str(f) for f in result["failures"]), result=result,
        source=spec.source.label, target=spec.target.label)
