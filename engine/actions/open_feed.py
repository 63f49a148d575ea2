"""open_feed: start the source's change feed (CDC) before anything is copied, and its inverse.

The feed must exist before the snapshot copy reads a record: every change committed after
it was created is then in the feed, and the catch-up applies whatever the copy missed.
"""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.errors import TerminalError
from vecmig.model import Action
from vecmig.providers import Provider
from vecmig.providers.base import ChangeFeed
from vecmig.state.rows import ActionRow

RESOURCE_KIND = "change_feed"


def source_feed(ctx: RunContext) -> tuple[Provider, ChangeFeed]:
    """A connected source and its change feed for this migration (the caller closes both)."""
    src = ctx.source()
    feed = src.change_feed(ctx.spec.name)
    if feed is None:
        src.close()
        raise TerminalError(f"source provider {ctx.spec.source.provider} has no change feed",
                            hint="use strategy big-bang or blue-green for this source")
    return src, feed


def mark_dropped(ctx: RunContext, round_no: int, action_id: str) -> None:
    """The feed's journal entries of ``action_id`` say it is gone (plan stops reporting it)."""
    for r in ctx.state.resources(round_no):
        if r["kind"] == RESOURCE_KIND and r["action_id"] == action_id and r["state"] != "reverted":
            ctx.state.journal_state(r["id"], "reverted")


class OpenFeed(ActionKind):
    kind = "open_feed"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        src, feed = source_feed(ctx)
        try:
            name = feed.name
            if name != action.params["feed"]:
                raise TerminalError(f"the source's change feed is now named {name}, the plan says "
                                    f"{action.params['feed']}: the source connection points elsewhere",
                                    hint="plan again")
            # Intent first: a kill between here and the journal's "done" still leaves a record
            # that plan reports and rollback drops.
            rid = ctx.state.journal_intent(ctx.round, action.id, RESOURCE_KIND, "source", name)
            start = feed.create()
            ctx.state.journal_state(rid, "done")
        finally:
            feed.close()
            src.close()
        return {"feed": name, "start": start}

    def undo(self, ctx: RunContext, action: Action, row: ActionRow) -> None:
        src, feed = source_feed(ctx)
        try:
            feed.drop()
        finally:
            feed.close()
            src.close()
        mark_dropped(ctx, ctx.round, action.id)
