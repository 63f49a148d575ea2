"""The embedded PostgreSQL behind ``connection: {embedded: PATH}`` (the ``pgserver`` package).

One server per data directory, shared by everything in this process that names that
directory: the source and the target of one spec, and every worker thread's provider
instance. Each user takes a reference with :func:`acquire` and gives it back with
:func:`release`; the server is stopped when the last reference in the process goes *and*
no other live process holds it (pgserver's own cross-process handle list, which we prune
of dead processes so that a SIGKILLed run cannot keep a server alive forever).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vecmig.errors import TerminalError

_lock = threading.Lock()
_servers: dict[Path, _Handle] = {}


@dataclass
class _Handle:
    server: Any  # pgserver.PostgresServer
    uri: str
    refs: int = 0


def _pgserver() -> ModuleType:
    """Import pgserver lazily: it is an optional dependency and its import has side effects."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI)
            # and falls back to /tmp/runtime-<uid>, which is fine for pgserver's lock file.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs.*")
            import pgserver
    except ImportError:
        raise TerminalError(
            "embedded PostgreSQL needs the 'pgserver' package, which is not installed",
            hint="pip install 'vecmig[embedded]'",
        ) from None
    return pgserver


def _key(path: Path | str) -> Path:
    return Path(path).expanduser().resolve()


def _prune_dead_pids(server: Any, add_self: bool) -> None:
    """Drop handles of processes that died without cleaning up; optionally register ours."""
    import psutil  # a dependency of pgserver

    with server._lock:
        plist = server.global_process_id_list
        pids = [p for p in plist.get() if psutil.pid_exists(p)]
        if add_self and os.getpid() not in pids:
            pids.append(os.getpid())
        plist.put(pids)


def acquire(path: Path | str) -> str:
    """Start (or join) the server for ``path`` and return its connection URI."""
    key = _key(path)
    with _lock:
        handle = _servers.get(key)
        if handle is None:
            pgserver = _pgserver()
            try:
                key.parent.mkdir(parents=True, exist_ok=True)
                server = pgserver.get_server(key, cleanup_mode="stop")
                # get_server() hands back a cached instance if this process used the
                # directory before; re-register our pid and make sure it still runs.
                _prune_dead_pids(server, add_self=True)
                with server._lock:
                    server.ensure_postgres_running()
                uri = server.get_uri()
                _ensure_logical(server, uri)
            except TerminalError:
                raise
            except Exception as exc:  # initdb/pg_ctl failures, permissions, bad path
                raise TerminalError(
                    f"could not start embedded PostgreSQL in {key}: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "),
                    hint=f"see the server log in {key / 'log'}",
                ) from exc
            handle = _servers[key] = _Handle(server=server, uri=uri)
        handle.refs += 1
        return handle.uri


def _ensure_logical(server: Any, uri: str) -> None:
    """Change-data capture (strategy cdc) reads the WAL through logical decoding, which needs
    ``wal_level = logical``; PostgreSQL's default is ``replica`` and the level only changes
    with a restart. initdb gives pgserver no way to pass it, so a server still at another level
    is switched once (ALTER SYSTEM, then a restart) -- but only while this process is its sole
    user: restarting under another process's sessions would break them. A shared server left
    at ``replica`` is reported by ``plan`` with strategy cdc (``changefeed.py``), never here."""
    import psycopg

    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        if row is None or row[0] == "logical":
            return
        with server._lock:
            pids = server.global_process_id_list.get()
        if pids != [os.getpid()]:
            return
        conn.execute("ALTER SYSTEM SET wal_level = logical")
    pg_ctl = importlib.import_module("pgserver._commands").pg_ctl  # untyped: pgserver exports it without stubs
    with server._lock:
        pg_ctl(["-w", "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        # The postmaster's pid changed: pgserver stops the server at cleanup only if it knows it.
        server._postmaster_info = None
        server.ensure_postgres_running()


def release(path: Path | str) -> None:
    """Give back one reference; the last one in the process stops the server."""
    key = _key(path)
    with _lock:
        handle = _servers.get(key)
        if handle is None:
            return
        handle.refs -= 1
        if handle.refs > 0:
            return
        del _servers[key]
        with contextlib.suppress(Exception):
            _prune_dead_pids(handle.server, add_self=False)
        # Stops the server only when no other live process holds it.
        handle.server.cleanup()


def uri(path: Path | str) -> str:
    """The URI of a server this process holds a reference on (no new reference taken)."""
    with _lock:
        handle = _servers.get(_key(path))
        if handle is None:
            raise TerminalError(f"embedded PostgreSQL at {path} is not running in this process")
        return handle.uri


def references(path: Path | str) -> int:
    """How many live references this process holds on the server for ``path``."""
    with _lock:
        handle = _servers.get(_key(path))
        return handle.refs if handle else 0


def is_running(path: Path | str) -> bool:
    """Whether a postmaster is running on the data directory (whoever started it)."""
    pidfile = _key(path) / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    import psutil

    return bool(psutil.pid_exists(pid))
