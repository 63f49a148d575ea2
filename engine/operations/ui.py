"""What an operation needs from whoever runs it: the CLI's terminal, quickstart, a test.

Terraform's `command/` talks to `backend/local` through views and an input: the operation
decides *what* to show and ask, the Ui decides *how*. A Ui never decides what happens next,
except by refusing to approve.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from vecmig.actions import Reporter
    from vecmig.model import Action, Plan
    from vecmig.state.redact import Redactor
    from vecmig.state.store import StateStore

# How an apply or rollback was approved; it goes on record in the audit log.
Approval = Literal["interactive", "auto-approve", "saved-plan"]


class Ui(Protocol):
    def redact_with(self, redactor: Redactor) -> None:
        """A spec was loaded: mask its secrets in everything shown from now on."""

    def show_plan(self, plan: Plan, state: StateStore | None) -> None:
        """The plan just made, or about to be applied; ``state`` is what it was made against."""

    def show_undo(self, steps: tuple[Action, ...]) -> None:
        """What rollback will run: the inverse actions (kind ``undo``, params naming the original
        action and its round, reason how it is undone), in the order they run."""

    def confirm(self, question: str) -> Approval:
        """Ask ``question``; return how the answer approved it, or raise a VecmigError."""

    def progress(self, actions: tuple[Action, ...]) -> AbstractContextManager[Reporter]:
        """A reporter for the executor while it runs ``actions`` (a plan's, or rollback's inverses)."""

    def say(self, line: str) -> None:
        """One line for the person running the operation."""
