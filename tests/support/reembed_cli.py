"""``python -m vecmig.cli`` with the stand-in planner of ``tests.support.reembed`` installed
first (see there): the CLI runs as the program it is (``runpy``), nothing imports it."""

from __future__ import annotations

import runpy

from tests.support.reembed import install

if __name__ == "__main__":
    install()
    runpy.run_module("vecmig.cli", run_name="__main__", alter_sys=True)
