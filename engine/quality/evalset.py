"""An evaluation set for ``validate.retrieval``: queries as text, each with the ids relevant to it.

The file is JSON Lines, one query per line::

    {"query": "how do I rotate keys", "relevant": ["doc-7", "doc-9"]}
    {"query": "pricing", "relevant": {"12": 2, "40": 1}, "vector": [0.1, ...], "k": 5, "filter": {...}}

``relevant`` is a list of ids (each of grade 1) or an object of id → grade (graded relevance,
a number ≥ 0; at least one above 0). ``vector`` is the old model's vector of the query (else
``old_model`` embeds the text); ``k`` (else the spec's), ``filter`` (the language of
:mod:`vecmig.filters`, in the source's field names) and ``id`` (the query's name in reports) are
optional. Ids are matched by the house's rule (:func:`vecmig.records.same_record_key`): ``7`` and
``"7"`` are one record. Any other key, a bad value or a repeated key is refused with file:line
and the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecmig.errors import SpecError
from vecmig.filters import FilterError, check
from vecmig.records import same_record_key

KEYS = ("id", "query", "relevant", "vector", "k", "filter")
SHAPE = '{"query": "text", "relevant": ["id", ...] or {"id": grade}, "vector": [...], "k": 10}'


@dataclass(frozen=True)
class EvalQuery:
    name: str  # the line's ``id``, else "<file>:<line>"
    where: str  # "<file>:<line>", for errors
    text: str
    relevant: tuple[tuple[str, float], ...]  # (same_record_key of the id, grade > 0), as written
    k: int
    vector: tuple[float, ...] | None = None
    filter: dict[str, Any] | None = None

    @property
    def grades(self) -> dict[str, float]:
        return dict(self.relevant)

    def array(self) -> np.ndarray | None:
        return None if self.vector is None else np.asarray(self.vector, dtype=np.float32)


def load_eval(path: Path, *, shown: str, default_k: int) -> list[EvalQuery]:
    """Every query of the file; the first bad line raises a one-line SpecError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"evaluation file {shown} does not exist",
                        hint="check validate.retrieval.file (relative paths are relative to the spec file)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"evaluation file {shown} cannot be read: {e}") from None
    out: list[EvalQuery] = []
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip():
            out.append(parse_line(line, f"{shown}:{no}", default_k))
    if not out:
        raise SpecError(f"evaluation file {shown} holds no query", hint=f"write one JSON object per line: {SHAPE}")
    return out


def parse_line(line: str, where: str, default_k: int) -> EvalQuery:
    def bad(key: str | None, what: str, hint: str = "") -> SpecError:
        at = f"{where}: {key}: " if key else f"{where}: "
        return SpecError(at + what, hint=hint or f"each line is {SHAPE}")

    try:
        obj = json.loads(line, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise bad(None, f"not JSON ({e.msg} at column {e.colno})") from None
    except _Refused as e:
        raise bad(None, str(e)) from None
    if not isinstance(obj, dict):
        raise bad(None, f"a query is a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise bad(unknown[0], "unknown key", f"a query has {', '.join(KEYS)}")
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad("query", "the query's text is missing or empty" if query is None or isinstance(query, str)
                  else f"must be a string, not {type(query).__name__}")
    relevant = _relevant(obj.get("relevant"), lambda what: bad("relevant", what))
    vector = None
    if "vector" in obj:
        vec = obj["vector"]
        if (not isinstance(vec, list) or not vec
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vec)):
            raise bad("vector", "must be a non-empty list of numbers")
        arr = np.asarray(vec, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > np.finfo(np.float32).max):
            raise bad("vector", "holds a value that is not a finite float32 (NaN, Infinity or too large)")
        vector = tuple(float(np.float32(x)) for x in vec)
    k = obj.get("k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise bad("k", f"must be an integer from 1 to 1000, not {k!r}")
    flt = obj.get("filter")
    if flt is not None:
        try:
            check(flt)
        except FilterError as e:
            raise bad("filter", str(e), "see the filter language in the README (Queries)") from None
    name = obj.get("id")
    if name is not None and (not isinstance(name, int | str) or isinstance(name, bool)):
        raise bad("id", "must be a string or an integer")
    return EvalQuery(name=str(name) if name is not None else where, where=where, text=query, relevant=relevant,
                     k=k, vector=vector, filter=flt)


def _relevant(value: Any, bad: Any) -> tuple[tuple[str, float], ...]:
    def is_id(x: Any) -> bool:
        return isinstance(x, int | str) and not isinstance(x, bool) and x != ""

    if isinstance(value, list):
        if not value:
            raise bad("is empty: a query needs at least one relevant id")
        if not all(is_id(x) for x in value):
            raise bad("must list ids (integers or non-empty strings)")
        grades = {same_record_key(x): 1.0 for x in value}  # an id listed twice is one relevant record
    elif isinstance(value, dict):
        grades = {}
        for rid, grade in value.items():
            if not rid:
                raise bad("an id is empty")
            if (not isinstance(grade, int | float) or isinstance(grade, bool) or not math.isfinite(grade)
                    or grade < 0):
                raise bad(f"the grade of {rid!r} must be a finite number ≥ 0, not {grade!r}")
            if grade > 0:  # grade 0: judged, not relevant
                grades[same_record_key(rid)] = float(grade)
        if not grades:
            raise bad("holds no id with a grade above 0: a query needs at least one relevant id")
    elif value is None:
        raise bad("is missing: a query needs the ids relevant to it")
    else:
        raise bad(f"must be a list of ids or an object of id → grade, not {type(value).__name__}")
    return tuple(grades.items())


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity (not JSON): a NaN in a vector or a grade scores nothing.
    raise _Refused(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of a repeated key: {"relevant": [1], "relevant": [2]} silently judged by [2].
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} appears twice in one object")
        out[key] = value
    return out
