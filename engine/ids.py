"""Record identity: one id type per migration, every id once.

The rules, checked at plan (on the first ids of the source) and before any record is
written (``check_ids``, on every id):

* **One id type.** A source's ids are all integers or all strings. A source that mixes
  them is refused, naming an example of each: ``5`` and ``"5"`` are different records in
  a file but the same one in every store that keeps one id type (a text column stores
  ``5`` as ``"5"``, Pinecone keeps only strings), so carrying both would merge them.
* **Every id once.** A repeated id would be written once (an upsert by id), so the target
  would hold fewer records than the source and the plan promised. Identical repeats are
  refused too: the source does not hold what its count says.
* **One identity across stores.** An id is the same record wherever its text is the same
  (:func:`vecmig.records.same_record_key`): an integer id ``5`` stored by a text-id store
  is ``"5"`` and maps back. A store coerces only losslessly: integers to their decimal
  text, and text to an integer only when it is exactly that integer's decimal text
  (``"5"``, never ``"05"``, ``" 5"`` or ``"+5"``); anything else is refused.

Memory: the duplicate check holds one 8-byte hash per id (no records, no id objects); a
second pass over the ids runs only when two hashes collide, to name the real repeats.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecmig.records import RecordId

SHOW = 3  # repeated ids named in one message


def keeps_namespaces(spec: Any) -> bool:
    """The target writes each record into its source namespace (``namespace: "*"`` on both
    sides): ids need only be unique within a namespace, which the source store guarantees."""
    return bool(spec.target.namespace == "*" and spec.source.namespace == "*")


def unique_by_namespace(spec: Any) -> bool:
    """Source ids need only be unique within their namespace: the target keeps namespaces, or
    the mapping makes ids ``"<namespace>/<id>"`` (vecmig.namespaces)."""
    from vecmig import namespaces  # the spec's mapping lives above this module

    return keeps_namespaces(spec) or namespaces.composite(spec)


def id_kind(record_id: Any) -> str | None:
    """``"int"``, ``"text"``, or None for what cannot be an id (bool, float, None, "", ...)."""
    t = type(record_id)
    if t is int:
        return "int"
    if t is str:
        return "text" if record_id else None
    if isinstance(record_id, bool):
        return None
    if isinstance(record_id, int | np.integer):
        return "int"
    if isinstance(record_id, str):
        return "text" if record_id else None
    return None


def canonical_int_text(text: str) -> int | None:
    """The integer whose decimal text is exactly ``text`` ("5", "-12"), else None ("05", " 5", "+5", "5.0")."""
    if not text or len(text) > 40:
        return None
    body = text[1:] if text[0] == "-" else text
    if not body.isascii() or not body.isdigit() or (body[0] == "0" and (len(body) > 1 or text[0] == "-")):
        return None
    return int(text)


def show_id(record_id: RecordId, width: int = 60) -> str:
    text = repr(record_id) if isinstance(record_id, str) else str(record_id)
    return text if len(text) <= width else text[: width - 5] + "…" + text[-4:]


@dataclass
class IdReport:
    """What a pass over a source's ids found."""

    checked: int = 0
    id_type: str | None = None  # the one type seen (None: no ids)
    mixed: tuple[tuple[RecordId, str], tuple[RecordId, str]] | None = None  # an example of each type, located
    # An id of no valid type (None, "", a float, a bool, ...), located: not a RecordId.
    invalid: tuple[object, str] | None = None
    repeated: list[tuple[RecordId, int, list[str]]] = field(default_factory=list)  # first repeats: times, where
    repeated_total: int = 0  # ids that occur more than once
    extra_copies: int = 0  # records beyond the first of each repeated id
    note: str = ""  # why the store allowed repeats (a table without a unique id)

    @property
    def ok(self) -> bool:
        return self.mixed is None and self.invalid is None and not self.repeated_total

    def mixed_message(self) -> str:
        assert self.mixed is not None
        (a, wa), (b, wb) = self.mixed
        kinds = {"int": "an integer", "text": "a string"}
        return (f"the source mixes integer and string ids: id {show_id(a)} ({wa}) is {kinds[id_kind(a) or 'int']}, "
                f"id {show_id(b)} ({wb}) is {kinds[id_kind(b) or 'text']}")

    def repeated_message(self) -> str:
        parts = [f"id {show_id(rid)} appears {_times(n)} ({_places(where, n)})" for rid, n, where in self.repeated]
        more = self.repeated_total - len(self.repeated)
        text = "; ".join(parts)
        if more > 0:
            text += f"; and {more:,} more repeated id(s)"
        return f"{text} ({self.note})" if self.note else text

    def invalid_message(self) -> str:
        assert self.invalid is not None
        rid, where = self.invalid
        if rid is None:
            return f"a source record has no id (null) ({where})"
        if rid == "":
            return f"a source record's id is an empty string ({where})"
        return f"source record id {rid!r} ({where}) is a {type(rid).__name__}; ids are integers or strings"

    def problem(self, expected: str | None = None) -> tuple[str, str, str] | None:
        """(code, message, hint) of the first problem, or None. ``expected``: the plan's id type."""
        if self.invalid is not None:
            return "VM109", self.invalid_message(), "give every record a non-empty integer or string id"
        if self.mixed is not None:
            return "VM108", self.mixed_message(), MIXED_HINT
        if self.repeated_total:
            return "VM107", self.repeated_message(), REPEATED_HINT
        if expected and self.id_type and self.id_type != expected:
            kinds = {"int": "integers", "text": "strings"}
            return ("VM108", f"the source's ids are {kinds.get(self.id_type, self.id_type)} now; the plan was made "
                             f"for {kinds.get(expected, expected)}", "the source changed since the plan: plan again")
        return None


