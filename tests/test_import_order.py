"""Every engine module imports on its own, first: an import cycle shows up as an "internal
error" only for the command that happens to import its modules in that order (a `vecmig watch`
once failed so while every test that imported the CLI first passed).

One interpreter loads the third-party libraries the engine uses and then forks once per module;
each child imports that module first (no vecmig module is loaded before the fork), so the check
costs a fork per module rather than an interpreter. Which libraries to load is found, not
listed: a scout child imports every module under test and reports the non-vecmig modules that
came with them (submodules too, such as SQLAlchemy's dialects), so no child pays for them again.
Only vecmig's own import order is under test here."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import vecmig

CHILD = """
import os, sys, importlib
names = sys.argv[1:]

def scout():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:
                pass  # its own child below reports it
        own = lambda m: m == "vecmig" or m.startswith("vecmig.") or m.startswith("__")
        with os.fdopen(w, "w") as out:
            out.write("\\n".join(m for m in list(sys.modules) if not own(m)))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as inp:
        found = inp.read().split()
    os.waitpid(pid, 0)
    return found

for lib in scout():
    try:
        importlib.import_module(lib)
    except BaseException:
        pass  # a module that only imports as part of its package's own start-up
assert not [m for m in sys.modules if m == "vecmig" or m.startswith("vecmig.")]
bad = []
for name in names:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException as e:
            os.write(w, f"{name}: {type(e).__name__}: {e}".encode())
            os._exit(1)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    msg = os.read(r, 65536).decode()
    os.close(r)
    if status:
        bad.append(msg or f"{name}: exit status {status}")
print("\\n".join(bad))
"""


def test_every_engine_module_imports_first() -> None:
    names = sorted(m.name for m in pkgutil.walk_packages(vecmig.__path__, "vecmig.")
                   if not m.name.startswith(("vecmig.providers.", "vecmig.schemas", "vecmig.embed.")))
    assert len(names) > 60
    out = subprocess.run([sys.executable, "-c", CHILD, *names], capture_output=True, text=True, check=True)
    assert not out.stdout.strip(), out.stdout
