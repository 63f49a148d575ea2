"""The shared copy pipeline's planning helpers, on a PlanContext built by the planner."""

from __future__ import annotations

from dataclasses import replace

from tests.support.memory import Harness
from vecmig import planner
from vecmig.refresh import refresh
from vecmig.strategies.common import validate_ids


def test_validate_ids_skipped_when_the_store_keys_records_by_id(h: Harness) -> None:
    h.seed(20)
    spec = h.spec()
    ctx = planner.context(spec, None, refresh(spec))
    assert ctx.source_provider is not None
    assert validate_ids(ctx) == []  # the memory store is keyed by id: nothing to check


def test_validate_ids_planned_when_no_provider_vouches_for_the_ids(h: Harness) -> None:
    # A context without provider instances (the field is optional) used to raise AttributeError;
    # nothing then vouches for unique ids, so the read-only check is planned.
    h.seed(20)
    spec = h.spec()
    ctx = replace(planner.context(spec, None, refresh(spec)), source_provider=None)
    [action] = validate_ids(ctx)
    assert action.id == "validate.ids"
    assert action.kind == "validate_ids"
    assert "all 20 must be distinct" in action.reason
