"""Who is acting: recorded with every lock and audit event."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime
from typing import Any

# CI systems name the person behind a run in different variables; the first found wins.
_CI_ACTOR_VARS = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "CIRCLE_USERNAME")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def actor() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    who: dict[str, Any] = {"user": user, "host": socket.gethostname(), "pid": os.getpid()}
    for var in _CI_ACTOR_VARS:
        if os.environ.get(var):
            who["ci_actor"] = os.environ[var]
            break
    return who


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
