"""Shared pieces of the fuzz tier (``tests/test_fuzz_*.py``, marker ``fuzz``).

Hypothesis generates records (ids, vectors, metadata, text at their edges) and specs; the
tests run them through the real CLI and check the invariants of issue 9:

* ``apply`` exits 0 and the target holds exactly the source (ids with their type, float32
  bits, metadata types and values, text), or
* it refuses in one line (``Error: ...``, non-zero exit) that names the file/record/key;
* never an internal error or a traceback (also enforced suite-wide by ``conftest.py``);
* never exit 0 with fewer or different records in the target.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (the default: derandomized, so CI is deterministic, and
modest example counts so the tier takes about two minutes on two cores) and
``HYPOTHESIS_PROFILE=deep`` (random seeds and ``DEEP_FACTOR`` times the examples, for local
runs: ``HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest -m fuzz``).
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import struct
from typing import Any

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
DEEP_FACTOR = int(os.environ.get("HYPOTHESIS_DEEP_FACTOR", "20"))

_common = {
    "deadline": None,  # CLI runs: wall-clock varies with the machine's load
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                              HealthCheck.data_too_large, HealthCheck.large_base_example],
    "print_blob": True,
}
# CI does not shrink (a CLI run per step makes shrinking take minutes); a derandomized failure is
# reproduced exactly by the next run, and the deep profile shrinks.
settings.register_profile("ci", derandomize=True, database=None, report_multiple_bugs=False,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_common)
settings.register_profile("deep", derandomize=False, **_common)
settings.load_profile(PROFILE if PROFILE in ("ci", "deep") else "ci")


def examples(n: int) -> int:
    """``n`` examples in CI, ``n * DEEP_FACTOR`` with the deep profile."""
    return n * DEEP_FACTOR if PROFILE == "deep" else n


# ---- values -----------------------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 5, 2**31 - 1, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64, 2**64 + 1,
             -(2**63) - 1, 10**30, -(10**30)]
# Only ints PostgreSQL's bigint and Parquet's int64 hold are ids (ints beyond 64 bits are the
# `fidelity` engineer's: refused naming the line). See ID_INT_BITS.
EDGE_STRINGS = ["", "5", "05", "0", "-1", "1e3", " ", "a b", "\x00", "a\x00b", "é", "e\u0301", "\u202eRTL",
                "\u200b", "😀", "👩\u200d👩\u200d👧", "\ufeff", "x" * 3000, "null", "true",
                "\\", '"', "\n", "\t", "日本語"]
FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 1.401298464324817e-45, 1.1754942e-38, 1.17549435e-38,
               FLOAT32_MAX, -FLOAT32_MAX, 3.4028235e38, 3.4028236e38, 1e39, -1e39, 1e-50, 0.1, 1 / 3,
               math.pi, 16777217.0, float("nan"), float("inf"), float("-inf")]


SURROGATES = ["\ud800", "\udfff", "a\udbffb"]
POISON_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e39, -1e39, 3.4028236e38, 1e300]


def text(max_size: int = 12, surrogates: bool = False) -> st.SearchStrategy[str]:
    """Short strings over every Unicode category plus the edge list; lone surrogates (which no
    UTF-8 store can hold, so a refusal is the answer) only when asked for."""
    edges = EDGE_STRINGS + (SURROGATES if surrogates else [])
    alphabet = st.characters(codec=None if surrogates else "utf-8")
    return st.one_of(st.sampled_from(edges), st.text(alphabet=alphabet, max_size=max_size))


def ints(bits: int | None = None) -> st.SearchStrategy[int]:
    edges = [i for i in EDGE_INTS if bits is None or -(2 ** (bits - 1)) <= i < 2 ** (bits - 1)]
    lo, hi = (None, None) if bits is None else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.one_of(st.sampled_from(edges), st.integers(min_value=lo, max_value=hi))


def floats(finite_only: bool = False) -> st.SearchStrategy[float]:
    """JSON numbers as floats; with ``finite_only`` only those that are finite as float32 too."""
    edges = [f for f in EDGE_FLOATS if not finite_only or f32_bits(f) is not None]
    return st.one_of(st.sampled_from(edges),
                     st.floats(allow_nan=not finite_only, allow_infinity=not finite_only,
                               min_value=-FLOAT32_MAX if finite_only else None,
                               max_value=FLOAT32_MAX if finite_only else None),
                     st.floats(width=32, allow_nan=False, allow_infinity=False))


def json_values(max_leaves: int = 6, int_bits: int | None = None, finite: bool = False,
                nested: bool = True, surrogates: bool = False) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), ints(int_bits),
                        st.floats(allow_nan=not finite, allow_infinity=not finite), st.sampled_from(EDGE_FLOATS[:20]),
                        text(surrogates=surrogates))
    if not nested:
        return st.one_of(scalars, st.lists(text(), max_size=4))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(text(6, surrogates), inner, max_size=4)),
        max_leaves=max_leaves,
    )


@st.composite
def record_sets(draw: st.DrawFn, *, id_kinds: tuple[str, ...] = ("int", "str"), id_int_bits: int | None = 64,
                min_size: int = 1, max_size: int = 8, meta_int_bits: int | None = None,
                finite_meta: bool = True, nested_meta: bool = True, poison: bool = True) -> list[dict[str, Any]]:
    """One source's records: one dimension, every field optional but the id and the vector.

    ``id_kinds``: "int", "str", or "mixed" (ints and strings in one source: a plan error).
    Ids are unique unless poisoned. With ``poison``, about one set in four also holds one value
    no store can take (a vector value that is no finite float32, a lone surrogate, NaN in
    metadata, an empty id, an id repeated), so the refusal path is exercised without drowning
    the round trips."""
    kind = draw(st.sampled_from(id_kinds))
    bad = draw(st.sampled_from(["vector", "surrogate", "nan-metadata", "empty-id", "duplicate"] + ["none"] * 12)
               if poison else st.just("none"))
    strings = text(20).filter(bool)
    if kind == "mixed":
        id_strategy = st.one_of(ints(id_int_bits), strings)
        ids = draw(st.lists(id_strategy, min_size=max(2, min_size), max_size=max(2, max_size), unique=True)
                   .filter(lambda xs: {type(x) for x in xs} == {int, str}))
    else:
        id_strategy = ints(id_int_bits) if kind == "int" else strings
        ids = draw(st.lists(id_strategy, min_size=min_size, max_size=max_size, unique=True))
    dim = draw(st.integers(1, 5))
    meta_values = json_values(int_bits=meta_int_bits, finite=finite_meta, nested=nested_meta)
    out = []
    for rid in ids:
        rec: dict[str, Any] = {"id": rid, "vector": draw(st.lists(floats(True), min_size=dim, max_size=dim))}
        if draw(st.booleans()):
            rec["metadata"] = draw(st.dictionaries(text(8), meta_values, max_size=5))
        t = draw(st.one_of(st.none(), text(20)))
        if t is not None or draw(st.booleans()):
            rec["text"] = t
        out.append(rec)
    victim = out[draw(st.integers(0, len(out) - 1))]
    if bad == "vector":
        victim["vector"][draw(st.integers(0, dim - 1))] = draw(st.sampled_from(POISON_FLOATS))
    elif bad == "surrogate":
        where = draw(st.sampled_from(["id", "text", "value", "key"] if kind == "str" else ["text", "value", "key"]))
        s = draw(st.sampled_from(SURROGATES))
        if where == "id":
            victim["id"] = s
        elif where == "text":
            victim["text"] = s
        else:
            meta = victim.setdefault("metadata", {})
            meta.update({s: 1} if where == "key" else {"k": s})
    elif bad == "nan-metadata":
        victim.setdefault("metadata", {})["nan"] = draw(st.sampled_from([float("nan"), float("inf")]))
    elif bad == "empty-id" and kind == "str":
        victim["id"] = ""
    elif bad == "duplicate":
        twin = json.loads(json.dumps(victim, allow_nan=True))  # the same id, identical or not
        if draw(st.booleans()):
            twin["vector"] = [draw(floats(True)) for _ in range(dim)]
        out.insert(draw(st.integers(0, len(out))), twin)
    return out


def acceptable_ids(records: list[dict[str, Any]]) -> bool:
    """Whether a store may take these ids at all: one type, no id twice (else only a refusal is right)."""
    ids = [r["id"] for r in records]
    return len({type(i) for i in ids}) == 1 and len(set(ids)) == len(ids)


def jsonl_bytes(records: list[dict[str, Any]], keys: dict[str, str] | None = None) -> bytes:
    """Records as JSONL (escaped ASCII, so lone surrogates are written as ``\\ud800``); ``keys``
    renames id/vector/text/metadata."""
    keys = keys or {}
    lines = []
    for r in records:
        lines.append(json.dumps({keys.get(k, k): v for k, v in r.items()}, ensure_ascii=True, allow_nan=True))
    return ("\n".join(lines) + "\n").encode()


# ---- exact comparison -------------------------------------------------------------------------


def f32_bits(x: Any) -> str | None:
    """The float32 a JSON number becomes, as its bit pattern (None if it is not a finite float32)."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return None
    try:
        b = struct.pack("<f", float(x))
    except (OverflowError, struct.error):
        return None
    f = struct.unpack("<f", b)[0]
    return b.hex() if math.isfinite(f) else None


