"""Stage 4 for ``transform.embed``: what the schema cannot say about re-embedding.

A template reads fields by plain ``{name}`` only: attribute or index access, a conversion or a
format spec could fail on one record in a million, long after the plan was approved. ``keep_old``
must not land on the target's id, vector or text, nor on a metadata field the mapping writes.
The strategies whose later steps send the source's own vectors to the target (cdc's catch-up)
or compare one query vector on both sides (parallel-run's replay, validate.queries) are refused
until they re-embed too. What only the source can answer (does it have the field?) and what
only the model can (does it load?) is checked at plan (vecmig.embed_plan).
"""

from __future__ import annotations

import string
from typing import Any

from vecmig.embed.texts import TEXT
from vecmig.specload.context import _Context

AT = "/transform/embed"
REFUSED_STRATEGIES = {
    "cdc": "the catch-up would write the source's old vectors into the re-embedded target",
    "parallel-run": "its replay sends the same query vector to both sides, which a new model cannot answer",
}


def check_embed(ctx: _Context, spec: dict[str, Any]) -> None:
    embed = (spec.get("transform") or {}).get("embed")
    if embed is None:
        return
    strategy = (spec.get("strategy") or {}).get("type", "big-bang")
    if strategy in REFUSED_STRATEGIES:
        raise ctx.error(f"transform.embed is not supported yet with strategy {strategy}: "
                        f"{REFUSED_STRATEGIES[strategy]}", "/strategy/type",
                        "use strategy big-bang, blue-green or phased for a re-embed")
    if (spec.get("validate") or {}).get("queries") is not None:
        raise ctx.error("validate.queries cannot check a re-embedded target: query parity sends the same vector "
                        "to both sides, and the target's vectors come from another model", "/validate/queries",
                        "remove validate.queries and measure the new model with validate.retrieval "
                        "(queries as text with their relevant ids)")
    _check_template(ctx, str(embed["text"]))
    if embed.get("keep_old") is not None:
        _check_keep_old(ctx, spec, str(embed["keep_old"]))


def _check_template(ctx: _Context, text: str) -> None:
    at = f"{AT}/text"
    if "{" not in text and "}" not in text:
        return
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ctx.error(f"transform.embed.text {ctx.quoted(at)} is not a valid template ({e})", at,
                        "write fields as {name}, and a literal brace as {{ or }}") from None
    names = [p for p in parts if p[1] is not None]
    if not names:
        return  # only escaped braces: a plain field name with braces in it
    for _, name, spec, conversion in names:
        assert name is not None
        if not name:
            raise ctx.error(f"transform.embed.text {ctx.quoted(at)} has an empty placeholder {{}}", at,
                            "name the field in it, e.g. {title}")
        if name.isdigit() or any(c in name for c in ".[]"):
            raise ctx.error(f"transform.embed.text {ctx.quoted(at)} reads {{{name}}}: a template reads plain field "
                            "names only (no positions, attributes or indexes)", at,
                            "name a metadata field, e.g. {title}, or `text` for the record's text")
        if spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ctx.error(f"transform.embed.text {ctx.quoted(at)} formats {{{shown}}}: a conversion or format "
                            "spec could fail on one record long after the plan", at,
                            f"write {{{name}}} alone; the value is embedded as its text")


def _check_keep_old(ctx: _Context, spec: dict[str, Any], keep: str) -> None:
    at = f"{AT}/keep_old"
    fields = spec["target"].get("fields") or {}
    taken = {"id": fields.get("id", "id"), "vector": fields.get("vector", "embedding"),
             "text": fields.get("text") or TEXT}
    for role, name in taken.items():
        if keep in (name, role):
            raise ctx.error(f"transform.embed.keep_old '{keep}' is the target's {role} field", at,
                            "choose another name for the old vector, e.g. old_embedding")
    metadata = fields.get("metadata")
    if isinstance(metadata, list) and keep in metadata:
        raise ctx.error(f"transform.embed.keep_old '{keep}' is one of target.fields.metadata, which the source's "
                        "metadata fills", at, "choose another name for the old vector, e.g. old_embedding")
    if isinstance(metadata, str) and keep == metadata:
        raise ctx.error(f"transform.embed.keep_old '{keep}' is the target's metadata column", at,
                        "choose another name for the old vector, e.g. old_embedding")
    renamed = ((spec.get("mapping") or {}).get("metadata") or {}).get("rename") or {}
    for old, new in renamed.items():
        if new == keep:
            raise ctx.error(f"transform.embed.keep_old '{keep}' is where mapping.metadata.rename puts '{old}'", at,
                            "choose another name for the old vector, or rename that field elsewhere")
