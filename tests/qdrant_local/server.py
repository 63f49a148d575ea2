"""HTTP plumbing of the local Qdrant server: routing, JSON bodies, limits, auth, faults, spawning.

Every answer has Qdrant's envelope: ``{"result": ..., "status": "ok", "time": s}`` on success,
``{"status": {"error": "..."}, "time": s}`` on failure. Limits are the real server's: a JSON
body over 32 MB (``service.max_request_size_mb``) is refused with 400 before it is parsed;
NaN or Infinity in a body is a format error (JSON has no such numbers). With an API key set,
requests must carry it (``api-key`` header or ``Authorization: Bearer``), else 401.

Test hooks live under ``/_`` (no Qdrant path starts so) and need no key: ``POST /_reset``,
``GET /_stats``, ``POST /_faults`` (``{"script": ["503", "429", "drop", "ok", ...],
"endpoints": ["upsert"]}``: the next matching requests are answered so, in order) and
``DELETE /_faults``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.qdrant_local.handlers import Bare, Raw, route
from tests.qdrant_local.store import ApiError, Store

MAX_REQUEST_BYTES = 32 * 1024 * 1024
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Faults:
    """Scripted answers for the next matching requests (by handler name)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.script: list[str] = []
        self.endpoints: set[str] = set()
        self.fired: dict[str, int] = {}

    def next(self, endpoint: str) -> str | None:
        with self.lock:
            if not self.script or (self.endpoints and endpoint not in self.endpoints):
                return None
            action = self.script.pop(0)
            if action != "ok":
                self.fired[action] = self.fired.get(action, 0) + 1
            return None if action == "ok" else action


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _send(self, status: int, body: str, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, started: float, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"status": {"error": message}, "time": time.perf_counter() - started})
        self._send(status, body, headers=headers)

    def _read_body(self) -> tuple[bytes, int]:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b"", length

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        raw, length = self._read_body()
        if parts and parts[0].startswith("_"):
            self._hook(method, parts, raw)
            return
        if parts and parts[0] in ("healthz", "livez", "readyz") and method == "GET":
            self._send(200, "healthz check passed", "text/plain")
            return
        key = self.server.api_key
        if key is not None and not (method == "GET" and not parts):  # like Qdrant, the version needs no key
            given = self.headers.get("api-key") or (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if given != key:
                self._error(401, "Must provide an API key or an Authorization bearer token" if not given
                            else "Invalid API key or JWT", started)
                return
        found = route(method, parts)
        if found is None:
            self._send(404, "", "text/plain")
            return
        handler, args = found
        fault = self.server.faults.next(handler.__name__)
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if fault is not None:
            headers = {"Retry-After": "0"} if fault == "429" else None
            self._error(int(fault), f"injected fault {fault}", started, headers)
            return
        if length > MAX_REQUEST_BYTES:
            self._error(400, f"Format error in JSON body: JSON payload ({length} bytes) is larger than allowed "
                             f"(limit: {MAX_REQUEST_BYTES} bytes).", started)
            return
        try:
            body = json.loads(raw, parse_constant=_no_constants) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, f"Format error in JSON body: {exc}", started)
            return
        if isinstance(body, str | int | float | list):
            self._error(400, "Format error in JSON body: expected an object", started)
            return
        try:
            with self.server.store.lock:
                result = handler(self.server.store, args, dict(parse_qsl(url.query)), body)
        except ApiError as exc:
            self._error(exc.status, exc.message, started)
            return
        except Exception as exc:  # a bug here must reach the client as Qdrant's 500, not a dead socket
            self._error(500, f"Service internal error: {type(exc).__name__}: {exc}", started)
            return
        if isinstance(result, Bare):
            self._send(200, json.dumps(result))
            return
        rendered = result if isinstance(result, Raw) else json.dumps(result, ensure_ascii=False)
        elapsed = time.perf_counter() - started
        self._send(200, f'{{"result":{rendered},"status":"ok","time":{elapsed}}}')

    def _hook(self, method: str, parts: list[str], raw: bytes) -> None:
        srv = self.server
        if parts == ["_reset"] and method == "POST":
            srv.store.reset()
            srv.faults.script.clear()
            self._send(200, "{}")
        elif parts == ["_stats"]:
            with srv.store.lock:
                stats = {**srv.store.stats, "faults": dict(srv.faults.fired)}
            self._send(200, json.dumps(stats))
        elif parts == ["_faults"] and method == "POST":
            settings = json.loads(raw or b"{}")
            with srv.faults.lock:
                srv.faults.script = [str(s) for s in settings.get("script", [])]
                srv.faults.endpoints = set(settings.get("endpoints", []))
                srv.faults.fired = {}
            self._send(200, "{}")
        elif parts == ["_faults"] and method == "DELETE":
            with srv.faults.lock:
                srv.faults.script, srv.faults.endpoints = [], set()
            self._send(200, "{}")
        else:
            self._send(404, "", "text/plain")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api_key: str | None) -> None:
        self.store = Store()
        self.faults = _Faults()
        self.api_key = api_key
        super().__init__(address, _Handler)


class QdrantLocal:
    """The server in this process (a thread); ``with QdrantLocal() as srv: srv.url``."""

    def __init__(self, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http = _HttpServer((host, port), api_key)
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        return self._http.store

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> QdrantLocal:
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="qdrant-local", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def reset(self) -> None:
        self.store.reset()

    def __enter__(self) -> QdrantLocal:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @staticmethod
    def spawn(api_key: str | None = None, startup_timeout: float = 20.0) -> SpawnedQdrantLocal:
        """The server in a child process (``python -m tests.qdrant_local``), as a real one would be."""
        cmd = [sys.executable, "-m", "tests.qdrant_local", "--port", "0"]
        env = dict(os.environ)
        if api_key is not None:
            env["QDRANT_LOCAL_API_KEY"] = api_key
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
            raise RuntimeError(f"qdrant-local did not report its address within {startup_timeout}s")
        return SpawnedQdrantLocal(process, line)


class SpawnedQdrantLocal:
    """Handle on a server in a child process; test hooks go over HTTP."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def _hook(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._hook("POST", "/_reset", {})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._hook("GET", "/_stats")
        return result

    def set_faults(self, script: list[str], endpoints: list[str] | None = None) -> None:
        self._hook("POST", "/_faults", {"script": script, "endpoints": endpoints or []})

    def clear_faults(self) -> None:
        self._hook("DELETE", "/_faults")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SpawnedQdrantLocal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
