"""HTTP plumbing for the fake: one listener for the control plane, one per index.

Routing: the control plane (``/indexes``) is served on the main port. Each index
gets a listener of its own on another ephemeral port, and ``describe_index``
reports ``http://127.0.0.1:<that port>`` as its host, so the SDK's usual
``pc.index(name=...)`` flow reaches the right index with no path or Host-header
tricks, and each index host looks like a real one (scheme, host, port, no path).
The main port also answers data-plane paths while exactly one index exists, so
``pc.Index(host=srv.url)`` works in the simple case.

Hooks for tests live under ``/_`` (no Pinecone path starts with an underscore)
and need no API key: ``GET /_health``, ``GET|POST|DELETE /_faults``,
``GET|DELETE /_stats`` (``POST /_stats/reset`` too), ``POST /_reset``,
``POST /_config``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.pinecone_local.errors import ApiFailure, Plane
from tests.pinecone_local.faults import FaultConfig, format_retry_after
from tests.pinecone_local.handlers import Backend, Response

DEFAULT_API_KEY = "test-key"
# Bodies past this are refused unread, the way a fronting proxy would.
_HARD_BODY_LIMIT = 64 * 1024 * 1024
_POLL_INTERVAL = 0.05
_REPO_ROOT = Path(__file__).resolve().parents[2]

_DATA_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/vectors/upsert"): "upsert",
    ("POST", "/query"): "query",
    ("GET", "/vectors/fetch"): "fetch",
    ("GET", "/vectors/list"): "list",
    ("POST", "/vectors/delete"): "delete",
    ("POST", "/vectors/update"): "update",
    ("POST", "/describe_index_stats"): "describe_index_stats",
    ("GET", "/describe_index_stats"): "describe_index_stats",
}


def _route(method: str, path: str, on_index_port: bool) -> tuple[str, Plane, list[str]]:
    endpoint = _DATA_ROUTES.get((method, path.rstrip("/") or "/"))
    if endpoint is not None:
        return endpoint, "data", []
    if on_index_port:
        return "unknown", "data", []
    parts = [unquote(p) for p in path.split("/") if p]
    if parts == ["indexes"]:
        if method == "GET":
            return "list_indexes", "control", []
        if method == "POST":
            return "create_index", "control", []
    if len(parts) == 2 and parts[0] == "indexes":
        by_method = {"GET": "describe_index", "PATCH": "configure_index", "DELETE": "delete_index"}
        if method in by_method:
            return by_method[method], "control", [parts[1]]
    return "unknown", "control", []


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend, index_name: str | None) -> None:
        self.backend = backend
        self.index_name = index_name
        self._conns: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise outlive the server in threads
        # blocked on a read.
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"pinecone-local:{self.server_address[1]}",
            daemon=True,
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, the client's
    # delayed ACK stalls every response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes | None:
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length else 0
        except ValueError:
            length = -1
        if length < 0 or length > _HARD_BODY_LIMIT:
            self.close_connection = True
            self._send(413 if length > 0 else 400, {"code": 3, "message": "Bad Content-Length"})
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        if split.path.startswith("/_"):
            self._hook(method, split.path, body)
            return
        backend = self.server.backend
        on_index_port = self.server.index_name is not None
        endpoint, plane, args = _route(method, split.path, on_index_port)
        api_version = self.headers.get("X-Pinecone-Api-Version")
        backend.stats.arrived(endpoint, api_version)
        injected = False
        try:
            if self.headers.get("Api-Key") != backend.api_key:
                raise ApiFailure(
                    401,
                    "Invalid API Key" if self.headers.get("Api-Key") else "API key is missing",
                )
            if endpoint == "unknown":
                raise ApiFailure(404, f"No route for {method} {split.path}")
            kind, latency = backend.faults.decide(endpoint, plane)
            if latency:
                time.sleep(latency)
            if kind == "drop":
                backend.stats.answered(endpoint, "drop", injected=True)
                # No response at all: the handler returns and the socket closes.
                self.close_connection = True
                return
            if kind is not None:
                injected = True
                raise self._injected_failure(kind, endpoint)
            response = backend.handle(
                endpoint,
                index_name=self.server.index_name,
                path_args=args,
                query=parse_qs(split.query, keep_blank_values=True),
                raw_body=body,
                api_version=api_version,
            )
        except ApiFailure as failure:
            response = Response(failure.status, failure.body(plane), failure.headers)
        except Exception as exc:  # a bug in the fake must surface as a loud 500
            traceback.print_exc()
            failure = ApiFailure(500, f"pinecone-local internal error: {exc!r}")
            response = Response(500, failure.body(plane))
        headers = {
            "x-pinecone-request-id": f"local-{time.monotonic_ns():x}",
            **({"x-pinecone-api-version": api_version} if api_version else {}),
            **response.headers,
        }
        # Counted before the bytes go out, so a client that reads stats right
        # after its response always sees this request.
        backend.stats.answered(endpoint, str(response.status), injected=injected)
        self._send(response.status, response.body, headers)

    def _injected_failure(self, kind: str, endpoint: str) -> ApiFailure:
        cfg = self.server.backend.faults.config
        if kind == "429":
            return ApiFailure(
                429,
                f"Request failed. You've reached the max requests per second limit for "
                f"{endpoint}. Retry after backing off (fault injected by pinecone-local).",
                headers={"Retry-After": format_retry_after(cfg.retry_after)},
            )
        headers = {}
        if cfg.retry_after_503 is not None:
            headers["Retry-After"] = format_retry_after(cfg.retry_after_503)
        return ApiFailure(503, "Service Unavailable (fault injected by pinecone-local)", headers=headers)

    def _hook(self, method: str, path: str, raw: bytes) -> None:
        backend = self.server.backend
        try:
            payload = json.loads(raw) if raw else {}
            if not isinstance(payload, dict):
                raise ValueError("hook body must be a JSON object")
            if path == "/_health" and method == "GET":
                self._send(200, {"ok": True, "indexes": len(backend.indexes)})
            elif path == "/_faults" and method == "GET":
                self._send(200, backend.faults.config.to_dict())
            elif path == "/_faults" and method in ("POST", "PUT"):
                config = FaultConfig.from_dict(payload)
                backend.faults.set(config)
                self._send(200, config.to_dict())
            elif path == "/_faults" and method == "DELETE":
                backend.faults.set(FaultConfig())
                self._send(200, FaultConfig().to_dict())
            elif path == "/_stats" and method == "GET":
                self._send(200, backend.stats.snapshot())
            elif (path == "/_stats" and method == "DELETE") or (path == "/_stats/reset" and method == "POST"):
                backend.stats.reset()
                self._send(200, backend.stats.snapshot())
            elif path == "/_reset" and method == "POST":
                backend.reset()
                self._send(200, {"ok": True})
            elif path == "/_config" and method == "POST":
                if "ready_delay" in payload:
                    backend.ready_delay = float(payload["ready_delay"])
                self._send(200, {"ready_delay": backend.ready_delay})
            else:
                self._send(404, {"error": f"unknown hook {method} {path}"})
        except (ValueError, TypeError) as exc:
            self._send(400, {"error": str(exc)})


def _coerce_faults(faults: FaultConfig | dict[str, Any] | None) -> FaultConfig | None:
    if faults is None or isinstance(faults, FaultConfig):
        return faults
    return FaultConfig.from_dict(faults)


class PineconeLocal:
    """A Pinecone REST fake running in background threads of this process.

    Example::

        with PineconeLocal(api_key="test-key", ready_delay=0.2) as srv:
            pc = Pinecone(api_key="test-key", host=srv.url)
            srv.set_faults(rate_429=0.1, seed=1)
            srv.stats()
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ready_delay: float = 0.0,
        faults: FaultConfig | dict[str, Any] | None = None,
        null_metadata: str = "strip",
        oversize_status: int = 400,
    ) -> None:
        self.backend = Backend(
            api_key=api_key,
            ready_delay=ready_delay,
            faults=_coerce_faults(faults),
            null_metadata=null_metadata,
            oversize_status=oversize_status,
        )
        self._bind = (host, port)
        self._main: _Server | None = None
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._servers_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> PineconeLocal:
        if self._main is not None:
            raise RuntimeError("PineconeLocal is already running")
        self._main = _Server(self._bind, self.backend, None)
        self.backend.listener_factory = self._open_index_listener
        self._threads.append(self._main.start())
        return self

    def stop(self) -> None:
        if self._main is None:
            return
        self.backend.listener_factory = None
        with self._servers_lock:
            servers = [self._main, *self._servers]
            self._servers.clear()
        for server in servers:
            server.stop()
            server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._main = None

    def __enter__(self) -> PineconeLocal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _open_index_listener(self, name: str) -> tuple[str, Callable[[], None]]:
        server = _Server((self._bind[0], 0), self.backend, name)
        with self._servers_lock:
            self._servers.append(server)
            self._threads.append(server.start())
        host = f"http://{self._bind[0]}:{server.server_address[1]}"

        def close() -> None:
            # Existing keep-alive connections stay open and answer 404 for the
            # deleted index, which is what a client racing a delete would see.
            server.stop()

        return host, close

    # -- addresses ----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._main is None:
            raise RuntimeError("PineconeLocal is not running")
        return int(self._main.server_address[1])

    @property
    def host(self) -> str:
        return f"{self._bind[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def api_key(self) -> str:
        return self.backend.api_key

    def index_host(self, name: str) -> str:
        """The ``http://127.0.0.1:PORT`` data-plane host of index *name*."""
        return self.backend.index_host(name)

    # -- test controls ------------------------------------------------------

    def set_faults(self, **settings: Any) -> FaultConfig:
        """Replace the fault configuration; unspecified settings take their defaults."""
        config = FaultConfig.from_dict(settings)
        self.backend.faults.set(config)
        return config

    def clear_faults(self) -> None:
        self.backend.faults.set(FaultConfig())

    @property
    def faults(self) -> FaultConfig:
        return self.backend.faults.config

    def stats(self) -> dict[str, Any]:
        return self.backend.stats.snapshot()

    def reset_stats(self) -> None:
        self.backend.stats.reset()

    def reset(self) -> None:
        """Delete every index and clear stats and faults."""
        self.backend.reset()

    def set_ready_delay(self, seconds: float) -> None:
        self.backend.ready_delay = seconds

    @staticmethod
    def spawn(
        api_key: str = DEFAULT_API_KEY,
        *,
        ready_delay: float = 0.0,
        faults: FaultConfig | dict[str, Any] | None = None,
        null_metadata: str = "strip",
        oversize_status: int = 400,
        startup_timeout: float = 20.0,
        python: str = sys.executable,
    ) -> SpawnedPineconeLocal:
        """Run the fake in a child process (``python -m tests.pinecone_local``)."""
        cmd = [
            python,
            "-m",
            "tests.pinecone_local",
            "--port",
            "0",
            "--print-port",
            "--api-key",
            api_key,
            "--ready-delay",
            str(ready_delay),
            "--null-metadata",
            null_metadata,
            "--oversize-status",
            str(oversize_status),
        ]
        config = _coerce_faults(faults)
        if config is not None:
            cmd += ["--faults-json", json.dumps(config.to_dict())]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        process = subprocess.Popen(cmd, cwd=str(_REPO_ROOT), env=env, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=startup_timeout)
        line = process.stdout.readline().strip() if ready else ""
        if not line:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"pinecone-local did not report its port within {startup_timeout}s (exit code {process.returncode})"
            )
        return SpawnedPineconeLocal(process, line, api_key)


class SpawnedPineconeLocal:
    """Handle on a fake running in a child process; controls go over HTTP hooks."""

    def __init__(self, process: subprocess.Popen[str], host: str, api_key: str) -> None:
        self.process = process
        self.host = host
        self.api_key = api_key

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def _hook(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"pinecone-local hook {path} failed: {exc.read()!r}") from exc

    def set_faults(self, **settings: Any) -> FaultConfig:
        return FaultConfig.from_dict(self._hook("POST", "/_faults", settings))

    def clear_faults(self) -> None:
        self._hook("DELETE", "/_faults")

    @property
    def faults(self) -> FaultConfig:
        return FaultConfig.from_dict(self._hook("GET", "/_faults"))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._hook("GET", "/_stats")
        return result

    def reset_stats(self) -> None:
        self._hook("DELETE", "/_stats")

    def reset(self) -> None:
        self._hook("POST", "/_reset", {})

    def set_ready_delay(self, seconds: float) -> None:
        self._hook("POST", "/_config", {"ready_delay": seconds})

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)

    def __enter__(self) -> SpawnedPineconeLocal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
