"""Is ``transform.embed.cache`` a place a SQLite cache file can live? Asked at plan, so a
directory, a device, a FIFO or a read-only place is one line before apply, not an internal
error in the middle of the first copy shard (the targets already created)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PG_SCHEMES = ("postgresql://", "postgres://")


def cache_place_problem(location: str | None) -> str | None:
    """Why ``location`` cannot hold the embedding cache, or None when it can (or is a URL)."""
    if location is None or location.startswith(PG_SCHEMES):
        return None
    if "://" in location:
        return f"the cache {location.split('://', 1)[0]}:// is not a cache vecmig knows (a file path or postgresql://)"
    path = Path(location)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        return f"the cache file {location} cannot be read ({e.strerror})"
    if mode is not None:
        if stat.S_ISDIR(mode):
            return f"the cache {location} is a directory, not a file"
        if not stat.S_ISREG(mode):
            return f"the cache {location} is not a regular file (a device, FIFO or socket)"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"the cache file {location} is not writable here"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"the cache {location} lies under {parent}, which is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the cache file {location} cannot be created: {parent} is not writable here"
    return None
