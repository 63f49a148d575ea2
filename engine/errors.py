"""One root exception; the CLI turns any of these into one clear line and a non-zero exit.

Errors carry a ``hint`` (how to fix it) separately from the message (what is wrong), so the
CLI can print ``what — where — how`` on one line. Providers raise :class:`TransientError`
for failures worth retrying (dlt's distinction) and :class:`TerminalError` otherwise.
"""

from __future__ import annotations


class VecmigError(Exception):
    """Root of every error vecmig reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def one_line(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.hint:
            parts.append(self.hint)
        return " — ".join(parts)


class SpecError(VecmigError):
    """The migration spec is malformed; ``where`` is ``file:line:col: /json/pointer``."""


class PlanError(VecmigError):
    """The spec is well-formed but cannot be planned against what exists."""


class StalePlanError(VecmigError):
    """A saved plan no longer matches the state or the stores it was made from."""


class StateError(VecmigError):
    """The state store is missing, unreadable, read-only or of an unknown version."""


class LockError(VecmigError):
    """Another process holds the migration's lock."""


class ValidationFailed(VecmigError):
    """A validation action found the target different from the source.

    ``result`` holds what it found (which shards, which records, what differs): the executor
    keeps it in state, so the next plan re-copies exactly what failed."""

    def __init__(self, message: str, *, result: dict[str, object] | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.result = result


class Interrupted(VecmigError):
    """SIGINT, SIGTERM or SIGHUP: the batch in flight was finished and checkpointed; apply
    again resumes. Exits 128 + the signal's number, as a shell reports a process the signal
    ended (130 for Ctrl-C, 143 for SIGTERM from docker stop, Kubernetes, systemd or CI)."""

    exit_code = 130

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None,
                 signum: int | None = None) -> None:
        super().__init__(message, hint=hint, where=where)
        if signum is not None:
            self.exit_code = 128 + signum


class Terminated(KeyboardInterrupt):
    """Raised by vecmig's SIGTERM/SIGHUP handler where no graceful stop is set up (plan,
    rollback, a second signal during apply): it unwinds like Ctrl-C, so every ``finally``
    runs (the lock is released) and the run is closed as interrupted."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class ProviderError(VecmigError):
    """A store refused or failed an operation."""


class TransientError(ProviderError):
    """Worth retrying with backoff (timeouts, 429, 5xx, dropped connections)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TerminalError(ProviderError):
    """Retrying will not help (bad credentials, missing collection, rejected record)."""
