"""validate_ids: every source id once and of the plan's one id type, before anything is written.

A target holds one record per id, so a repeated source id would be copied once and the
target would hold fewer records than the plan promised (identical repeats included: the
source does not hold what its count says). A source mixing integer and string ids would
merge 5 and "5" in any store that keeps one id type. Both are refused here, naming the
records and where they are (``src.jsonl:6 and :302``, ``src.parquet row 301``, a table's
``ctid``), before the first copy batch. See :mod:`vecmig.ids`.

Only the ids are read; memory holds an 8-byte hash per id. Stores that guarantee unique ids
of one type (a pgvector table with a primary key, Pinecone) get no such action in the plan.
"""

from __future__ import annotations

from typing import Any

from vecmig import namespaces
from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import TerminalError
from vecmig.model import Action
from vecmig.state.rows import ActionRow


class ValidateIds(ActionKind):
    kind = "validate_ids"
    effect = "read"
    runs_beside_others = True

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        ctx.reporter.start(action, action.estimate.records, 0)
        src = ctx.source()
        try:
            report = src.check_ids()
        finally:
            src.close()
        ctx.reporter.advance(action, report.checked)
        found = report.problem(action.params.get("id_type"))
        if found is not None and found[0] == "VM107":
            # The same id in two source namespaces: a collision the namespace mapping must resolve.
            found = namespaces.collision(ctx.spec, report.repeated_message()) or found
        if found is not None:
            code, message, hint = found
            raise TerminalError(f"{message} [{code}]", hint=f"{hint}; nothing was written")
        return {"ids": report.checked, "id_type": report.id_type}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        return None  # read-only
