"""The spec loader's stable import path: everything lives in :mod:`vecmig.specload`.

``vecmig.specload`` runs the stages (positions, interpolation, schema errors, rules,
assembly), one module each; this module re-exports what the CLI, the plan file, the tests
and the benchmarks import from here.
"""

from __future__ import annotations

from vecmig.specload import load_public, load_spec, load_spec_text, public_hash, public_of_file

__all__ = [
    "load_public",
    "load_spec",
    "load_spec_text",
    "public_hash",
    "public_of_file",
]
