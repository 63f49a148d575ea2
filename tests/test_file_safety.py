"""Issue 9: every path a user gives is a regular file (or absent), refused in one line otherwise;
pointer files that are not vecmig's own are never replaced. Through the real CLI.

Device nodes are made with ``os.mknod`` in a temporary directory (never the machine's own
``/dev/null``): the tests run as root, as the defect was found. Every call that could open a
FIFO has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.support.cli import vecmig

# Device nodes need root (as CI and the chaos suite run): elsewhere these tests fail, never skip.
ROOT_NEEDED = "os.mknod of a character device needs root: run this module as root"

T = 60  # seconds: a FIFO that blocks fails the test instead of hanging it


def records(n: int = 20, dim: int = 4) -> str:
    return "".join(json.dumps({"id": i, "vector": [float(i + k) for k in range(dim)], "metadata": {"n": i}}) + "\n"
                   for i in range(n))


def spec(tmp: Path, target: str = "out.jsonl", source: str = "src.jsonl", extra: str = "",
         target_extra: str = "") -> Path:
    if not (tmp / "src.jsonl").exists():
        (tmp / "src.jsonl").write_text(records())
    path = tmp / "spec.yaml"
    path.write_text(f"version: 1\nname: fsafety\n"
                    f"source: {{provider: jsonl, connection: {{path: {source}}}}}\n"
                    f"target: {{provider: jsonl, connection: {{path: {target}}}{target_extra}}}\n{extra}")
    return path


def null_device(path: Path) -> Path:
    assert os.geteuid() == 0, ROOT_NEEDED
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    return path


def zero_device(path: Path) -> Path:
    assert os.geteuid() == 0, ROOT_NEEDED
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    return path


def assert_refused(r, *words: str) -> str:  # type: ignore[no-untyped-def]
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Traceback" not in out and "internal error" not in out, out
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: "), out
    for w in words:
        assert w in line, line
    return line


def assert_still_device(path: Path) -> None:
    assert stat.S_ISCHR(os.lstat(path).st_mode), f"{path} was replaced by a regular file"


# ---- devices, FIFOs, directories where files belong -------------------------------------------------


@pytest.mark.parametrize("how", ["device", "symlink"])
def test_a_jsonl_target_that_is_a_device_is_refused_and_left_alone(tmp_path: Path, how: str) -> None:
    dev = null_device(tmp_path / "nulldev")
    target = "nulldev"
    if how == "symlink":
        (tmp_path / "link.jsonl").symlink_to(dev)
        target = "link.jsonl"
    s = spec(tmp_path, target=target)
    for args in (("validate", str(s)), ("plan", str(s)), ("apply", str(s), "--auto-approve")):
        line = assert_refused(vecmig(*args, timeout=T), "spec.yaml:4:", "/target/connection/path",
                              "character device")
        assert str(tmp_path / target) in line
    assert_still_device(dev)
    assert not (tmp_path / ".vecmig").exists(), "no state is created for a refused spec"
    assert not (tmp_path / "nulldev.vecmig-parts").exists() and not (tmp_path / "link.jsonl.vecmig-parts").exists()


def test_a_fifo_spec_or_source_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for cmd in ("validate", "plan"):
        assert_refused(vecmig(cmd, str(fifo), timeout=T), "spec file", "FIFO")
    os.mkfifo(tmp_path / "src.fifo")
    other = tmp_path / "other"
    other.mkdir()
    (other / "src.jsonl").write_text(records())
    s = spec(other, source=str(tmp_path / "src.fifo"))
    for cmd in ("validate", "plan"):
        assert_refused(vecmig(cmd, str(s), timeout=T), "/source/connection/path", "FIFO")


def test_a_zero_device_as_spec_or_source_is_refused_not_read(tmp_path: Path) -> None:
    zero = zero_device(tmp_path / "zero")
    assert_refused(vecmig("validate", str(zero), timeout=T), "character device")
    assert_refused(vecmig("plan", str(spec(tmp_path, source="zero")), timeout=T), "/source/connection/path",
                   "character device")


def test_a_spec_larger_than_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"# padding\n" * (500 * 1024))  # 5 MiB
    assert_refused(vecmig("validate", str(big), timeout=T), "larger than 4 MiB")


def test_saved_plan_paths_must_be_regular_files(tmp_path: Path) -> None:
    s = spec(tmp_path)
    os.mkfifo(tmp_path / "plan.fifo")
    dev = null_device(tmp_path / "plan.null")
    assert_refused(vecmig("plan", str(s), "-out", str(tmp_path / "plan.fifo"), timeout=T), "plan file", "FIFO")
    assert_refused(vecmig("plan", str(s), "-out", str(dev), timeout=T), "plan file", "character device")
    assert_still_device(dev)
    for cmd in ("show", "apply", "graph"):
        assert_refused(vecmig(cmd, str(tmp_path / "plan.fifo"), timeout=T), "FIFO")


def test_state_policy_and_export_paths_must_be_regular_files(tmp_path: Path) -> None:
    dev = null_device(tmp_path / "state.null")
    s = spec(tmp_path, extra=f"state: {{path: {dev.name}}}\n")
    assert_refused(vecmig("apply", str(s), "--auto-approve", timeout=T), "spec.yaml:5:", "/state/path",
                   "character device")
    assert_still_device(dev)
    os.mkfifo(tmp_path / "policy.fifo")
    s = spec(tmp_path, extra="policy: {file: policy.fifo}\n")
    assert_refused(vecmig("plan", str(s), timeout=T), "/policy/file", "FIFO")
    s = spec(tmp_path)
    r = vecmig("apply", str(s), "--auto-approve", timeout=T)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_refused(vecmig("state", "export", str(s), "-o", str(dev), timeout=T), "export file", "character device")
    assert_still_device(dev)


def test_a_target_that_is_a_directory_or_under_a_file_or_with_a_blocked_staging_dir(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    assert_refused(vecmig("plan", str(spec(tmp_path, target="dir.jsonl")), timeout=T), "/target/connection/path",
                   "is a directory")
    (tmp_path / "afile").write_text("x")
    assert_refused(vecmig("plan", str(spec(tmp_path, target="afile/out.jsonl")), timeout=T),
                   "/target/connection/path", "its parent", "is a regular file, not a directory")
    (tmp_path / "out.jsonl.vecmig-parts").write_text("not a directory")
    line = assert_refused(vecmig("apply", str(spec(tmp_path)), "--auto-approve", timeout=T), "staging directory")
    assert "out.jsonl.vecmig-parts" in line
    assert not (tmp_path / ".vecmig").exists()
    assert (tmp_path / "out.jsonl.vecmig-parts").read_text() == "not a directory"


# ---- pointer files -------------------------------------------------------------------------------


POINTER = ", pointer: {file: live.json, command: 'true'}"


def test_a_file_that_is_not_a_vecmig_pointer_is_never_replaced(tmp_path: Path) -> None:
    live = tmp_path / "live.json"
    original = '{"index": "docs-blue", "db_password": "keep me"}\n'
    live.write_text(original)
    s = spec(tmp_path, target_extra=POINTER)
    r = vecmig("plan", str(s), timeout=T)
    line = assert_refused(r, "VM130")
    assert "VM130" in r.stdout and str(live) in r.stdout, "the plan names the file"
    assert "not saved" not in line
    assert_refused(vecmig("apply", str(s), "--auto-approve", timeout=T), "VM130")
    assert live.read_text() == original
    assert not (tmp_path / ".vecmig").exists()
    # No policy may lower it.
    s = spec(tmp_path, target_extra=POINTER, extra="policy: {warn: [VM130]}\n")
    assert_refused(vecmig("plan", str(s), timeout=T), "/policy/warn/0", "VM130")
    # Nor a file of another kind, a config file in YAML, a FIFO.
    live.write_text("index: docs-blue\n")
    assert_refused(vecmig("apply", str(spec(tmp_path, target_extra=POINTER)), "--auto-approve", timeout=T), "VM130")
    assert live.read_text() == "index: docs-blue\n"
    live.unlink()
    os.mkfifo(live)
    assert_refused(vecmig("plan", str(spec(tmp_path, target_extra=POINTER)), timeout=T), "/target/pointer/file",
                   "FIFO")


def test_a_pointer_file_that_changed_after_the_plan_is_refused_at_cutover(tmp_path: Path) -> None:
    s = spec(tmp_path, target_extra=POINTER)
    r = vecmig("plan", str(s), "-out", str(tmp_path / "plan.json"), timeout=T)
    assert r.returncode == 0, r.stdout + r.stderr
    live = tmp_path / "live.json"
    live.write_text('{"feature_flags": {"x": true}}')
    line = assert_refused(vecmig("apply", str(tmp_path / "plan.json"), timeout=T), "VM130", str(live))
    assert "not a vecmig pointer file" in line
    assert live.read_text() == '{"feature_flags": {"x": true}}'


def test_the_plan_shows_which_file_is_written_and_which_command_runs(tmp_path: Path) -> None:
    s = spec(tmp_path, target_extra=", pointer: {file: deploy/live.json, command: ./repoint.sh}")
    for fmt in ("text", "json", "markdown"):
        r = vecmig("plan", str(s), "--format", fmt, timeout=T)
        assert r.returncode == 0, r.stdout + r.stderr
        flat = " ".join(r.stdout.split())
        assert str(tmp_path / "deploy" / "live.json") in flat, (fmt, r.stdout)
        assert "./repoint.sh" in flat, (fmt, r.stdout)
    cut = next(a for a in json.loads(vecmig("plan", str(s), "--json", timeout=T).stdout)["actions"]
               if a["kind"] == "cutover")
    assert cut["params"]["writes"] == str(tmp_path / "deploy" / "live.json")
    assert cut["params"]["runs"] == "./repoint.sh"


def test_rollback_restores_a_pointer_file_byte_for_byte(tmp_path: Path) -> None:
    live = tmp_path / "live.json"
    original = b'{\r\n  "index": "docs-blue"\r\n}\r\n'  # CRLF: a text-mode read would lose the \r
    live.write_bytes(original)
    s = spec(tmp_path, target_extra=POINTER)
    r = vecmig("apply", str(s), "--auto-approve", timeout=T)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(live.read_text())["written_by"] == "vecmig"
    r = vecmig("rollback", str(s), "--auto-approve", timeout=T)
    assert r.returncode == 0, r.stdout + r.stderr
    assert live.read_bytes() == original
