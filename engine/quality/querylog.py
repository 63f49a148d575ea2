"""A query log as a plan freezes it: its queries and the sha256 of the bytes they were read from.

The plan holds the digest; the run reads the file again and refuses it when the digest
differs (the reviewed plan named other queries). Lines are parsed by
:func:`vecmig.quality.queries.parse_query`, so errors name the file and line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vecmig import safe_paths
from vecmig.errors import SpecError, StalePlanError
from vecmig.quality.queries import Query, parse_query

LOG_MAX_BYTES = 1 << 30  # a replayed log is held in memory: a gigabyte is far beyond any useful window


@dataclass(frozen=True)
class QueryLog:
    queries: tuple[Query, ...]
    sha256: str


def read_log(path: Path, *, shown: str, key: str, default_k: int, dimension: int | None) -> QueryLog:
    """Every query of the JSON Lines file at ``path`` (``shown`` as the spec wrote it, ``key``
    the spec key naming it); the first bad line raises a one-line SpecError."""
    if not path.exists():
        raise SpecError(f"query log {shown} does not exist ({path})",
                        hint=f"check {key} (relative paths are relative to the spec file)")
    data = safe_paths.read_bytes(path, "query log", LOG_MAX_BYTES, hint=f"check {key}", error=SpecError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"query log {shown} is not UTF-8 text (byte {e.start})", hint=f"check {key}") from None
    queries = [parse_query(line, f"{shown}:{no}", default_k, dimension)
               for no, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not queries:
        raise SpecError(f"query log {shown} holds no query",
                        hint='write one JSON object per line: {"vector": [...], "k": 10}')
    return QueryLog(tuple(queries), hashlib.sha256(data).hexdigest())


def read_planned(path: Path, *, shown: str, key: str, default_k: int, dimension: int | None,
                 sha256: str) -> QueryLog:
    """The log again at run time; refused when it is not the one the plan was made with."""
    log = read_log(path, shown=shown, key=key, default_k=default_k, dimension=dimension)
    if log.sha256 != sha256:
        raise StalePlanError(f"query log {shown} changed since the plan was made (sha256 {log.sha256[:12]}, "
                             f"the plan has {sha256[:12]})",
                             hint="restore the file the plan was reviewed with, or plan again (an open round: "
                                  "`vecmig rollback SPEC`, then plan)")
    return log
