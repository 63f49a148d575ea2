"""Which text of a record is embedded: ``transform.embed.text`` names a source field (the
store's text field, ``fields.text``, or a metadata key) or is a template over them
(``"{title}: {body}"``, Python format syntax). Read from the batch as the source gave it, before
the mapping renames or drops anything, so the names are the source's."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from vecmig.errors import TerminalError
from vecmig.records import Batch

TEXT = "text"  # the name a template or ``text:`` uses for the store's own text field


def template_fields(text: str) -> list[str]:
    """The field names a template reads (a plain name reads itself)."""
    if "{" not in text:
        return [text]
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def _value(rid: Any, name: str, meta: dict[str, Any], own_text: str | None, text_field: str | None) -> str:
    if name in (TEXT, text_field) and own_text is not None:
        return own_text
    if name in meta and meta[name] is not None:
        value = meta[name]
        return value if isinstance(value, str) else str(value)
    raise TerminalError(f"record {rid!r} has no text in field '{name}' to embed",
                        hint="give every record that field, or point transform.embed.text at another one")


def record_texts(batch: Batch, text: str, text_field: str | None) -> list[str]:
    """One text per record of ``batch``: ``text_field`` is the source's ``fields.text`` (the
    column that lands in ``Batch.texts``), also reachable as ``{text}``."""
    own: Sequence[str | None] = batch.texts if batch.texts is not None else [None] * len(batch)
    names = template_fields(text)
    out: list[str] = []
    for rid, meta, own_text in zip(batch.ids, batch.metadata, own, strict=True):
        values = {n: _value(rid, n, meta, own_text, text_field) for n in names}
        out.append(values[text] if "{" not in text else text.format_map(values))
    return out
