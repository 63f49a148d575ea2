"""A real Milvus server for the tests: ``milvus-lite server`` (Milvus Lite 3.x's gRPC server,
the protocol pymilvus speaks to any Milvus) in a child process, on a free localhost port, with
its data in a temporary directory. Started once per module; :meth:`MilvusLite.stop` ends it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymilvus import MilvusClient

from vecmig.providers.milvus.provider import GRPC_OPTIONS

BIN = Path(sys.executable).with_name("milvus-lite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusLite:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vecmig-milvus-"))
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = (self.dir / "server.log").open("wb")
        self.proc = self._start()
        self._wait()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(BIN), "server", "--data-dir", str(self.dir / "data"),
                                 "--host", "127.0.0.1", "--port", str(self.port)],
                                stdout=self.log, stderr=subprocess.STDOUT)

    def crash_and_restart(self) -> None:
        """SIGKILL the server (no shutdown, nothing flushed) and start it again on the same data."""
        self.proc.kill()
        self.proc.wait()
        self.proc = self._start()
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                client = MilvusClient(uri=self.uri, timeout=2, dedicated=True, grpc_options=GRPC_OPTIONS)
                client.list_collections()
                client.close()
                return
            except Exception:  # not listening yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("milvus-lite did not answer within 60 s")

    def client(self) -> MilvusClient:
        """A client of its own (not pymilvus' shared channel), pinging as vecmig's does: pymilvus'
        default 10 s pings on an idle channel make the server hang up ("too_many_pings")."""
        return MilvusClient(uri=self.uri, timeout=30, dedicated=True, grpc_options=GRPC_OPTIONS)

    def drop_all(self) -> None:
        client = self.client()
        try:
            for name in client.list_collections():
                client.drop_collection(name)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
