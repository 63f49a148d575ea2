"""``vecmig`` with the stand-in planner of ``tests.support.reembed`` (see there)."""

from __future__ import annotations

from tests.support.reembed import install

if __name__ == "__main__":
    install()
    from vecmig.cli import main

    main()
