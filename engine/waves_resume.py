"""A saved plan of strategy phased, applied again after it stopped at a wave gate.

Terraform's rule (a saved plan applies to exactly the world it was made from) would refuse it:
the state's serial moved and the target holds the waves already written. Both are vecmig's own
doing, journaled in the round this plan started, so the plan continues that round with the
actions not done yet, exactly as `vecmig apply SPEC` resumes it; the source must still be the
one the plan was made from.
"""

from __future__ import annotations

import json
from dataclasses import replace

from vecmig.errors import StalePlanError
from vecmig.model import Inventory, Plan
from vecmig.planner import remaining_actions, without_content
from vecmig.refresh import Refreshed
from vecmig.state.store import StateStore


def continues_paused(plan: Plan, state: StateStore) -> bool:
    """The plan started the open round and that round reached a wave gate."""
    open_round = state.open_round()
    if open_round is None or open_round["round"] != plan.round or open_round["status"] != "in_progress":
        return False
    if open_round["plan_hash"] != plan.plan_hash or open_round["spec_hash"] != plan.spec_hash:
        return False
    return any(a["kind"] == "approve_wave" and a["status"] == "done" for a in state.actions(plan.round))


def remaining(plan: Plan, state: StateStore, seen: Refreshed) -> Plan:
    open_round = state.open_round()
    assert open_round is not None  # continues_paused said so
    recorded = Inventory.from_json(json.loads(open_round["plan_json"])["source"])
    if without_content(recorded).fingerprint != without_content(seen.source).fingerprint:
        raise StalePlanError("saved plan is stale: the source changed since its first waves were applied",
                             hint="run `vecmig plan -out FILE` again (the waves done stay; rollback undoes them)")
    return replace(plan, actions=tuple(remaining_actions(state, open_round)))
