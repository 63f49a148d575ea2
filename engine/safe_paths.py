"""The one gate every path a user gives vecmig passes: regular files only, reads bounded.

Specs, plan files, policy files, pointer files, state files, ``state export -o`` and the
file stores' paths must each be a regular file (or not exist yet, where vecmig creates
it), and a directory vecmig creates itself (a staging directory, an embedded PostgreSQL
data directory) must be a directory or not exist. Anything else is refused before vecmig
reads or writes it: a character or block device (a JSONL target at ``/dev/null`` once
*replaced* the machine's ``/dev/null`` with a regular file), a FIFO (opening one blocks
until a writer comes), a socket, a directory where a file is expected, a path whose parent
is a file, and a symlink to any of these.

The kind is checked with ``lstat``/``stat`` before opening (opening some devices has side
effects), and again with ``fstat`` on a descriptor opened with ``O_NONBLOCK`` (a FIFO
swapped in between cannot block). Small documents (specs, plans, policies, pointers) are
read up to a stated limit, counted while reading, so a file that grows meanwhile cannot
make vecmig hold more than the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from vecmig.errors import VecmigError

MiB = 1 << 20
SPEC_MAX_BYTES = 4 * MiB  # a spec is a few kilobytes
POLICY_MAX_BYTES = 1 * MiB
POINTER_MAX_BYTES = 1 * MiB
PLAN_MAX_BYTES = 256 * MiB  # ~1 KB per shard action: far beyond any real plan

REGULAR_ONLY = "vecmig reads and replaces regular files only, never devices, FIFOs, sockets or directories"


def kind(mode: int) -> str:
    """What a file of this mode is, with its article."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _parent_problem(path: Path) -> str | None:
    """Why the directory that would hold ``path`` cannot: the first existing ancestor is no directory."""
    probe = Path(os.path.abspath(path)).parent
    while True:
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            if probe.parent == probe:
                return None
            probe = probe.parent
            continue
        except NotADirectoryError:
            probe = probe.parent
            continue
        except OSError as exc:
            return f"cannot be checked ({exc.strerror})"
        if stat.S_ISDIR(st.st_mode):
            return None
        return f"cannot be created: its parent {probe} is {kind(st.st_mode)}, not a directory"


def _stat_problem(path: Path, *, want_dir: bool, must_exist: bool) -> str | None:
    try:
        lst = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        problem = _parent_problem(path)
        if problem is None and must_exist:
            return "does not exist"
        return problem
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    ok = stat.S_ISDIR if want_dir else stat.S_ISREG
    if not stat.S_ISLNK(lst.st_mode):
        return None if ok(lst.st_mode) else f"is {kind(lst.st_mode)}"
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return f"is a symlink to {os.path.realpath(path)}, which does not exist"
    except OSError as exc:
        return f"is a symlink that cannot be followed ({exc.strerror})"
    return None if ok(st.st_mode) else f"is a symlink to {kind(st.st_mode)} ({os.path.realpath(path)})"


def file_problem(path: Path | str, *, must_exist: bool = False) -> str | None:
    """Why ``path`` cannot be a file vecmig reads or replaces; None when it can.

    An absent file is fine unless ``must_exist`` (vecmig will create it), provided the
    directory that would hold it can exist.
    """
    return _stat_problem(Path(path), want_dir=False, must_exist=must_exist)


def dir_problem(path: Path | str) -> str | None:
    """Why ``path`` cannot be a directory vecmig creates or reuses; None when it can."""
    return _stat_problem(Path(path), want_dir=True, must_exist=False)


def refusal(what: str, path: Path | str, problem: str, *, where: str | None = None, hint: str | None = None,
            error: type[VecmigError] = VecmigError) -> VecmigError:
    if problem == "does not exist":
        return error(f"{what} {path} does not exist", where=where, hint=hint or "check the path")
    return error(f"{what} {path} {problem}", where=where,
                 hint=hint or f"give the path of a regular file; {REGULAR_ONLY}")


def ensure_file(path: Path | str, what: str, *, must_exist: bool = False, where: str | None = None,
                hint: str | None = None, error: type[VecmigError] = VecmigError) -> None:
    """Raise ``error`` naming ``what`` and ``path`` unless ``path`` is (or may become) a regular file."""
    problem = file_problem(path, must_exist=must_exist)
    if problem is not None:
        raise refusal(what, path, problem, where=where, hint=hint, error=error)


def ensure_dir(path: Path | str, what: str, *, where: str | None = None, hint: str | None = None,
               error: type[VecmigError] = VecmigError) -> None:
    """Raise unless ``path`` is a directory or can be created as one."""
    problem = dir_problem(path)
    if problem is not None:
        raise error(f"{what} {path} {problem}", where=where,
                    hint=hint or "give a directory (or a path that does not exist yet): vecmig creates it there")


def open_fd(path: Path | str, what: str, *, where: str | None = None,
            error: type[VecmigError] = VecmigError) -> int:
    """A read-only descriptor of the regular file ``path``; never blocks, never opens a device.

    ``FileNotFoundError`` passes through, so callers keep their own "not found" wording.
    """
    problem = file_problem(path, must_exist=False)
    if problem is None and not os.path.lexists(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if problem is not None:
        raise refusal(what, path, problem, where=where, error=error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)  # swapped for something else since the stat above
        if not stat.S_ISREG(st.st_mode):
            raise refusal(what, path, f"is {kind(st.st_mode)}", where=where, error=error)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_read(path: Path | str, what: str, *, buffering: int = -1, where: str | None = None,
              error: type[VecmigError] = VecmigError) -> IO[bytes]:
    """``open(path, "rb")`` for a regular file only (see :func:`open_fd`)."""
    return os.fdopen(open_fd(path, what, where=where, error=error), "rb", buffering=buffering)


def _size_text(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n:,} bytes"


def read_bytes(path: Path | str, what: str, limit: int, *, where: str | None = None, hint: str | None = None,
               error: type[VecmigError] = VecmigError) -> bytes:
    """The bytes of the regular file ``path``, refused past ``limit`` (checked while reading)."""
    with open_read(path, what, buffering=0, where=where, error=error) as f:
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > limit:
        raise error(f"{what} {path} is larger than {_size_text(limit)}, the most vecmig reads from one",
                    where=where, hint=hint or "check that this is the right file")
    return b"".join(chunks)
