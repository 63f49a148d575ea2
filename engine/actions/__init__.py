"""One class per action kind, each with its inverse beside it."""

from __future__ import annotations

from vecmig.actions.approve_wave import ApproveWave
from vecmig.actions.base import ActionKind, Reporter, RunContext, SilentReporter
from vecmig.actions.build_index import BuildIndex
from vecmig.actions.catch_up import CatchUp
from vecmig.actions.catch_up_diff import CatchUpByDiff
from vecmig.actions.close_feed import CloseFeed
from vecmig.actions.copy_shard import CopyShard
from vecmig.actions.create_collection import CreateCollection
from vecmig.actions.cutover import Cutover
from vecmig.actions.decommission import Decommission
from vecmig.actions.delete_extra import DeleteExtra
from vecmig.actions.finalize import Finalize
from vecmig.actions.open_feed import OpenFeed
from vecmig.actions.replay import ReplayQueries
from vecmig.actions.undo import Undo
from vecmig.actions.validate_completeness import ValidateCompleteness
from vecmig.actions.validate_ids import ValidateIds
from vecmig.actions.validate_queries import ValidateQueries
from vecmig.actions.validate_retrieval import ValidateRetrieval
from vecmig.actions.watch import Watch

KINDS: dict[str, ActionKind] = {
    k.kind: k()
    for k in (ValidateIds, CreateCollection, CopyShard, Finalize, DeleteExtra, BuildIndex, ValidateCompleteness,
              Cutover, Decommission, Undo, OpenFeed, CatchUp, CatchUpByDiff, CloseFeed, ApproveWave,
              ValidateQueries, ReplayQueries, Watch, ValidateRetrieval)
}

__all__ = ["KINDS", "ActionKind", "Reporter", "RunContext", "SilentReporter"]
