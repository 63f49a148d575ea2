"""A Milvus session: the client, classified and retried calls, and what every part of the
provider asks of the collection (layout, partitions, counts, load state, index)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pymilvus import MilvusClient

from vecmig.errors import TransientError, VecmigError
from vecmig.providers.base import Provider
from vecmig.providers.milvus import indexsettings
from vecmig.providers.milvus import layout as lay
from vecmig.providers.milvus.errors import classify
from vecmig.retry import with_retries
from vecmig.spec import StoreSpec

T = TypeVar("T")
logging.getLogger("pymilvus").setLevel(logging.CRITICAL + 1)

# pymilvus pings every 10 s even on an idle channel; a server keeping gRPC's default policy
# (Milvus Lite's, many proxies) answers the third such ping within 5 minutes with GOAWAY
# "too_many_pings", and pymilvus then fails to bring the channel back. One ping per 5 minutes,
# and only while a call is running, passes every policy; each call still has its timeout.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
DEFAULT_PARTITION = "_default"
ALL = "*"
STRONG = {"consistency_level": "Strong"}


class MilvusSession(Provider):
    """Plumbing shared by the reading, writing and DDL parts of :class:`MilvusProvider`."""

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._client: MilvusClient | None = None
        self._layout: lay.Layout | None = None
        self._searching: tuple[lay.Layout, dict[str, Any] | None, str | None] | None = None  # search.py's cache
        conn = store.connection
        self._secrets = tuple(str(conn[k]) for k in ("uri", "token") if conn.get(k))

    def __repr__(self) -> str:  # never the uri or token
        return f"MilvusProvider(collection={self.store.collection!r}, partition={self.store.namespace!r})"

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    @property
    def _name(self) -> str:
        return self.store.collection or ""

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except VecmigError:
                raise  # already classified (a nested call, our own checks)
            except Exception as exc:  # every pymilvus/gRPC error is classified
                err = classify(exc, doing=doing, collection=self._name, role=self._role, secrets=self._secrets)
                if isinstance(err, TransientError):
                    self.close()  # the retry opens a new channel: pymilvus may not revive this one
                raise err from None  # its context may hold the token
        return with_retries(attempt, attempts=6, budget=60.0)

    def connect(self) -> None:
        if self._client is None:
            conn = self.store.connection
            kw: dict[str, Any] = {"uri": str(conn["uri"]), "timeout": float(conn.get("timeout", 60)),
                                  "dedicated": True, "grpc_options": GRPC_OPTIONS}
            if conn.get("token"):
                kw["token"] = str(conn["token"])
            self._client = self._call("connecting", lambda: MilvusClient(**kw))

    def _c(self) -> MilvusClient:
        self.connect()
        assert self._client is not None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):  # closing a dead channel must not mask the real error
                client.close()

    def _exists(self) -> bool:
        return bool(self._call("looking up the collection", lambda: self._c().has_collection(self._name)))

    def _get_layout(self) -> lay.Layout:
        if self._layout is None:
            desc = self._call("describing the collection", lambda: self._c().describe_collection(self._name))
            self._layout = lay.read_layout(desc, self.store.fields.text, f"Milvus collection '{self._name}'")
            self._ensure_loaded()  # Milvus answers queries on loaded collections only (a restart releases them)
        return self._layout

    def _partitions(self) -> list[str]:
        """The partitions this store reads: its namespace, or every partition."""
        ns = self.store.namespace
        if ns and ns != ALL:
            return [ns]
        return sorted(self._call("listing partitions", lambda: self._c().list_partitions(self._name)))

    def _count(self, partitions: list[str] | None) -> int:
        rows = self._call("counting records", lambda: self._c().query(
            self._name, filter=self._get_layout().every, output_fields=["count(*)"], partition_names=partitions,
            **STRONG))
        return int(rows[0]["count(*)"])

    def _index(self) -> tuple[dict[str, Any] | None, str | None]:
        """The vector field's index as vecmig names it (type, params, metric) and the metric."""
        layout = self._get_layout()
        names = self._call("listing indexes", lambda: self._c().list_indexes(self._name, field_name=layout.vector))
        if not names:
            return None, None
        desc = self._call("describing the index", lambda: self._c().describe_index(self._name, names[0]))
        index, metric = lay.index_info(names[0], desc)
        index.update(indexsettings.neutral(index["type"], index["params"], self._recorded_index()))
        return index, metric

    def _recorded_index(self) -> dict[str, Any]:
        """The index vecmig recorded with the collection (indexsettings.PROPERTY); its searches
        pass ``indexsettings.search_params`` of it."""
        desc = self._call("describing the collection", lambda: self._c().describe_collection(self._name))
        return indexsettings.stored(desc.get("properties"))

    def _ensure_loaded(self) -> None:
        state = self._call("reading the load state", lambda: self._c().get_load_state(self._name))
        if "Loaded" in str(state.get("state")):
            return
        if self._layout is not None and self._index()[0] is None:
            # An index swap killed between drop and build (build_index resumes later): Milvus
            # loads only indexed collections, so the FLAT placeholder goes back first. (Milvus
            # Lite loads unindexed collections by itself, so the tests cannot reach this line.)
            spec = self._c().prepare_index_params()
            spec.add_index(field_name=self._layout.vector, index_type="FLAT", metric_type="COSINE")
            self._call("restoring the FLAT index", lambda: self._c().create_index(self._name, spec))
        self._call("loading the collection", lambda: self._c().load_collection(self._name))

    def _ensure_partition(self, name: str) -> None:
        if name == DEFAULT_PARTITION:
            return
        def there() -> bool:
            return bool(self._call("looking up a partition", lambda: self._c().has_partition(self._name, name)))

        if there():
            return
        try:
            self._call(f"creating partition '{name}'", lambda: self._c().create_partition(self._name, name))
        except VecmigError:
            if not there():  # another worker (copy shards run in parallel) may have just made it
                raise
