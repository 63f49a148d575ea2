"""Red-team findings (red2): parallel-run, watch / rollback_on, phased, the scheduler under interruption."""

from __future__ import annotations

import subprocess
import sys


def test_vecmig_watch_module_imports_first_without_a_circular_import() -> None:
    # `vecmig watch` imports vecmig.operations.watch → vecmig.watch first; that used to fail with
    # "cannot import name 'searchable' from partially initialized module 'vecmig.watch'".
    out = subprocess.run(
        [sys.executable, "-c", "import vecmig.operations.watch"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-c", "import vecmig.watch"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
