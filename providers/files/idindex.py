"""Random access for ``fetch()``: an index from id hashes to positions in a file."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vecmig import safe_paths
from vecmig.errors import TerminalError
from vecmig.records import RecordId


def file_stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class IdIndex:
    """``hash(id)`` -> position (byte offset or row number), sorted for binary search.

    Validation fetches every source batch from the target, so a scan per ``fetch`` would
    make it quadratic; one pass builds this instead, 16 bytes per record whatever the id
    type. Hashes may collide (and ``hash(-1) == hash(-2)``): callers read the candidate
    records and keep those whose id really matches.
    """

    def __init__(self, stamp: tuple[int, int, int], keys: array[int], positions: array[int]) -> None:
        self.stamp = stamp
        k = np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, np.int64)
        p = np.frombuffer(positions, dtype=np.int64) if len(positions) else np.zeros(0, np.int64)
        order = np.argsort(k, kind="stable")
        self.keys, self.positions = k[order], p[order]

    @classmethod
    def build(cls, stamp: tuple[int, int, int], pairs: Iterator[tuple[RecordId, int]]) -> IdIndex:
        keys, positions = array("q"), array("q")
        for rid, pos in pairs:
            keys.append(hash(rid))
            positions.append(pos)
        return cls(stamp, keys, positions)

    def candidates(self, ids: Sequence[RecordId]) -> list[int]:
        if not len(ids) or not len(self.keys):
            return []
        q = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        lo = np.searchsorted(self.keys, q, "left")
        hi = np.searchsorted(self.keys, q, "right")
        hits = [self.positions[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        return np.unique(np.concatenate(hits)).tolist() if hits else []


def line_number(path: Path, offset: int) -> int:
    """1-based line of the byte at ``offset``; only called on the error path."""
    n = 1
    with safe_paths.open_read(path, "file", error=TerminalError) as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 20))
            if not chunk:
                break
            n += chunk.count(b"\n")
            remaining -= len(chunk)
    return n
