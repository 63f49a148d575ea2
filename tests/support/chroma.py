"""A real ``chroma run`` server for the tests: started on a free localhost port with its data in
a directory of its own, stopped (and its data left to the caller's tmp dir) at the end.

Used once per module (or session) by the Chroma tests, the contract suite and the benchmark.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_binary() -> str:
    """The ``chroma`` command of the interpreter running us (the venv's), else the PATH's."""
    here = Path(sys.executable).with_name("chroma")
    found = str(here) if here.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command is not installed: pip install -e '.[test]' (extra chroma)")
    return found


@dataclass
class ChromaServer:
    host: str
    port: int
    path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self):  # type: ignore[no-untyped-def] - chromadb's client, imported lazily
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False))


def _wait_up(server: ChromaServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"chroma run exited with {server.proc.returncode} before answering")
        try:
            r = httpx.get(f"{server.url}/api/v2/heartbeat", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(f"chroma run did not answer within {timeout:.0f}s ({last})")


@contextmanager
def chroma_server(data: Path) -> Iterator[ChromaServer]:
    """``chroma run --path data --port <free>``; yields once its heartbeat answers."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(data.parent / f"chroma-{port}.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen([chroma_binary(), "run", "--path", str(data), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    server = ChromaServer("127.0.0.1", port, data, proc)
    try:
        _wait_up(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
