"""Stand-in for the planner's part of issue 14 until it lands (plan14): a planned Plan gets
``embed`` frozen into every copy action that lacks it, from the spec's ``transform.embed`` and
the model as planning would load it (the completeness check's ``reembedded`` flag is the
planner's own: ``strategies.common.reembedded``). ``install()`` wraps the
``make_plan`` the operations layer calls, so the CLI (``python -m tests.support.reembed_cli``)
plans, applies, resumes and rolls back through it. Delete this module (and ``reembed_cli``) once
the planner sets these itself; the tests then call the real ``vecmig`` CLI.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import ROOT, _RecordedPopen, record
from vecmig.actions.params import EmbedParams
from vecmig.actions.reembed import shared_model
from vecmig.embed.settings import config_from_spec
from vecmig.model import Plan
from vecmig.spec import Spec


def with_embed(plan: Plan, spec: Spec) -> Plan:
    embed = spec.transform.embed
    if embed is None:
        return plan
    model, _ = shared_model(config_from_spec(embed))
    frozen = EmbedParams.from_spec(embed, identity=model.identity, dimension=model.dimension).to_json()
    actions = []
    for a in plan.actions:
        if a.kind == "copy_shard" and "embed" not in a.params:
            a = dataclasses.replace(a, params={**a.params, "embed": frozen})
        actions.append(a)
    return dataclasses.replace(plan, actions=tuple(actions))


def _make_plan(spec: Spec, state: Any, seen: Any) -> Plan:
    import vecmig.planner as planner

    return with_embed(planner.make_plan(spec, state, seen), spec)


def install(setattr: Any = setattr) -> None:
    """Route the operations' planning through :func:`with_embed` (``setattr``: pytest's
    ``monkeypatch.setattr`` in-process, so it is undone after the test)."""
    import vecmig.operations.apply as apply_op
    import vecmig.operations.plan as plan_op

    setattr(apply_op, "make_plan", _make_plan)
    setattr(plan_op, "make_plan", _make_plan)


def _argv(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "tests.support.reembed_cli", *args]


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}


def vecmig(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``tests.support.cli.vecmig`` through the stand-in planner (outputs checked the same way)."""
    r = subprocess.run(_argv(args), env=_env(env), cwd=ROOT, capture_output=True, text=True, input="",
                       timeout=timeout)
    record(args, r.returncode, r.stdout, r.stderr)
    return r


def spawn(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    return _RecordedPopen(args, _argv(args), env=_env(env), cwd=cwd or ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
