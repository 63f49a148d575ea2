"""Durable file replacement: the one atomic write, used by the file stores and the pointer file.

``atomic_write`` writes a unique temporary sibling (same directory, so same filesystem),
fsyncs it, renames it over the destination and fsyncs the directory: a reader sees the old
or the new content, whole, and once it returns the new content survives a power cut.

It lives in the engine, beside :mod:`vecmig.safe_paths` which it relies on, rather than in
``providers/files``: ``vecmig.pointer`` (engine) needs it too, and the engine does not import
a particular store's package.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from vecmig import safe_paths
from vecmig.errors import TerminalError


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (Linux flushes the inode whatever the fd mode)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_sibling(dest: Path) -> Path:
    """A unique temporary name beside ``dest`` (same filesystem, so ``os.replace`` is atomic)."""
    tag = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    return dest.with_name(f".{dest.name}.{tag}.vecmig-tmp")


def atomic_write(dest: Path, write: Callable[[Path], object], *, what: str = "file") -> None:
    """``write(tmp)`` then make it durable under ``dest``: readers see old or new, never half.

    ``what`` names ``dest`` in the refusal when it is no regular file (``"pointer file"``).
    """
    tmp = tmp_sibling(dest)
    try:
        write(tmp)
        fsync_path(tmp)
        # The last moment before the rename: never put a file in the place of a device or a FIFO.
        safe_paths.ensure_file(dest, what, error=TerminalError)
        os.replace(tmp, dest)
        fsync_path(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_tmp_leftovers(dest: Path) -> None:
    """Temporaries of writers killed mid-write (their unique names are never reused)."""
    for leftover in dest.parent.glob(f".{dest.name}.*.vecmig-tmp"):
        leftover.unlink(missing_ok=True)
