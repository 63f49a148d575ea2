"""The suite-wide guard (``conftest._no_internal_errors``) really fails a test whose CLI run
printed an internal error or a traceback, and only then: it cannot pass vacuously."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.cli import ROOT, CliOutput, internal_failures

# Makes the CLI child raise a non-VecmigError while loading any spec: a real internal error.
SITECUSTOMIZE = """
import vecmig.spec_loader as loader

def broken(*args, **kwargs):
    raise KeyError("planted by the guard's self-test")

loader.load_spec = broken
"""

INNER = """
from tests.support.cli import spawn, vecmig

def test_planted_internal_error(tmp_path):
    r = vecmig("validate", str(tmp_path / "spec.yaml"), env={"PYTHONPATH": "{plant}"})
    assert r.returncode == 1  # the test itself passes: only the guard can fail it

def test_planted_internal_error_through_spawn(tmp_path):
    proc = spawn("plan", str(tmp_path / "spec.yaml"), env={"PYTHONPATH": "{plant}"})
    proc.communicate(timeout=120)

def test_debug_may_print_a_traceback(tmp_path):
    r = vecmig("--debug", "validate", str(tmp_path / "spec.yaml"), env={"PYTHONPATH": "{plant}"})
    assert "Traceback" in r.stderr

def test_a_clean_refusal_passes(tmp_path):
    r = vecmig("validate", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "spec file not found" in r.stderr
"""


def test_guard_fails_exactly_the_tests_that_printed_an_internal_error(tmp_path: Path) -> None:
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(SITECUSTOMIZE)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(INNER.replace("{plant}", str(plant)))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(inner), str(inner / "test_inner.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    # The two planted runs (one through vecmig(), one through spawn()) error at teardown; the
    # --debug run and the clean refusal do not.
    assert "4 passed, 2 errors" in out, out
    # Counted in the ERRORS section: the short summary repeats the reason in full when pytest
    # sees a CI environment (CI=true) and cuts it to the terminal's width otherwise.
    errors, summary = out.split("short test summary info")
    assert errors.count("the CLI must never print an internal error or a traceback") == 2, out
    assert re.search(r"test_inner\.py::test_planted_internal_error( - |\n)", summary), out
    assert "test_inner.py::test_planted_internal_error_through_spawn" in summary, out
    assert "test_debug_may_print_a_traceback" not in summary and "test_a_clean_refusal" not in summary, out
    assert "planted by the guard's self-test" in out, out


def test_internal_failures_reads_stdout_and_stderr_and_skips_debug() -> None:
    bad = "Error: internal error: KeyError: 'x' — rerun with --debug for the traceback"
    tb = "Traceback (most recent call last):\n  File ...\nKeyError: 'x'"
    assert internal_failures([CliOutput(("plan", "s.yaml"), 1, "", bad)])
    assert internal_failures([CliOutput(("plan", "s.yaml"), 1, tb, "")])
    assert not internal_failures([CliOutput(("--debug", "plan", "s.yaml"), 1, "", tb)])
    assert not internal_failures([CliOutput(("plan", "s.yaml"), 1, "", "Error: s.yaml:1:1: bad — fix it")])
    warning = "/x/jsonl.py:334: RuntimeWarning: overflow encountered in cast\n  matrix[i] = v\nError: ..."
    assert internal_failures([CliOutput(("apply", "s.yaml"), 1, "", warning)])
