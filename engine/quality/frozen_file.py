"""A file the plan froze by its sha256 (a query file, an evaluation set): read at apply only if it
is still the one reviewed, so a check never measures queries the plan did not show."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vecmig.errors import StalePlanError


def check_frozen(path: Path, *, shown: str, planned_sha256: str, noun: str, key: str, measures: str) -> None:
    """Refuse in one line when ``path`` cannot be read or is not the planned file. ``noun`` names
    it ("query file"), ``key`` its spec key, ``measures`` what the check runs ("the gate runs the
    queries it was planned with or none")."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StalePlanError(f"{noun} {shown} planned for {key} cannot be read now: {e.strerror or e}",
                             hint="restore it, or plan again") from None
    now = hashlib.sha256(data).hexdigest()
    if now != planned_sha256:
        raise StalePlanError(f"{noun} {shown} changed since the plan (sha256 {str(planned_sha256)[:12]}… planned, "
                             f"{now[:12]}… now)",
                             hint=f"run `vecmig plan`/`vecmig apply SPEC` again: {measures}")
