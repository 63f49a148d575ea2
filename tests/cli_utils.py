"""Moved to :mod:`tests.support.cli`; this shim keeps the old import path working."""

from tests.support.cli import (
    FORBIDDEN,
    OUTPUTS,
    PY_WARNING,
    ROOT,
    CliOutput,
    count,
    internal_failures,
    record,
    spawn,
    table_rows,
    vecmig,
)

__all__ = ["FORBIDDEN", "OUTPUTS", "PY_WARNING", "ROOT", "CliOutput", "count", "internal_failures", "record",
           "spawn", "table_rows", "vecmig"]
