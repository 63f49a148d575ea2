"""LanceDB's exceptions as vecmig's transient/terminal split, and SQL literals for its filters.

LanceDB raises plain ``ValueError``/``RuntimeError``/``OSError`` carrying the Rust core's
message. Only a commit that lost a race with another writer is worth retrying (Lance commits
optimistically: a concurrent commit that touched the same rows makes ours fail, and a retry
re-reads the new version); everything else (a missing table, a schema mismatch, a full disk)
fails the same way again.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.records import RecordId

_MAX_MESSAGE = 300
_RETRYABLE = ("commit conflict", "retryable", "too many concurrent writers", "concurrent")


def _message(exc: BaseException) -> str:
    line = " ".join(str(exc).split()) or type(exc).__name__
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def classify(exc: BaseException, *, doing: str, table: str) -> ProviderError:
    """One line naming the table and what was being done."""
    if isinstance(exc, ProviderError):
        return exc
    msg = _message(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TerminalError(f"LanceDB table '{table}': no space left while {doing}",
                             hint="free disk space, then apply again to resume")
    if any(word in msg.lower() for word in _RETRYABLE):
        return TransientError(f"LanceDB table '{table}': another writer committed first while {doing} ({msg})")
    return TerminalError(f"LanceDB table '{table}' failed while {doing}: {msg}")


def literal(value: RecordId) -> str:
    """An id as a SQL literal for LanceDB's filters (DataFusion SQL): ints as digits, strings
    single-quoted with quotes doubled. ``bool`` is refused: it is an int to Python, not an id."""
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a record id")
    if isinstance(value, int):
        # The parser reads -9223372036854775808 as minus a number beyond int64, which becomes a
        # float and no longer compares with the id column: spell the smallest int64 as a sum.
        return "(-9223372036854775807 - 1)" if value == -(2**63) else str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def in_list(column: str, ids: Sequence[RecordId]) -> str:
    return f"{quote_column(column)} IN ({', '.join(literal(i) for i in ids)})"


def quote_column(name: str) -> str:
    """A column name for a filter: backticks, as LanceDB's SQL dialect quotes identifiers."""
    return "`" + name.replace("`", "``") + "`"
