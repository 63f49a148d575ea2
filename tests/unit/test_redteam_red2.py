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


def test_shadow_latency_does_not_include_opening_the_session() -> None:
    # A watch round / replay measured the first query on each worker with the provider's connect()
    # inside its latency: on an embedded pgvector target round 1 read p95 ×7–12 of the old side and a
    # healthy cutover was switched back by `rollback_on: {max_p95_ratio: 2}` (the README's example).
    import time

    from vecmig.quality.runner import Call
    from vecmig.quality.shadow import Side

    class Fast:
        def query(self, vector, k, flt=None):  # noqa: ANN001, ANN201
            return []

        def close(self) -> None:
            pass

    def slow_open() -> Fast:
        time.sleep(0.3)
        return Fast()

    side = Side(slow_open, 1, "t")  # type: ignore[arg-type]
    try:
        [answer] = [f.result() for f in side.submit([Call([0.0, 1.0], 1, None)], None)]
    finally:
        side.close()
    assert answer.error is None
    assert answer.seconds < 0.1
