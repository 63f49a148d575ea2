"""A re-embedded target whose embedding settings changed since it was written (``transform.embed``).

The record diff of a re-embedded target leaves vectors out (``vecmig.diff.reembedded``): they
are a function of each record's text and of the model, and the model is not in any record. So
another model (a new name, other weights in the same folder, another endpoint, ``api.dimension``),
another text template or another ``keep_old`` would diff as "no change" and be silently ignored.
The planner compares the settings planning loaded now with those frozen into the copy actions of
the newest applied round; where they differ, every record is to change and the copy runs whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from vecmig.actions.params import EmbedParams
from vecmig.diff import RecordDiff
from vecmig.diff.model import RecordCounts
from vecmig.model import Action, Warning_
from vecmig.state.reader import StateReader

EMBEDDING_CHANGED = "VM158"
HINT = ("nothing to do if the new settings are meant: apply re-embeds every record; else restore "
        "transform.embed as it was")


@dataclass(frozen=True)
class Written:
    """How the newest applied round wrote the target's vectors: ``embed`` None for the source's own."""

    round: int
    embed: EmbedParams | None


def last_written(state: StateReader | None) -> Written | None:
    """The newest round still on record (not rolled back) whose plan copied records: how it
    embedded them. None: no round has copied anything yet."""
    if state is None:
        return None
    for rnd in sorted(state.rounds(), key=lambda r: r["round"], reverse=True):
        if rnd["status"] == "rolled_back":
            continue
        copies = [a for a in json.loads(rnd["plan_json"]).get("actions", []) if a.get("kind") == "copy_shard"]
        if copies:
            raw = (copies[0].get("params") or {}).get("embed")
            return Written(rnd["round"], None if raw is None else EmbedParams.from_json(raw))
    return None


def _settings(p: EmbedParams) -> dict[str, Any]:
    return {"model": p.identity, "dimension": p.dimension, "text": p.text, "keep_old": p.keep_old}


def changed(written: Written | None, now: EmbedParams | None) -> str | None:
    """What changed in how the target's vectors are made, in words; None: nothing (or nothing
    written yet). From the source's own vectors to a model's is a change too: the diff of a
    re-embedded target would not see it."""
    if written is None or now is None:
        return None  # no transform.embed now: the plain diff compares vectors and sees every record
    was = written.embed
    if was is None:
        return (f"round {written.round} copied the source's vectors, the spec now embeds with {now.identity}: "
                "every record is embedded again")
    old, new = _settings(was), _settings(now)
    if old == new:
        return None
    words = {"model": "the embedding model", "dimension": "the embedding dimension",
             "text": "the embedded text (transform.embed.text)", "keep_old": "transform.embed.keep_old"}
    parts = [f"{words[k]} changed from {old[k]} to {new[k]}" for k in words if old[k] != new[k]]
    return f"{'; '.join(parts)} since round {written.round}: every record is embedded again"


def everything_changed(diff: RecordDiff) -> RecordDiff:
    """``diff`` with every record the target already holds as "to change", each shard copied whole."""
    shards = tuple(replace(s, counts=RecordCounts(add=s.counts.add, change=s.counts.change + s.counts.unchanged),
                           ids=None, examples=()) for s in diff.shards)
    return replace(diff, shards=shards)


def with_reason(actions: list[Action], why: str) -> list[Action]:
    return [replace(a, reason=f"{a.reason}; {why}") if a.kind == "copy_shard" else a for a in actions]


def finding(why: str) -> Warning_:
    return Warning_(EMBEDDING_CHANGED, why, "warning", HINT)
