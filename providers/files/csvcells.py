"""How a CSV file holds records exactly: the cell rules, and records cut out of the bytes.

A CSV cell is text, so every value needs a rule that gives back its type. One rule for all
columns but the vector (a JSON array of float32 values in their shortest decimal form):

* an **empty cell** is "no value": no text, a metadata key the record does not have;
* a cell starting with ``"``, ``[`` or ``{`` is **JSON** and must parse (``"5"`` is the
  string 5, ``["a","b"]`` a list, ``{"k":1}`` an object);
* any other cell is JSON when it parses as JSON (``5`` is the int 5, ``5.0`` the float 5.0,
  ``true``, ``null``), and **the text itself** when it does not (``hello``, ``NaN``).

The writer picks, for every value, the spelling the reader turns back into that value: a
string is written as itself unless that would read as something else (``"5"``, ``true``,
``""`` and strings starting with a quote or a bracket are written as JSON strings). Ids
follow the same rule restricted to integers and strings; text cells are always strings
(empty: no text; starting with ``"``: a JSON string).

Records are cut from the bytes, not from lines: a quoted field may hold newlines, so a record
ends at the first newline where the count of ``"`` so far is even (RFC 4180 doubles a quote
inside a quoted field, which keeps the count even). Cursors and shard bounds are byte
offsets of record starts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from typing import IO, Any

from vecmig.providers.files.jsonio import DuplicateKey, dumps, loads

_orjson: Any
try:  # the accelerator jsonio uses too (pinecone's SDK brings it)
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

BOM = b"\xef\xbb\xbf"
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_MUST_BE_JSON = ('"', "[", "{")
# The characters a JSON document can start with: a cell starting with anything else is text
# without asking the parser (a failed parse costs ~15 µs, most of a plain cell's decoding).
_JSON_START = frozenset('"[{-0123456789tfn \t\r\n')


class CellError(ValueError):
    """A cell that breaks the rules above; the caller names the file, line and column."""


def _finite(value: Any) -> bool:
    t = type(value)
    if t is float:
        return math.isfinite(value)
    if t is list:
        return all(_finite(v) for v in value)
    if t is dict:
        return all(_finite(v) for v in value.values())
    return True


def _strict(cell: str) -> Any:
    """JSON exactly (integers of any size, no duplicate keys), without the NaN and Infinity
    Python's parser would accept; raises ValueError."""
    value = loads(cell)
    if not _finite(value):
        raise ValueError("NaN and Infinity are not JSON")
    return value


def decode_value(cell: str) -> tuple[bool, Any]:
    """(present, value) of a metadata cell."""
    if cell == "":
        return False, None
    if cell[0] not in _JSON_START:
        return True, cell
    if cell[0] in _MUST_BE_JSON:
        try:
            return True, _strict(cell)
        except DuplicateKey as exc:
            raise CellError(str(exc)) from None
        except ValueError as exc:
            raise CellError(f"starts like JSON but is not valid JSON ({exc})") from None
    try:
        return True, _strict(cell)
    except DuplicateKey as exc:
        raise CellError(str(exc)) from None
    except ValueError:
        return True, cell