MIXED_HINT = ("give every record an id of one type (all integers or all strings): 5 and \"5\" would be "
              "the same record in the target")
REPEATED_HINT = ("remove or renumber the repeated records in the source: a target holds one record per id, "
                 "so it would end up with fewer records than the source")


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


_TAIL = re.compile(r"(:\d+| row \d+)$")


def _places(where: list[str], n: int) -> str:
    """``src.jsonl:6 and :302`` (``src.parquet row 5 and row 300``): the shared path once."""
    m = _TAIL.search(where[0])
    head = where[0][: m.start()] if m else None
    items = [where[0]] + [w[len(head):].lstrip() if head and w.startswith(head) and _TAIL.fullmatch(w[len(head):])
                          else w for w in where[1:]]
    if n > len(where):
        items.append(f"{n - len(where)} more")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# (id, position) as the source holds them: unchecked, so anything (check() is what refuses non-ids).
PairSource = Callable[[], Iterator[tuple[Any, int]]]
Locate = Callable[[list[int]], dict[int, str]]


def check(pairs: PairSource, locate: Locate, *, limit: int | None = None) -> IdReport:
    """One pass over ``(id, position)`` pairs (a second only if two ids hash alike).

    ``pairs`` is called once per pass and must yield the same sequence each time;
    ``locate`` turns positions into "where" texts (``src.jsonl:6``, ``row 301``).
    ``limit`` checks only the first ids (the plan's sample).
    """
    report = IdReport()
    hashes = array("q")
    first_of: dict[str, tuple[RecordId, int]] = {}
    for rid, pos in _limited(pairs(), limit):
        kind = id_kind(rid)
        if kind is None:
            report.invalid = (rid, locate([pos]).get(pos, f"record {pos}"))
            return report
        if kind not in first_of:
            first_of[kind] = (rid, pos)
            if len(first_of) > 1:
                (a, pa), (b, pb) = first_of["int"], first_of["text"]
                if pb < pa:
                    (a, pa), (b, pb) = (b, pb), (a, pa)
                where = locate([pa, pb])
                report.mixed = ((a, where.get(pa, str(pa))), (b, where.get(pb, str(pb))))
                report.checked += 1
                return report
        hashes.append(hash(rid))
        report.checked += 1
    report.id_type = next(iter(first_of), None)
    if len(hashes) < 2:
        return report
    keys = np.frombuffer(hashes, dtype=np.int64).copy()
    del hashes
    keys.sort()
    same = keys[1:] == keys[:-1]
    if not same.any():
        return report
    suspects = set(keys[1:][same].tolist())
    del keys
    # Second pass: only ids whose hash repeats are held, with their positions.
    seen: dict[RecordId, list[int]] = {}
    for rid, pos in _limited(pairs(), limit):
        if hash(rid) in suspects:
            seen.setdefault(rid, []).append(pos)
    repeats = sorted(((rid, ps) for rid, ps in seen.items() if len(ps) > 1), key=lambda t: t[1][0])
    report.repeated_total = len(repeats)
    report.extra_copies = sum(len(ps) - 1 for _, ps in repeats)
    shown = repeats[:SHOW]
    where = locate(sorted({p for _, ps in shown for p in ps[:4]}))
    report.repeated = [(rid, len(ps), [where.get(p, str(p)) for p in ps[:4]]) for rid, ps in shown]
    return report


def _limited(pairs: Iterator[tuple[Any, int]], limit: int | None) -> Iterable[tuple[Any, int]]:
    return pairs if limit is None else itertools.islice(pairs, limit)
