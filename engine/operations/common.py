"""What every operation starts with: the spec, and the state store it names."""

from __future__ import annotations

from pathlib import Path

from vecmig.errors import VecmigError
from vecmig.operations.ui import Ui
from vecmig.spec import Spec
from vecmig.state.store import StateStore


def load(path: Path, ui: Ui) -> Spec:
    """Load and validate the spec; from here on the Ui masks its secrets."""
    from vecmig import planfile
    from vecmig.spec_loader import load_spec

    if path.is_file() and planfile.looks_like_plan(path):
        raise VecmigError(f"{path} is a saved plan, not a migration spec",
                          hint="pass the spec (YAML) here; `vecmig apply`, `show` and `graph` take a saved plan")
    spec = load_spec(path)
    ui.redact_with(spec.redactor)
    return spec


def open_state(spec: Spec, *, create: bool = False, check_lock: bool = True) -> StateStore | None:
    """The migration's state store; None when it does not exist and ``create`` is False
    (plan and inspection are read-only: they never create one). ``check_lock=False`` only
    for force-unlock: a malformed lock row is what it removes."""
    return StateStore.open(spec.name, spec.state_path, spec.state_url, create=create, redactor=spec.redactor,
                           check_lock=check_lock)


def existing_state(spec: Spec, *, hint: str, check_lock: bool = True) -> StateStore:
    """The migration's state store, or the one-line error that there is none (``hint``: why that is fine)."""
    state = open_state(spec, check_lock=check_lock)
    if state is None:
        raise VecmigError("no state store exists for this migration", hint=hint)
    return state
