"""The CSV cell rules: every value the writer spells reads back as the same value of the same type,
and records are cut from the bytes at quote-balanced newlines (vecmig.providers.files.csvcells)."""

from __future__ import annotations

import io
import random
import struct
from typing import Any

import pytest

from vecmig.providers.files.csvcells import (
    CellError,
    decode_id,
    decode_text,
    decode_value,
    encode_id,
    encode_text,
    encode_value,
    format_rows,
    parse_rows,
    raw_records,
)

TRICKY = ["", " ", "5", "-0", "5.0", "1e5", "true", "false", "null", "NaN", "-Infinity", "Infinity", '"', '""',
          '"5"', "[", "[1,2", "{", "{}", "[]", "hello", " 5", "5 ", "a,b", 'say "hi"', "line\nbreak", "cr\rlf\r\n",
          "é✓ünï", "\t", "0x10", "01", "-", "+1", ".5", "1.", "tru", "\\", "\x00", "a\x00b"]


def typed(value: Any) -> Any:
    """Equality that tells 1, 1.0, True and -0.0 apart."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, list):
        return ("list", tuple(typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, typed(v)) for k, v in value.items())))
    return (type(value).__name__, value)


VALUES: list[Any] = [*TRICKY, 0, 5, -5, 2**70, -(2**63), 1.0, -0.0, 0.1, 1e300, 5e-324, True, False, None,
                     ["a", "b"], [], ["5", ""], {"k": 1, "n": None}, {"nested": {"x": [1.5, "y"]}}]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:20] for v in VALUES])
def test_metadata_value_round_trips_with_its_type(value: Any) -> None:
    present, back = decode_value(encode_value(value))
    assert present and typed(back) == typed(value)


def test_strings_that_read_as_themselves_stay_plain() -> None:
    assert encode_value("hello") == "hello"
    assert encode_value("NaN") == "NaN"  # no JSON NaN: it is the text
    assert encode_value("5") == '"5"' and encode_value("true") == '"true"' and encode_value("") == '""'


def test_empty_cell_is_absent_and_null_is_null() -> None:
    assert decode_value("") == (False, None)
    assert decode_value("null") == (True, None)


@pytest.mark.parametrize("cell", ["[1,2", '{"a":1', '"open', '{"a":1,"a":2}', "[NaN]", '"a" b'])
def test_cells_that_start_like_json_must_be_json(cell: str) -> None:
    with pytest.raises(CellError):
        decode_value(cell)


@pytest.mark.parametrize("rid", [0, 7, -3, 2**63 - 1, "5", "abc", '"q"', " 5", "-0", "01", "doc-1", "é"])
def test_ids_round_trip_with_their_type(rid: Any) -> None:
    back = decode_id(encode_id(rid))
    assert type(back) is type(rid) and back == rid


@pytest.mark.parametrize("text", [None, "", "plain", '"quoted" start', "5", "multi\nline", " "])
def test_text_round_trips_and_empty_is_not_none(text: str | None) -> None:
    assert decode_text(encode_text(text)) == text


def test_random_rows_are_cut_at_record_boundaries() -> None:
    rng = random.Random(7)
    rows = [[rng.choice(TRICKY[:-2]) for _ in range(4)] for _ in range(300)]
    data = format_rows(rows)
    found = list(raw_records(io.BytesIO(data), 0, None))
    assert b"".join(raw for _, raw in found) == data
    assert parse_rows([raw for _, raw in found]) == rows
    # A record starts at each offset found, and every record resumes from its own offset.
    for offset, raw in found[::37]:
        assert next(raw_records(io.BytesIO(data), offset, None)) == (offset, raw)
