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
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.support.cli import ROOT, spawn, vecmig


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


# ---- aimed storms: each kill waits for a named moment, and where it landed is observed ----------
#
# The storm above aims by record counts and times. An aimed storm lets the test pick, before
# each apply, what the kill waits for (a moment in start-up, an action starting, a checkpoint,
# a request reaching a server, ...), and records where each kill really landed: the apply's
# phase is read from the state store (the lock and run rows carry the process id, running
# actions their start time) just before the signal is sent. Only kills that hit a running
# apply count; an apply that finishes before its kill point must have succeeded.

PHASE_OF_KIND = {"copy_shard": "copy", "validate_completeness": "validate", "create_collection": "create"}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def apply_phase(db: Path, pid: int, since: str) -> str:
    """Where the apply with process id ``pid`` (spawned at ``since``, UTC ISO) is now:
    "start-up" (before it holds the lock: imports, spec, the plan made before any lock),
    "planning" (lock held, refresh and plan, no run yet), the phase of its running actions
    ("copy", "validate", "create", or an action kind), or "between actions"."""
    if not db.exists():
        return "start-up"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            run = c.execute("SELECT started FROM runs WHERE pid = ? AND operation = 'apply' AND started >= ? "
                            "ORDER BY id DESC LIMIT 1", (pid, since)).fetchone()
            if run is None:
                held = c.execute("SELECT count(*) FROM locks WHERE pid = ? AND created >= ?", (pid, since)).fetchone()
                return "planning" if held[0] else "start-up"
            kinds = {r[0] for r in c.execute("SELECT kind FROM actions WHERE status = 'running' AND started >= ?",
                                             (run[0],))}
    except sqlite3.Error as e:
        if "no such table" in str(e):
            return "start-up"  # the state store is being created
        return f"unknown (state unreadable: {e})"
    if not kinds:
        return "between actions"
    if "copy_shard" in kinds:
        return "copy"
    return ", ".join(sorted(PHASE_OF_KIND.get(k, k) for k in kinds))


def action_status(db: Path, action_id: str) -> str | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            row = c.execute("SELECT status FROM actions WHERE action_id = ? ORDER BY round DESC LIMIT 1",
                            (action_id,)).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


@dataclass
class Watch:
    """One running apply, as the aim sees it while deciding whether its moment came."""

    db: Path
    pid: int
    since: str  # UTC ISO time just before the spawn
    t0: float  # monotonic time of the spawn
    done_at_start: int  # records checkpointed before this apply started

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def done(self) -> int:
        return progress(self.db)

    def phase(self) -> str:
        return apply_phase(self.db, self.pid, self.since)


@dataclass
class Aim:
    """What a kill waits for: ``reached`` is polled every few ms while the apply runs, then the
    kill follows after a jitter drawn from ``jitter`` (seconds). If the moment has not come
    ``deadline`` seconds after the spawn, the kill goes anyway (so that an aim that cannot be
    reached any more never lets an apply run to its end); the landing says so."""

    name: str
    reached: Callable[[Watch], bool]
    jitter: tuple[float, float] = (0.0, 0.0)
    deadline: float | None = None


@dataclass(frozen=True)
class Landing:
    aim: str
    phase: str  # observed just before the signal; with the detail probe's words appended
    done_before: int  # records checkpointed when the apply started
    done_at_kill: int
    seconds: float  # since the spawn
    by_deadline: bool = False  # the aim's moment had not come: killed at its deadline


@dataclass
class AimedReport:
    landings: list[Landing] = field(default_factory=list)
    cycles: int = 0
    finished_before_kill: int = 0
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        return len(self.landings)

    def by_phase(self) -> dict[str, int]:
        return dict(sorted(Counter(x.phase for x in self.landings).items()))

    def by_aim(self) -> dict[str, int]:
        return dict(sorted(Counter(x.aim for x in self.landings).items()))

    def summary(self) -> str:
        late = sum(x.by_deadline for x in self.landings)
        return (f"{self.kills} kills in {self.cycles} applies ({self.finished_before_kill} finished before their "
                f"kill point), {self.seconds:.1f}s; landed: {self.by_phase()}; aimed: {self.by_aim()}"
                f"{f' ({late} at the deadline)' if late else ''}")


def aimed_storm(spec: Path, env: dict[str, str], db: Path, kills: int, seed: int,
                choose: Callable[[random.Random, AimedReport, int], Aim], *,
                detail: Callable[[], str] | None = None, logs: Path, budget: float = 300.0,
                hang_after: float = 120.0, poll: float = 0.01) -> AimedReport:
    """SIGKILL `vecmig apply` until ``kills`` kills landed inside running applies.

    Before each apply ``choose(rng, report, records_checkpointed)`` picks the aim. ``detail``,
    when given, is called just before each kill and its words qualify the observed phase
    (e.g. whether a request was in flight). Output goes to files under ``logs`` (no pipe can
    fill up and stall the process). An apply that ends by itself must exit 0; one that
    neither ends nor reaches its aim within ``hang_after`` seconds fails the storm.
    """
    rng = random.Random(seed)
    report = AimedReport()
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "apply.out", logs / "apply.err"
    started = time.monotonic()
    while report.kills < kills and time.monotonic() - started < budget:
        report.cycles += 1
        done0 = progress(db)
        aim = choose(rng, report, done0)
        since = _utc_now()
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "vecmig.cli", "apply", str(spec), "--auto-approve"],
                                    env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **env}, cwd=ROOT,
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True)
        watch = Watch(db=db, pid=proc.pid, since=since, t0=time.monotonic(), done_at_start=done0)
        fired = late = False
        while proc.poll() is None and watch.elapsed() < hang_after:
            if aim.reached(watch):
                fired = True
                break
            if aim.deadline is not None and watch.elapsed() >= aim.deadline:
                fired = late = True
                break
            time.sleep(poll)
        landing: Landing | None = None
        if fired:
            time.sleep(rng.uniform(*aim.jitter))
            phase = watch.phase()
            if phase == "copy" and detail is not None:
                phase = f"copy, {detail()}"
            done, seconds = progress(db), watch.elapsed()
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            landing = Landing(aim.name, phase, done0, done, round(seconds, 3), by_deadline=late)
        elif proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"apply {report.cycles} ran {hang_after:.0f}s without reaching its aim "
                                 f"{aim.name!r}: {err_path.read_text()[-3000:]}")
        proc.wait()
        if proc.returncode == -signal.SIGKILL and landing is not None:
            report.landings.append(landing)
            continue
        text = out_path.read_text() + err_path.read_text()
        assert proc.returncode == 0, f"apply {report.cycles} (aim {aim.name}) exited {proc.returncode}: {text[-4000:]}"
        report.finished_before_kill += 1
    report.seconds = time.monotonic() - started
    return report


def assert_settled(spec: Path, env: dict[str, str], db: Path) -> None:
    """What ``assert_clean_state`` checks, and the plan also says "No changes" in words."""
    r = vecmig("state", "verify", str(spec), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with sqlite3.connect(db) as c:
        held = c.execute("SELECT lock_id, pid, operation FROM locks").fetchall()
    assert held == [], f"no lock may be left held: {held}"
    plan = vecmig("plan", str(spec), "--detailed-exitcode", env=env)
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout + plan.stderr
