"""The pure parts of pgvector's filter translation (``filtersql.py``); the translation itself is
compared with ``vecmig.filters.matches`` on the real database in ``tests/test_pgvector_search.py``."""

from __future__ import annotations

import math
import random

from vecmig.providers.floatcmp import bracket
from vecmig.providers.pgvector.filtersql import where
from vecmig.providers.pgvector.sql import Column, Layout, Relation


def _col(name: str, typname: str, logical: str, attnum: int) -> Column:
    return Column(name=name, attnum=attnum, oid=0, sqltype=typname, typname=typname, typmod=-1, logical=logical)


TYPED = Layout(relation=Relation(1, "r", "public", "items"), id=_col("id", "int8", "int", 1),
               vector=_col("embedding", "vector", "vector", 2), text=None,
               metadata=(_col("year", "int8", "int", 3), _col("lang", "text", "text", 4)), json_column=None)


def test_bracket_is_exact_or_the_two_neighbouring_floats() -> None:
    rng = random.Random(1)
    edges = [0, 1, -7, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 10**30 + 1, 10**400, -(10**400)]
    for n in edges + [rng.randrange(-(2**70), 2**70) for _ in range(2000)]:
        got = bracket(n)
        if isinstance(got, float):
            assert got == n
            continue
        below, above = got
        assert below < n < above, n
        assert math.nextafter(below, math.inf) == above, "no float lies between them"


def test_no_filter_is_true_and_a_field_without_column_is_absent() -> None:
    assert where(TYPED, None).as_string() == "true"
    assert where(TYPED, {}).as_string() == "true"
    # An unknown field is absent on every record: it fails $eq and passes $ne / $nin / $exists: false.
    assert where(TYPED, {"genre": "drama"}).as_string() == "false"
    assert where(TYPED, {"genre": {"$ne": "drama"}}).as_string() == "(NOT false)"
    assert where(TYPED, {"genre": {"$exists": False}}).as_string() == "(NOT false)"


def test_kinds_that_never_match_are_constant_false() -> None:
    # A string is never a number, a bool never a number, and a list never ordered.
    assert where(TYPED, {"year": "2020"}).as_string() == "false"
    assert where(TYPED, {"year": True}).as_string() == "false"
    assert where(TYPED, {"lang": {"$gt": 5}}).as_string() == "false"
    assert where(TYPED, {"year": {"$eq": math.nan}}).as_string() == "false"


def test_values_are_quoted_literals_never_text() -> None:
    sql_text = where(TYPED, {"lang": "x' OR 1=1 --"}).as_string()
    assert "'x'' OR 1=1 --'" in sql_text
    # An int compares as numeric with the argument's exact decimal value.
    assert "CAST('0.1000000000000000055511151231257827021181583404541015625' AS numeric)" in where(
        TYPED, {"year": {"$lt": 0.1}}).as_string()
