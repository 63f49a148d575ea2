"""What every operation starts with: the spec, and the state store it names."""

from __future__ import annotations

from pathlib import Path

from vecmig.errors import VecmigError
from vecmig.operations.ui import Ui
from vecmig.spec import Spec
from vecmig.state.store import StateStore


def load(path: Path, ui: Ui) -> Spec:
    """Load and validate the spec; from here on the Ui masks its secrets."""
    from vecmig.spec_loader import load_spec

    spec = load_spec(path)
    ui.redact_with(spec.redactor)
    return spec


def open_state(spec: Spec, *, create: bool = False) -> StateStore | None:
    """The migration's state store; None when it does not exist and ``create`` is False
    (plan and inspection are read-only: they never create one)."""
    return StateStore.open(spec.name, spec.state_path, spec.state_url, create=create, redactor=spec.redactor)


def existing_state(spec: Spec, *, hint: str) -> StateStore:
    """The migration's state store, or the one-line error that there is none (``hint``: why that is fine)."""
    state = open_state(spec)
    if state is None:
        raise VecmigError("no state store exists for this migration", hint=hint)
    return state
