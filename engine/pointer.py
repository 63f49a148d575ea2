"""Pointers: how readers of a store without aliases (Pinecone) are moved to a new index.

Pinecone has no aliases, so an application finds "the live index" through something it
reads. vecmig supports two such things, alone or together:

* a **pointer file**: JSON the application reads (``{"index", "host", "namespace",
  "previous", "switched_at", ...}``), replaced atomically (write a temporary file in the
  same directory, fsync, rename over, fsync the directory), so a reader sees the old or the
  new content, never a torn one;
* a **pointer command**: a shell command run with ``VECMIG_INDEX``, ``VECMIG_HOST``,
  ``VECMIG_NAMESPACE``, ``VECMIG_PREVIOUS_INDEX`` and ``VECMIG_OPERATION`` (``cutover`` or
  ``rollback``) in its environment, e.g. to update a config service or a feature flag.
  It must be idempotent: an apply killed mid-cutover runs it again. Its environment never
  holds the spec's secrets (no API key, no DSN): variables whose value is one are removed.

Rollback restores the file's exact previous bytes (or removes it if there was none) and
runs the command with the previous index (an empty ``VECMIG_INDEX`` when there was none).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecmig import durable, safe_paths
from vecmig.errors import TerminalError
from vecmig.spec import PointerSpec

ENV_PREFIX = "VECMIG_"


def key_variables() -> set[str]:
    """Variables that hold a store's key by convention (each store's kit names its own),
    removed even when the spec wrote the key literally."""
    from vecmig.providers import kits

    return {name for rules in kits().values() for name in rules.secret_env}

MAX_SHOWN = 300  # characters of a failed command's output in the error


@dataclass(frozen=True)
class Live:
    """What a pointer points at."""

    index: str | None
    host: str | None = None
    namespace: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "host": self.host, "namespace": self.namespace}


# Every key vecmig writes into a pointer file. A file with any other key is not one of ours:
# replacing it would lose that key's value, so vecmig refuses to (lint code POINTER_CODE).
POINTER_KEYS = frozenset({"index", "host", "namespace", "previous", "switched_at", "written_by", "migration"})
POINTER_CODE = "VM130"


def read_file(path: Path) -> str | None:
    """The file's exact text (no newline translation: rollback restores these bytes), or None
    when it does not exist. Only a regular file is read, and at most POINTER_MAX_BYTES of it."""
    try:
        data = safe_paths.read_bytes(path, "pointer file", safe_paths.POINTER_MAX_BYTES, error=TerminalError,
                                     hint="target.pointer.file must be a small JSON file vecmig writes")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TerminalError(f"cannot read pointer file {path}: {exc.strerror}",
                            hint="check the path and permissions of target.pointer.file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TerminalError(f"pointer file {path} is not UTF-8 text, so it is not a vecmig pointer file",
                            hint=REPLACE_HINT) from None


REPLACE_HINT = ("vecmig replaces only its own pointer files (JSON with the keys index, host, namespace, previous, "
                "switched_at): point target.pointer.file at a new path, or move that file away")


def not_a_pointer(text: str | None) -> str | None:
    """Why existing file text is not a vecmig pointer file (so must not be replaced); None if it is.

    An absent or empty file holds nothing to lose. Anything else must be a JSON object with
    only the keys vecmig writes, its index a string (or null).
    """
    if text is None or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return "is not JSON"
    if not isinstance(data, dict):
        return "is not a JSON object"
    if "index" not in data:
        return "has no \"index\" key"
    other = sorted(set(data) - POINTER_KEYS)
    if other:
        shown = ", ".join(repr(k) for k in other[:3]) + (", ..." if len(other) > 3 else "")
        return f"has keys vecmig does not write ({shown})"
    bad = [k for k in ("index", "host", "namespace", "previous") if not isinstance(data.get(k), str | None)]
    if bad:
        return f"has a non-string {bad[0]!r}"
    return None


def replace_problem(path: Path) -> str | None:
    """Why vecmig must not replace ``path`` with a pointer file; None when it may (absent, or ours)."""
    problem = safe_paths.file_problem(path)
    if problem is not None:
        return problem
    try:
        return not_a_pointer(read_file(path))
    except TerminalError as exc:
        return exc.message.removeprefix(f"pointer file {path} ")


def check_replaceable(path: Path) -> None:
    """Refuse, before writing, to replace a file that is not a vecmig pointer file."""
    problem = replace_problem(path)
    if problem is not None:
        raise TerminalError(f"pointer file {path} {problem}: it is not a vecmig pointer file, so vecmig will not "
                            f"replace it ({POINTER_CODE})", hint=REPLACE_HINT)


def parse(text: str | None) -> Live | None:
    """The Live a pointer file holds; None for no file or a file vecmig cannot read as one."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("index"), str):
        return None
    host, ns = data.get("host"), data.get("namespace")
    return Live(index=data["index"], host=host if isinstance(host, str) else None,
                namespace=ns if isinstance(ns, str) else None)


