"""Helpers shared by test modules (never tests themselves).

* ``cli`` — run the real ``vecmig`` CLI in a subprocess, record its output, compare tables;
* ``data`` — realistic pgvector tables (clustered vectors, mixed metadata), filled fast;
* ``specs`` — spec files and DSN environments for CLI tests (``SECRET`` must never leak);
* ``memory`` — the in-process harness of the unit tier (memory provider, state, plan, apply).

``tests/cli_utils.py``, ``tests/helpers.py`` and the spec helpers in
``tests/test_e2e_pgvector.py`` re-export the old names for modules not yet moved over.
"""
