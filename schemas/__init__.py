"""Versioned JSON Schemas for the spec, saved plans and state exports."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """``load("spec.v1")`` returns the parsed schema shipped with the package."""
    return json.loads(files(__name__).joinpath(f"{name}.json").read_text())  # type: ignore[no-any-return]
