"""close_feed: the last action of a cdc round: end the write freeze and drop the change feed.

Dropping the feed is what lets the source forget the changes it retained for vecmig: a feed
left behind keeps WAL (PostgreSQL) until the disk fills.
"""

from __future__ import annotations

from typing import Any

from vecmig.actions.base import ActionKind, RunContext
from vecmig.actions.catch_up import HOLD
from vecmig.actions.open_feed import mark_dropped, source_feed
from vecmig.model import Action


class CloseFeed(ActionKind):
    kind = "close_feed"

    def run(self, ctx: RunContext, action: Action) -> dict[str, Any]:
        frozen = ctx.release_hold(HOLD)  # writers go back to the source (readers moved at cutover)
        src, feed = source_feed(ctx)
        try:
            retained = feed.retained_bytes()
            feed.drop()
        finally:
            feed.close()
            src.close()
        mark_dropped(ctx, ctx.round, str(action.params["opened_by"]))
        return {"dropped": action.params["feed"], "retained_bytes": retained, "unfrozen": frozen}
