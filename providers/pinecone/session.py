"""The SDK session: client and index handles, bounded retries, readiness, the index's shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pinecone import Pinecone
from pinecone.errors import NotFoundError, PineconeError
from pinecone.models.indexes.schema import DenseVectorField, SparseVectorField

from vecmig.errors import TerminalError, TransientError
from vecmig.providers.base import Provider
from vecmig.providers.pinecone import lint, packing
from vecmig.providers.pinecone.common import (
    DEFAULT_CONCURRENCY,
    MAX_INDEX_NAME,
    T,
    UpsertStats,
    _opt_str,
    _scrubbed,
    _valid_index_name,
    canonical_namespace,
)
from vecmig.providers.pinecone.errors import classify
from vecmig.retry import with_retries
from vecmig.spec import StoreSpec
from vecmig.state.redact import secret_parts


class PineconeSession(Provider):
    """Lifecycle and every SDK call of one provider instance; the key never leaves it."""

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        conn = store.connection or {}
        self._api_key: str | None = _opt_str(conn.get("api_key"))
        self._host: str | None = _opt_str(conn.get("host"))
        # Provider options from the spec's connection (schema: x-providers pinecone).
        self._concurrency = max(1, int(conn.get("concurrency", DEFAULT_CONCURRENCY)))
        self._nested: lint.NestedPolicy = "json" if conn.get("nested_metadata") == "json" else "error"
        self._timeout = float(conn.get("timeout", 30.0))
        self._ready_timeout = float(conn.get("ready_timeout", 300.0))
        self._namespace = canonical_namespace(store.namespace)
        self._text_key = store.fields.text or "text"
        self._select = tuple(store.fields.metadata) if isinstance(store.fields.metadata, tuple | list) else None
        # The key and, should the host be a URL with userinfo, that too.
        self._secrets = tuple(s for s in (self._api_key, *secret_parts(str(conn.get("host") or ""), whole=False))
                              if s)
        self._pc: Pinecone | None = None
        self._index: Any = None
        self._model: Any = None  # IndexModel of a ready index, cached per instance
        self._pool: ThreadPoolExecutor | None = None
        self._max_request_bytes = packing.MAX_REQUEST_BYTES - packing.REQUEST_MARGIN
        self._lock = threading.Lock()  # upsert_stats and the adaptive request cap
        self._open_lock = threading.RLock()  # lazy client/index creation, reached from pool threads
        self.upsert_stats = UpsertStats()

    def __repr__(self) -> str:
        # Never the client: the SDK's repr shows the key's last characters.
        return f"PineconeProvider(index={self.store.collection!r}, namespace={self._namespace!r})"

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    def connect(self) -> None:
        self._client()

    def _client(self) -> Pinecone:
        with self._open_lock:
            return self._pc if self._pc is not None else self._new_client()

    def _new_client(self) -> Pinecone:
        try:
            # Pool large enough that `concurrency` connections stay alive between requests
            # (httpx keeps half the pool alive).
            self._pc = Pinecone(api_key=self._api_key, host=self._host, timeout=self._timeout,
                                connection_pool_maxsize=max(20, 2 * self._concurrency + 4))
        except PineconeError as exc:
            raise TerminalError(
                f"cannot configure the Pinecone client: {_scrubbed(exc, self._secrets)}",
                hint=f"set {self._role}.connection.api_key (e.g. \"${{env:PINECONE_API_KEY}}\") to a valid key",
            ) from None
        return self._pc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        index, self._index = self._index, None
        if index is not None:
            index.close()
        pc, self._pc = self._pc, None
        if pc is not None:
            pc.close()
        self._model = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="vecmig-pinecone")
        return self._pool

    # ---- calling the SDK ------------------------------------------------------------------

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        """One SDK request with vecmig's bounded retries around the SDK's own."""

        def attempt() -> T:
            try:
                return fn()
            except PineconeError as exc:
                raise classify(exc, doing=doing, index=self.store.collection, role=self._role,
                               secrets=self._secrets) from None

        return with_retries(attempt, attempts=6, base=0.25, cap=10.0, budget=180.0)

    def _index_name(self) -> str:
        name = self.store.collection
        if not name:
            raise TerminalError(f"{self._role}.collection is required", hint="name the Pinecone index")
        if len(name) > MAX_INDEX_NAME or not _valid_index_name(name):
            raise TerminalError(
                f"'{name}' is not a valid Pinecone index name",
                hint="use lowercase letters, digits and '-', at most 45 characters, starting and ending alphanumeric",
            )
        return name

    def _describe(self) -> Any:
        """The index's IndexModel, or None when it does not exist."""
        name = self._index_name()
        pc = self._client()

        def describe() -> Any:
            try:
                return pc.indexes.describe(name)
            except NotFoundError:
                return None

        return self._call(f"describing index '{name}'", describe)

    def _ready_model(self) -> Any:
        """IndexModel of an existing index, waiting (bounded) while it initializes."""
        if self._model is not None:
            return self._model
        model = self._describe()
        if model is None:
            raise TerminalError(
                f"Pinecone index '{self.store.collection}' does not exist",
                hint=f"check {self._role}.collection, or let vecmig create it (target.create)",
            )
        if not model.status.ready:
            model = self._wait_ready(model.name)
        self._model = model
        return model

    def _data(self) -> Any:
        """The data-plane client for the index's own host (from describe); one per instance,
        shared by the pool's threads (httpx clients are thread-safe)."""
        with self._open_lock:
            if self._index is None:
                model = self._ready_model()
                try:
                    self._index = self._client().Index(host=model.host)
                except PineconeError as exc:
                    raise TerminalError(
                        f"cannot open index '{model.name}': {_scrubbed(exc, self._secrets)}"
                    ) from None
            return self._index

    def _wait_ready(self, name: str) -> Any:
        # Our own short polling: the SDK's create() would poll every 5 s.
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.05
        while True:
            model = self._describe()
            if model is None:
                raise TerminalError(f"Pinecone index '{name}' disappeared while vecmig waited for it")
            state = str(model.status.state)
            if model.status.ready:
                return model
            if state in ("InitializationFailed", "Terminating", "Disabled"):
                raise TerminalError(
                    f"Pinecone index '{name}' is {state}",
                    hint="delete it in the Pinecone console (or vecmig rollback) and apply again",
                )
            if time.monotonic() + delay > deadline:
                raise TransientError(
                    f"Pinecone index '{name}' is still {state} after {self._ready_timeout:.0f}s",
                    hint="apply again later: the index keeps initializing",
                )
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)

    # ---- shape ----------------------------------------------------------------------------

    def _shape(self, model: Any) -> tuple[int | None, str, bool]:
        """(dimension, metric, has sparse field) from the 2026-07 schema."""
        fields = dict(model.schema.fields)
        dense = [f for f in fields.values() if isinstance(f, DenseVectorField)]
        sparse = any(isinstance(f, SparseVectorField) for f in fields.values())
        if len(dense) > 1 or (not dense and not sparse):
            raise TerminalError(
                f"Pinecone index '{model.name}' is a document index ({', '.join(sorted(fields))}); "
                "vecmig moves vector indexes",
                hint=f"point {self._role}.collection at an index created with a dimension",
            )
        if dense:
            return int(dense[0].dimension), str(dense[0].metric or "cosine"), sparse
        return None, "dotproduct", sparse

    @property
    def _dimension(self) -> int | None:
        return self._shape(self._ready_model())[0]
