"""A kill storm: SIGKILL one long `vecmig apply` again and again at random moments.

Kill points adapt to where the run is: while records remain, a kill lands a few hundred
records past the last checkpoint (plus a little jitter, so it falls mid-COPY, between the
commit and the checkpoint, or mid-scan); once the copy is done, kills land at random times
in start-up, planning, index build, validation and cutover.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cli_utils import spawn, vecmig


def progress(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return int(c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()[0])
    except sqlite3.Error:
        return 0


@dataclass
class StormReport:
    kills: int = 0
    cycles: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def storm(spec: Path, env: dict[str, str], db: Path, total: int, kills: int, seed: int,
          budget: float = 240.0) -> StormReport:
    rng = random.Random(seed)
    report = StormReport()
    started = time.monotonic()
    while report.kills < kills and time.monotonic() - started < budget:
        report.cycles += 1
        done = progress(db)
        # Small steps while records remain, so the copy phase takes most of the kills; a few
        # kills by time land in start-up and planning, and after the copy in the late actions.
        if done < total and rng.random() < 0.92:
            kind, target = "records", done + rng.randint(1, 120)
        else:
            kind, target = "time", rng.uniform(0.05, 0.9)
        proc = spawn("apply", str(spec), "--auto-approve", env=env)
        t0 = time.monotonic()
        killed = False
        while proc.poll() is None and time.monotonic() - t0 < 60:
            reached = progress(db) >= target if kind == "records" else time.monotonic() - t0 >= target
            if reached:
                time.sleep(rng.uniform(0, 0.02))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = True
                break
            time.sleep(0.003)
        if not killed:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, out + err
            if "No changes" in out or "Apply complete" in out:
                break  # the run finished before this kill point: nothing left to interrupt
            continue
        report.kills += 1
        report.kinds[kind] = report.kinds.get(kind, 0) + 1
    final = vecmig("apply", str(spec), "--auto-approve", env=env)
    assert final.returncode == 0, final.stdout + final.stderr
    report.seconds = time.monotonic() - started
    return report


def assert_clean_state(spec: Path, env: dict[str, str], db: Path) -> None:
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM locks").fetchone()[0] == 0, "no lock may be left held"
    plan = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
