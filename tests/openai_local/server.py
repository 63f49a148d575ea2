"""The HTTP side: one ThreadingHTTPServer on loopback, requests answered as OpenAI answers them."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

from vecmig.embed.model import Model

DEFAULT_API_KEY = "sk-local-MARKER-do-not-leak-91c2"
_MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


@dataclass
class Faults:
    """Every ``rate_limit_every``-th request gets 429 with ``Retry-After: retry_after``; every
    ``error_every``-th request gets ``error_status`` (checked after the 429s)."""

    rate_limit_every: int = 0
    retry_after: float = 0.0
    error_every: int = 0
    error_status: int = 500


@dataclass
class Stats:
    requests: int = 0
    served: int = 0
    rate_limited: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    texts: Counter[str] = field(default_factory=Counter)

    @property
    def texts_embedded(self) -> int:
        return sum(self.texts.values())


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = headers or {}


class OpenAILocal:
    """``url`` is the base the ``openai`` client takes (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, model: Model, *, model_name: str | None = None, api_key: str = DEFAULT_API_KEY,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = model
        self.model_name = model_name or model.name
        self.api_key = api_key
        self.faults = Faults()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass at a time, as one GPU would
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> OpenAILocal:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-local", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.stats = Stats()

    def __enter__(self) -> OpenAILocal:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- the endpoint -------------------------------------------------------------------------

    def _fault(self) -> None:
        with self._lock:
            self.stats.requests += 1
            n, f = self.stats.requests, self.faults
            if f.rate_limit_every and n % f.rate_limit_every == 0:
                self.stats.rate_limited += 1
                raise ApiFailure(429, "Rate limit reached for requests", kind="requests", code="rate_limit_exceeded",
                                 headers={"Retry-After": f"{f.retry_after:g}"})
            if f.error_every and n % f.error_every == 0:
                self.stats.errors += 1
                raise ApiFailure(f.error_status, "The server had an error while processing your request.",
                                 kind="server_error")

    def embeddings(self, auth: str | None, body: Any) -> dict[str, Any]:
        if auth != f"Bearer {self.api_key}":
            shown = (auth or "")[7:][:3] + "***"
            raise ApiFailure(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
        self._fault()
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            raise ApiFailure(400, "you must provide a model parameter" if isinstance(body, dict) and "model" not in body
                             else "'input' is a required property", param="input")
        if body["model"] != self.model_name:
            raise ApiFailure(404, f"The model `{body['model']}` does not exist or you do not have access to it.",
                             code="model_not_found")
        if body.get("dimensions") is not None:
            raise ApiFailure(400, "This model does not support specifying dimensions.", param="dimensions")
        texts = self._inputs(body["input"])
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiFailure(400, f"'{fmt}' is not one of ['float', 'base64'] - 'encoding_format'",
                             param="encoding_format")
        counts = self.model.count_tokens(texts)
        limit = self.model.max_tokens
        for n in counts:
            if limit is not None and n > limit:
                raise ApiFailure(400, f"This model's maximum context length is {limit} tokens, however you "
                                 f"requested {n} tokens in your input. Please reduce your input.", param="input")
        with self._model_lock:
            vectors = self.model.embed(texts)
        with self._lock:
            self.stats.served += 1
            self.stats.prompt_tokens += sum(counts)
            self.stats.texts.update(texts)
        data = [{"object": "embedding", "index": i, "embedding": _encode(v, fmt)} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": self.model_name,
                "usage": {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}}

    @staticmethod
    def _inputs(value: Any) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            # Token arrays are valid for OpenAI; this server takes only text, and says so.
            raise ApiFailure(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", param="input")
        if len(texts) > _MAX_INPUTS:
            raise ApiFailure(400, f"'$.input' is invalid: at most {_MAX_INPUTS} inputs per request.", param="input")
        if any(not t for t in texts):
            raise ApiFailure(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", param="input")
        return texts

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats, not logs
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    if self.path.rstrip("/") != "/v1/embeddings":
                        raise ApiFailure(404, f"Invalid URL (POST {self.path})")
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ApiFailure(400, "We could not parse the JSON body of your request.") from None
                    self._send(200, server.embeddings(self.headers.get("Authorization"), body), {})
                except ApiFailure as e:
                    self._send(e.status, e.body, e.headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return [float(x) for x in vector]