def typed(v: Any) -> Any:
    """A value with its JSON type made explicit, so that 1, 1.0 and True never compare equal."""
    if v is None or isinstance(v, bool | str):
        return (type(v).__name__, v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, list):
        return ("list", tuple(typed(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, typed(x)) for k, x in v.items())))
    raise TypeError(type(v))


def canonical(rec: dict[str, Any]) -> tuple[Any, ...]:
    """What must survive a migration exactly: id (typed), float32 bits, typed metadata, text."""
    rid = rec["id"]
    # A top-level null is an absent key (typed columns cannot tell them apart; vecmig's checksum
    # treats them alike); nulls inside lists and objects are values and must survive.
    meta = {k: v for k, v in (rec.get("metadata") or {}).items() if v is not None}
    return (type(rid).__name__, rid, tuple(f32_bits(x) for x in rec["vector"]), typed(meta), rec.get("text"))


def storable(records: list[dict[str, Any]]) -> bool:
    """Whether every vector value becomes a finite float32 (else a refusal is the only right answer)."""
    return all(f32_bits(x) is not None for r in records for x in r["vector"])


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def check_one_line_refusal(r: Any, names: list[str]) -> None:
    """A refusal: non-zero exit, one ``Error:`` line on stderr naming something of ``names``."""
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, r.stderr
    assert "internal error" not in lines[0] and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert any(n in lines[0] for n in names), f"the error names none of {names}: {lines[0]}"
    event("refused: " + re.sub(r"\S*/|'[^']*'|\d+", "_", lines[0])[:90])


SAFE_KEY = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)


def utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