def current_index(path: Path) -> str | None:
    """Index the pointer file names now (plans show it; read-only)."""
    live = parse(read_file(path))
    return live.index if live else None


def content(live: Live, previous: Live | None, migration: str) -> str:
    body = {
        **live.to_json(),
        "previous": previous.index if previous else None,
        "switched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "written_by": "vecmig",
        "migration": migration,
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, whole."""
    safe_paths.ensure_file(path, "pointer file", error=TerminalError)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")  # the exact bytes: rollback restores what read_file decoded

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        # Keep the mode readers were given; a new pointer file is world-readable.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)

    durable.atomic_write(path, write, what="pointer file")


def remove(path: Path) -> None:
    safe_paths.ensure_file(path, "pointer file", error=TerminalError)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The removal is durable only once the directory entry is; not every platform allows it.
    with contextlib.suppress(OSError):
        durable.fsync_path(directory)


def command_env(live: Live, previous: str | None, operation: str, secrets: Iterable[str]) -> dict[str, str]:
    """The parent's environment without secrets, plus the VECMIG_* variables."""
    hidden = {s for s in secrets if s}
    conventional = key_variables()
    env = {k: v for k, v in os.environ.items()
           if v not in hidden and k not in conventional and not k.startswith(ENV_PREFIX)}
    env.update({
        "VECMIG_INDEX": live.index or "",
        "VECMIG_HOST": live.host or "",
        "VECMIG_NAMESPACE": live.namespace or "",
        "VECMIG_PREVIOUS_INDEX": previous or "",
        "VECMIG_OPERATION": operation,
    })
    return env


def run_command(command: str, live: Live, previous: str | None, *, operation: str, cwd: Path, timeout: float,
                secrets: Iterable[str]) -> None:
    secret_list = [s for s in secrets if s]
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=command_env(live, previous, operation,
                                                                                 secret_list),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TerminalError(f"the pointer command did not finish within {timeout:g}s ({operation})",
                            hint="make target.pointer.command faster, or raise target.pointer.timeout") from None
    except OSError as exc:
        raise TerminalError(f"cannot run the pointer command: {exc.strerror}",
                            hint="check target.pointer.command") from None
    if done.returncode != 0:
        said = _last_line(done.stderr) or _last_line(done.stdout)
        for s in sorted(secret_list, key=len, reverse=True):
            said = said.replace(s, "***")
        raise TerminalError(
            f"the pointer command exited with status {done.returncode} ({operation} to "
            f"{live.index or 'no index'})" + (f": {said[:MAX_SHOWN]}" if said else ""),
            hint="fix target.pointer.command; `vecmig apply` runs it again (it must be idempotent)"
            if operation == "cutover" else "fix target.pointer.command and run `vecmig rollback` again",
        )


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def switch(spec: PointerSpec, base_dir: Path, live: Live, previous: Live | None, *, migration: str,
           secrets: Iterable[str]) -> None:
    """Cutover: the file first (what readers follow), then the command."""
    if spec.file:
        path = resolve(spec.file, base_dir)
        check_replaceable(path)  # planned against an absent or vecmig file; still one right now?
        write_atomic(path, content(live, previous, migration))
    if spec.command:
        run_command(spec.command, live, previous.index if previous else None, operation="cutover",
                    cwd=base_dir, timeout=spec.timeout, secrets=secrets)


def restore(spec: PointerSpec, base_dir: Path, before: dict[str, Any], current: Live, *,
            secrets: Iterable[str]) -> None:
    """Rollback: the file's previous bytes back (or no file), the command with the previous index."""
    if spec.file:
        path = resolve(spec.file, base_dir)
        old = before.get("file")
        if isinstance(old, str):
            write_atomic(path, old)
        else:
            remove(path)
    if spec.command:
        previous = Live(index=before.get("index"), host=before.get("host"), namespace=before.get("namespace"))
        run_command(spec.command, previous, current.index, operation="rollback", cwd=base_dir,
                    timeout=spec.timeout, secrets=secrets)


def shown_path(written: str, path: Path) -> str:
    """The pointer file as a plan shows it: its full path, unless it came from the environment
    (then as written, placeholders intact: plans are public)."""
    return written if "${" in written else os.path.normpath(path)


def resolve(file: str, base_dir: Path) -> Path:
    """Relative pointer paths are relative to the spec file, like every path in a spec."""
    p = Path(file).expanduser()
    return p if p.is_absolute() else base_dir / p
