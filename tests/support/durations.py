"""The checked-in table of how long each test file takes (``tests/durations.json``), and its refresh.

With ``--dist loadfile`` a file is one unit of work and the two workers pull units in collection
order; a long file pulled late leaves one worker idle while the other finishes it. So
``tests/conftest.py`` hands the files out longest first (the longest-processing-time rule),
reading their times from this table. A file the table does not know yet goes first of all:
it may be long, and a short file costs nothing at the start.

Refresh after a test file's time changes much (``make durations``, or by hand)::

    .venv/bin/python -m pytest -p no:cacheprovider --junitxml=/tmp/durations.xml
    .venv/bin/python -m tests.support.durations /tmp/durations.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tests" / "durations.json"


def load(table: Path = TABLE) -> dict[str, float]:
    """Seconds per test file (paths relative to the repository, with "/"); empty if there is no table."""
    try:
        return {str(k): float(v) for k, v in json.loads(table.read_text()).items()}
    except FileNotFoundError:
        return {}


def file_of(classname: str) -> str | None:
    """The test file a JUnit ``classname`` ("tests.chaos.test_x" or "tests.test_x.TestClass") names."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = Path(*parts[:end]).with_suffix(".py")
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def per_file(junit_xml: Path) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = case.get("file") or file_of(case.get("classname", ""))
        if name:
            sums[name] += float(case.get("time") or 0)
    return dict(sums)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.durations JUNIT_XML (writes tests/durations.json)", file=sys.stderr)
        return 2
    sums = per_file(Path(argv[0]))
    ordered = dict(sorted(((k, round(v, 1)) for k, v in sums.items()), key=lambda kv: (-kv[1], kv[0])))
    TABLE.write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"{TABLE.relative_to(ROOT)}: {len(ordered)} files, {sum(ordered.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
