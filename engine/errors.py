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
    """SIGINT: the batch in flight was finished and checkpointed; apply again resumes."""

    exit_code = 130


class ProviderError(VecmigError):
    """A store refused or failed an operation."""


class TransientError(ProviderError):
    """Worth retrying with backoff (timeouts, 429, 5xx, dropped connections)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TerminalError(ProviderError):
    """Retrying will not help (bad credentials, missing collection, rejected record)."""
