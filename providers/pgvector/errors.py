"""Turning psycopg errors into vecmig's transient/terminal split, without leaking secrets."""

from __future__ import annotations

import re

import psycopg
from psycopg import errors as pgerr

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.state.redact import Redactor

# SQLSTATE classes/codes worth retrying: the connection went away, the server is starting
# or stopping, a concurrent transaction lost a race, a resource is briefly exhausted.
_TRANSIENT_CLASSES = ("08", "40", "57P", "53", "58")
_TRANSIENT_CODES = {"55P03", "57014", "25P03"}  # lock not available, statement timeout/cancel, idle tx
_TERMINAL_CODES = {"53100", "57P04"}  # disk full, database dropped

# Connection attempts fail before any SQLSTATE exists; these server messages mean "try
# again later", everything else behind a FATAL (auth, unknown database/role) will not heal.
_TRANSIENT_CONNECT = re.compile(
    r"starting up|shutting down|too many (clients|connections)|remaining connection slots|"
    r"in recovery mode|terminating connection|not yet accepting",
    re.IGNORECASE,
)


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.replace("connection failed: ", "").strip()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    return Redactor(secrets)(text)


def classify(
    exc: BaseException,
    *,
    where: str,
    collection: str | None,
    pointer: str,
    secrets: tuple[str, ...] = (),
    connecting: bool = False,
) -> ProviderError:
    """One-line, secret-free :class:`ProviderError` for a psycopg error."""
    role = pointer.strip("/").replace("/", ".") or "store"
    sqlstate = getattr(exc, "sqlstate", None) or ""
    msg = scrub(first_line(str(exc)), secrets)
    diag = getattr(exc, "diag", None)
    detail = scrub(first_line(diag.message_detail or ""), secrets) if diag is not None else ""

    if connecting or (isinstance(exc, psycopg.OperationalError) and not sqlstate):
        if "FATAL" in msg and not _TRANSIENT_CONNECT.search(msg):
            hint = f"check {role}.connection (credentials, database name, pg_hba.conf)"
            return TerminalError(f"cannot connect to {where}: {_fatal(msg)}", hint=hint)
        return TransientError(f"cannot reach {where}: {_fatal(msg)}", hint="is the server running and reachable?")
    if isinstance(exc, psycopg.InterfaceError):
        return TransientError(f"connection to {where} lost: {msg}")

    if sqlstate in _TERMINAL_CODES:
        return TerminalError(f"{msg} ({where})", hint="free disk space or check the server, then apply again")
    if sqlstate in _TRANSIENT_CODES or sqlstate.startswith(_TRANSIENT_CLASSES):
        return TransientError(f"{msg} ({where})")
    if isinstance(exc, pgerr.UndefinedTable):
        name = collection or "?"
        return TerminalError(f"table '{name}' does not exist in {where}", hint=f"check {role}.collection")
    if isinstance(exc, pgerr.UndefinedColumn):
        return TerminalError(f"{msg} ({where})", hint=f"check {role}.fields")
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return TerminalError(f"{msg} ({where})", hint="grant the connecting role the needed privileges")
    if isinstance(exc, pgerr.InvalidColumnReference) and "ON CONFLICT" in msg:
        return TerminalError(
            f"table '{collection}' has no unique index on its id column ({where})",
            hint="add a PRIMARY KEY or UNIQUE index on the id column: upserts are keyed by id",
        )
    if isinstance(exc, pgerr.DependentObjectsStillExist):
        return TerminalError(f"{msg} ({where})", hint=detail or "drop or switch the dependent views first")
    tail = f" — {detail}" if detail else ""
    return TerminalError(f"{msg}{tail} ({where})")


def _fatal(msg: str) -> str:
    # libpq prefixes the server's message with where it tried to connect; keep the reason.
    if "FATAL:" in msg:
        return msg.split("FATAL:", 1)[1].strip()
    if " failed: " in msg:
        return msg.rsplit(" failed: ", 1)[1].strip()
    return msg