def encode_value(value: Any) -> str:
    """The cell :func:`decode_value` reads back as ``value`` (raises ValueError/TypeError for
    what JSON cannot hold: NaN, infinities, objects other than JSON's)."""
    t = type(value)
    if t is int:  # the scalars JSON spells like Python: skip the encoder (most of a write)
        return str(value)
    if t is float:
        if not math.isfinite(value):
            raise ValueError(f"{value} is not JSON")
        return repr(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is str and value and value[0] not in _MUST_BE_JSON:
        text: str = value
        if text[0] not in _JSON_START:
            return text
        try:
            _strict(text)
        except ValueError:
            return text  # reads back as itself
    return dumps(value)


def parse_vector(cell: str) -> Any:
    """A vector cell's JSON, fast: its numbers become float32 anyway, so the exactness checks
    :func:`loads` runs for metadata (integers beyond 64 bits, duplicate keys) would be wasted."""
    if _orjson is not None:
        try:
            return _orjson.loads(cell)
        except ValueError:
            pass  # stdlib json words the error (or accepts what orjson does not)
    return json.loads(cell)


def format_vector(values: list[float]) -> str:
    """A vector's JSON array (finite values: the caller checked); orjson's shortest float form
    parses back to the same double as Python's."""
    if _orjson is not None:
        return str(_orjson.dumps(values).decode())
    return dumps(values)


def decode_id(cell: str) -> Any:
    """An id cell: an integer, a JSON string, or the text itself; None when empty."""
    if cell == "":
        return None
    if _INT.match(cell):
        return int(cell)
    if cell[0] == '"':
        try:
            value = json.loads(cell)
        except ValueError as exc:
            raise CellError(f"starts with a quote but is not a JSON string ({exc})") from None
        if not isinstance(value, str):
            raise CellError("starts with a quote but is not a JSON string")
        return value
    return cell


def encode_id(rid: Any) -> str:
    if type(rid) is int:
        return str(rid)
    text = str(rid)
    if not text or text[0] == '"' or _INT.match(text):
        return json.dumps(text, ensure_ascii=False)
    return text


def decode_text(cell: str) -> str | None:
    if cell == "":
        return None
    if cell[0] != '"':
        return cell
    try:
        value = json.loads(cell)
    except ValueError as exc:
        raise CellError(f"starts with a quote but is not a JSON string ({exc})") from None
    if not isinstance(value, str):
        raise CellError("starts with a quote but is not a JSON string")
    return value


def encode_text(text: str | None) -> str:
    if text is None:
        return ""
    if not text or text[0] == '"':
        return json.dumps(text, ensure_ascii=False)
    return text


# ---- records in the bytes -------------------------------------------------------------------


def raw_records(f: IO[bytes], pos: int, end: int | None) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of every record starting at ``pos`` (a record start) and before ``end``;
    blank lines are skipped. A record's bytes include its line ending (absent at end of file)."""
    f.seek(pos)
    readline = f.readline
    while end is None or pos < end:
        line = readline()
        if not line:
            return
        start = pos
        pos += len(line)
        if line in (b"\n", b"\r\n"):
            continue
        if line.count(b'"') % 2:
            parts = [line]
            quotes = line.count(b'"')
            while quotes % 2:
                more = readline()
                if not more:
                    break  # an unclosed quote: the parser names it
                parts.append(more)
                quotes += more.count(b'"')
                pos += len(more)
            line = b"".join(parts)
        yield start, line


def parse_rows(raw: list[bytes]) -> list[list[str]] | None:
    """Each raw record as its fields; None when the bytes do not split into one row per record
    (a stray quote): the caller then parses them one by one to name the bad one."""
    try:
        text = b"".join(raw).decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    return rows if len(rows) == len(raw) else None


def parse_one(raw: bytes) -> list[str]:
    """One record's fields; raises CellError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CellError(f"is not valid UTF-8 ({exc.reason} at byte {exc.start} of the record)") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise CellError(f"is not valid CSV ({exc})") from None
    if len(rows) != 1:
        raise CellError("has an unbalanced quote: quote a field that holds \" and double the quotes inside it")
    return rows[0]


def format_rows(rows: list[list[str]]) -> bytes:
    """RFC 4180 rows (CRLF endings: the writer then quotes any field holding CR or LF)."""
    return "".join(format_each(rows)).encode("utf-8")


def format_each(rows: list[list[str]]) -> list[str]:
    """Each row as its own RFC 4180 line (the csv writer hands ``write`` one whole row a call)."""
    sink = _Lines()
    csv.writer(sink, lineterminator="\r\n").writerows(rows)
    return sink.lines


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)
