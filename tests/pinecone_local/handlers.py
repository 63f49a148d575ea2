"""Endpoint logic for both planes, independent of the HTTP plumbing in ``server.py``.

Request and response shapes follow what the ``pinecone`` 10.x SDK sends and
decodes (API version ``2026-07``): control-plane bodies are built around
``schema``/``deployment`` (``pinecone/models/indexes/``), data-plane bodies use
camelCase keys (``pinecone/index/__init__.py`` and
``pinecone/models/vectors/responses.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.pinecone_local import limits
from tests.pinecone_local.errors import ApiFailure, bad_request, not_found
from tests.pinecone_local.faults import FaultConfig, FaultInjector, RequestStats
from tests.pinecone_local.store import (
    DEFAULT_NAMESPACE_ALIAS,
    IndexState,
    Namespace,
    Record,
    canonical_namespace,
    compile_filter,
    score_dense,
    score_sparse,
    top_k_order,
)

DENSE_FIELD = "_values"
SPARSE_FIELD = "_sparse_values"
# A request naming an API version older than this gets the 2025-era index
# shape (top-level dimension/metric/spec) alongside the 2026-07 one.
_SCHEMA_API_VERSION = "2026-"

# Opens a per-index listener and returns (host URL, closer).
ListenerFactory = Callable[[str], tuple[str, Callable[[], None]]]


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_body(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"Invalid JSON in request body: {exc}") from None


def _opt_bool(body: dict[str, Any], *names: str) -> bool:
    for name in names:
        if name in body:
            value = body[name]
            if not isinstance(value, bool):
                raise bad_request(f"{name} must be a boolean")
            return value
    return False


def _encode_token(payload: dict[str, str]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_request("Invalid pagination token") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("after"), str):
        raise bad_request("Invalid pagination token")
    return decoded


class Backend:
    """All server state plus the endpoint handlers; one instance per fake server."""

    def __init__(
        self,
        *,
        api_key: str,
        ready_delay: float = 0.0,
        faults: FaultConfig | None = None,
        null_metadata: str = "strip",
        oversize_status: int = 400,
    ) -> None:
        if null_metadata not in ("strip", "reject"):
            raise ValueError("null_metadata must be 'strip' or 'reject'")
        if oversize_status not in (400, 413):
            raise ValueError("oversize_status must be 400 or 413")
        self.api_key = api_key
        self.ready_delay = ready_delay
        self.null_metadata = null_metadata
        self.oversize_status = oversize_status
        self.faults = FaultInjector(faults)
        self.stats = RequestStats()
        self.lock = threading.RLock()
        self.indexes: dict[str, IndexState] = {}
        self._closers: dict[str, Callable[[], None]] = {}
        self.listener_factory: ListenerFactory | None = None

    # -- housekeeping -------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            closers = list(self._closers.values())
            self._closers.clear()
            self.indexes.clear()
        for close in closers:
            close()
        self.stats.reset()
        self.faults.set(FaultConfig())

    def index_host(self, name: str) -> str:
        with self.lock:
            ix = self.indexes.get(name)
            if ix is None:
                raise KeyError(name)
            return ix.host

    # -- dispatch -----------------------------------------------------------

    def handle(
        self,
        endpoint: str,
        *,
        index_name: str | None,
        path_args: list[str],
        query: dict[str, list[str]],
        raw_body: bytes,
        api_version: str | None,
    ) -> Response:
        if endpoint == "create_index":
            return self.create_index(_json_body(raw_body), api_version)
        if endpoint == "list_indexes":
            return self.list_indexes(api_version)
        if endpoint == "describe_index":
            return self.describe_index(path_args[0], api_version)
        if endpoint == "configure_index":
            return self.configure_index(path_args[0], _json_body(raw_body), api_version)
        if endpoint == "delete_index":
            return self.delete_index(path_args[0])
        ix = self._data_index(index_name)
        if endpoint == "upsert":
            return self.upsert(ix, raw_body)
        if len(raw_body) > limits.MAX_MESSAGE_BYTES:
            raise bad_request(
                f"Error, message length too large: found {len(raw_body)} bytes, the limit "
                f"is: {limits.MAX_MESSAGE_BYTES} bytes"
            )
        if endpoint == "query":
            return self.query(ix, _json_body(raw_body))
        if endpoint == "fetch":
            return self.fetch(ix, query)
        if endpoint == "list":
            return self.list_vectors(ix, query)
        if endpoint == "delete":
            return self.delete(ix, _json_body(raw_body))
        if endpoint == "update":
            return self.update(ix, _json_body(raw_body))
        if endpoint == "describe_index_stats":
            return self.describe_index_stats(ix, _json_body(raw_body))
        raise not_found(f"Unknown endpoint {endpoint!r}")

    def _data_index(self, index_name: str | None) -> IndexState:
        with self.lock:
            if index_name is None:
                # The control-plane port doubles as the data plane only when
                # the choice is unambiguous, for pc.Index(host=<server url>).
                if len(self.indexes) != 1:
                    raise bad_request(
                        "pinecone-local: the control-plane host serves the data plane only "
                        f"while exactly one index exists ({len(self.indexes)} do); use the "
                        "host that describe_index returns for the index instead"
                    )
                ix = next(iter(self.indexes.values()))
            else:
                found = self.indexes.get(index_name)
                if found is None:
                    raise not_found(f"Index {index_name!r} not found")
                ix = found
        if not ix.ready:
            raise ApiFailure(503, f"Index {ix.name!r} is not ready yet; wait for status.ready")
        return ix

    # -- control plane ------------------------------------------------------

    def _index_model(self, ix: IndexState, api_version: str | None) -> dict[str, Any]:
        read_capacity = dict(ix.read_capacity or {"mode": "OnDemand"})
        read_capacity.setdefault("status", {"state": "Ready"})
        model: dict[str, Any] = {
            "name": ix.name,
            # The scheme is part of the host on purpose: the SDK rewrites a
            # scheme-less host to https://, which a plain-HTTP fake cannot serve.
            "host": ix.host,
            "status": {"ready": ix.ready, "state": "Ready" if ix.ready else "Initializing"},
            "schema": ix.schema,
            "deployment": ix.deployment,
            "deletion_protection": ix.deletion_protection,
            "read_capacity": read_capacity,
            "tags": dict(ix.tags) if ix.tags else None,
        }
        if api_version is not None and api_version < _SCHEMA_API_VERSION:
            model["dimension"] = ix.dimension
            model["metric"] = ix.metric
            model["vector_type"] = ix.vector_type
            model["spec"] = {
                "serverless": {
                    "cloud": ix.deployment["cloud"],
                    "region": ix.deployment["region"],
                }
            }
        return model

    @staticmethod
    def _schema_from_body(body: dict[str, Any]) -> tuple[dict[str, Any], int | None, str, bool]:
        """Return (schema to echo, dimension, metric, has_sparse) from a create body."""
        if "schema" in body:
            schema = body["schema"]
            if not isinstance(schema, dict) or not isinstance(schema.get("fields"), dict):
                raise bad_request("schema must be an object with a 'fields' object")
            fields_ = schema["fields"]
        elif "dimension" in body or "vector_type" in body:
            # 2025-era body: top-level dimension/metric/vector_type.
            if body.get("vector_type", "dense") == "sparse":
                fields_ = {SPARSE_FIELD: {"type": "sparse_vector"}}
            else:
                fields_ = {
                    DENSE_FIELD: {
                        "type": "dense_vector",
                        "dimension": body.get("dimension"),
                        "metric": body.get("metric", "cosine"),
                    }
                }
        else:
            raise bad_request("schema is required")
        if not fields_:
            raise bad_request("schema.fields must declare at least one vector field")
        unsupported = sorted(set(fields_) - {DENSE_FIELD, SPARSE_FIELD})
        if unsupported:
            raise bad_request(
                "pinecone-local emulates vector indexes only: schema fields must be "
                f"'{DENSE_FIELD}' (dense_vector) and/or '{SPARSE_FIELD}' (sparse_vector), "
                f"got {unsupported}"
            )
        dimension: int | None = None
        metric = "dotproduct"
        out_fields: dict[str, Any] = {}
        dense = fields_.get(DENSE_FIELD)
        if dense is not None:
            if not isinstance(dense, dict) or dense.get("type") != "dense_vector":
                raise bad_request(f"schema field '{DENSE_FIELD}' must have type 'dense_vector'")
            dimension = limits.validate_dimension(dense.get("dimension"))
            metric = limits.validate_metric(dense.get("metric", "cosine"))
            out_fields[DENSE_FIELD] = {
                "type": "dense_vector",
                "dimension": dimension,
                "metric": metric,
            }
        sparse = fields_.get(SPARSE_FIELD)
        if sparse is not None:
            if not isinstance(sparse, dict) or sparse.get("type") != "sparse_vector":
                raise bad_request(f"schema field '{SPARSE_FIELD}' must have type 'sparse_vector'")
            out_fields[SPARSE_FIELD] = {"type": "sparse_vector"}
        return {"fields": out_fields}, dimension, metric, sparse is not None

    @staticmethod
    def _deployment_from_body(body: dict[str, Any]) -> dict[str, Any]:
        deployment = body.get("deployment")
        if deployment is None and isinstance(body.get("spec"), dict):
            serverless = body["spec"].get("serverless")
            if not isinstance(serverless, dict):
                raise bad_request("pinecone-local emulates serverless indexes only")
            deployment = {"deployment_type": "managed", **serverless}
        if deployment is None:
            # The 2026-07 default when the body names no deployment.
            return {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
        if not isinstance(deployment, dict):
            raise bad_request("deployment must be an object")
        if deployment.get("deployment_type") != "managed":
            raise bad_request(
                "pinecone-local emulates managed (serverless) deployments only, got "
                f"deployment_type={deployment.get('deployment_type')!r}"
            )
        cloud = deployment.get("cloud")
        region = deployment.get("region")
        if cloud not in limits.CLOUDS:
            raise bad_request(f"Invalid cloud {cloud!r}: must be one of {', '.join(limits.CLOUDS)}")
        if not isinstance(region, str) or not region:
            raise bad_request("region is required for a managed deployment")
        return {"deployment_type": "managed", "cloud": cloud, "region": region}

    def create_index(self, body: Any, api_version: str | None) -> Response:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        if body.get("source_collection") or body.get("source_backup_id"):
            raise bad_request("Creating an index from collection or backup is not yet supported")
        name = body.get("name")
        if name is None:
            name = f"index-{uuid.uuid4().hex[:12]}"
        limits.validate_index_name(name)
        schema, dimension, metric, has_sparse = self._schema_from_body(body)
        deployment = self._deployment_from_body(body)
        protection = limits.validate_deletion_protection(body.get("deletion_protection", "disabled"))
        tags = body.get("tags")
        if tags is not None:
            tags = limits.validate_tags(tags, allow_empty_values=True)
        read_capacity = body.get("read_capacity")
        if read_capacity is not None and not isinstance(read_capacity, dict):
            raise bad_request("read_capacity must be an object")
        if self.listener_factory is None:
            raise ApiFailure(500, "pinecone-local: no listener factory configured")
        with self.lock:
            if name in self.indexes:
                raise ApiFailure(409, f"Resource {name} already exists")
            host, closer = self.listener_factory(name)
            ix = IndexState(
                name=name,
                dimension=dimension,
                metric=metric,
                has_sparse=has_sparse,
                schema=schema,
                deployment=deployment,
                deletion_protection=protection,
                tags=tags or None,
                read_capacity=read_capacity,
                ready_at=time.monotonic() + self.ready_delay,
                host=host,
            )
            self.indexes[name] = ix
            self._closers[name] = closer
            return Response(201, self._index_model(ix, api_version))

    def list_indexes(self, api_version: str | None) -> Response:
        with self.lock:
            models = [self._index_model(ix, api_version) for ix in self.indexes.values()]
        return Response(200, {"indexes": models})

    def _get_index(self, name: str) -> IndexState:
        ix = self.indexes.get(name)
        if ix is None:
            raise not_found(f"Resource {name} not found")
        return ix

    def describe_index(self, name: str, api_version: str | None) -> Response:
        with self.lock:
            return Response(200, self._index_model(self._get_index(name), api_version))

    def configure_index(self, name: str, body: Any, api_version: str | None) -> Response:
        if not isinstance(body, dict) or not body:
            raise bad_request("At least one configuration parameter must be provided")
        with self.lock:
            ix = self._get_index(name)
            if body.get("deployment"):
                raise bad_request("deployment can only be changed for pod-based indexes; this index is serverless")
            if "schema" in body and body["schema"] != ix.schema:
                raise bad_request("The schema of an index created with a schema cannot be changed")
            protection = ix.deletion_protection
            if "deletion_protection" in body:
                protection = limits.validate_deletion_protection(body["deletion_protection"])
            tags = dict(ix.tags or {})
            if "tags" in body:
                # Merge semantics: an empty value deletes the key.
                for key, value in limits.validate_tags(body["tags"], allow_empty_values=True).items():
                    if value:
                        tags[key] = value
                    else:
                        tags.pop(key, None)
                if len(tags) > limits.MAX_TAGS:
                    raise bad_request(f"tags exceeded the maximum of {limits.MAX_TAGS}")
            if "read_capacity" in body:
                if not isinstance(body["read_capacity"], dict):
                    raise bad_request("read_capacity must be an object")
                ix.read_capacity = body["read_capacity"]
            ix.deletion_protection = protection
            ix.tags = tags or None
            return Response(200, self._index_model(ix, api_version))

    def delete_index(self, name: str) -> Response:
        with self.lock:
            ix = self._get_index(name)
            if ix.deletion_protection == "enabled":
                raise ApiFailure(
                    403,
                    "Deletion protection is enabled for this index. Disable deletion protection before retrying.",
                    error_code="FORBIDDEN",
                )
            del self.indexes[name]
            closer = self._closers.pop(name)
        # Closing the listener waits for its accept loop; never under the lock.
        closer()
        return Response(202, None)

    # -- data plane ---------------------------------------------------------

    @staticmethod
    def _lsn_header(ix: IndexState, write: bool) -> dict[str, str]:
        if write:
            return {"x-pinecone-request-lsn": str(ix.lsn)}
        return {"x-pinecone-max-indexed-lsn": str(ix.lsn)}

    def upsert(self, ix: IndexState, raw_body: bytes) -> Response:
        if len(raw_body) > limits.MAX_REQUEST_BYTES:
            raise ApiFailure(self.oversize_status, limits.request_size_message(len(raw_body)))
        body = _json_body(raw_body)
        parsed = limits.parse_upsert_vectors(
            body,
            dimension=ix.dimension,
            has_sparse=ix.has_sparse,
            null_metadata=self.null_metadata,
        )
        ns_name = canonical_namespace(body.get("namespace"))
        with self.lock:
            ns = ix.namespace(ns_name, create=True)
            assert ns is not None
            for vec in parsed:
                ns.put(
                    vec.id,
                    Record(vec.values, vec.sparse_indices, vec.sparse_values, vec.metadata),
                )
            ix.lsn += 1
            headers = self._lsn_header(ix, write=True)
        self.stats.upserted(len(parsed))
        return Response(200, {"upsertedCount": len(parsed)}, headers)

    def query(self, ix: IndexState, body: Any) -> Response:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        top_k = body.get("topK", body.get("top_k"))
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise bad_request("topK is required and must be an integer")
        if not 1 <= top_k <= limits.MAX_TOP_K:
            raise bad_request(f"Invalid value for topK: {top_k}. topK must be between 1 and {limits.MAX_TOP_K}")
        raw_ns = body.get("namespace")
        ns_name = canonical_namespace(raw_ns)
        include_values = _opt_bool(body, "includeValues", "include_values")
        include_metadata = _opt_bool(body, "includeMetadata", "include_metadata")
        raw_vector = body.get("vector")
        raw_sparse = body.get("sparseVector", body.get("sparse_vector"))
        qid = body.get("id")
        if qid is not None and raw_vector is not None:
            raise bad_request("Cannot provide both 'ID' and 'vector' at the same time")
        if qid is not None and raw_sparse is not None:
            raise bad_request("Cannot provide both 'ID' and 'sparse_vector' at the same time")
        if qid is None and raw_vector is None and raw_sparse is None:
            raise bad_request("No query provided: pass one of vector, sparseVector or id")
        if qid is not None:
            limits.validate_vector_id(qid, "Query ID")
        predicate = compile_filter(body.get("filter"))

        dense_q: np.ndarray | None = None
        sparse_q: dict[int, float] | None = None
        if raw_vector is not None:
            if ix.dimension is None:
                raise bad_request("This index has no dense vector field; query with sparseVector")
            dense_q = limits.parse_dense(raw_vector, ix.dimension, what="Query vector")
        if raw_sparse is not None:
            if not ix.has_sparse:
                raise bad_request(
                    "Sparse vector queries are not supported by this index: its schema declares no sparse_vector field"
                )
            if ix.dimension is not None and ix.metric != "dotproduct":
                raise bad_request(
                    "Sparse-dense queries are only supported for indexes using the "
                    f"dotproduct metric, this index uses {ix.metric}"
                )
            nnz = limits.MAX_SPARSE_NNZ_SPARSE_INDEX if ix.dimension is None else limits.MAX_SPARSE_NNZ_HYBRID
            idx, vals = limits.parse_sparse(raw_sparse, nnz)
            sparse_q = dict(zip(idx.tolist(), vals.tolist(), strict=True))

        with self.lock:
            ns = ix.namespace(ns_name)
            matches: list[dict[str, Any]] = []
            searched = len(ns.records) if ns is not None else 0
            if ns is not None and ns.records:
                if qid is not None:
                    anchor = ns.records.get(qid)
                    if anchor is None:
                        return self._query_response(ix, [], raw_ns, searched)
                    if anchor.values is not None:
                        dense_q = anchor.values
                    if anchor.sparse_indices is not None and ix.dimension is None:
                        sparse_q = anchor.sparse_map()
                matches = self._rank(ix, ns, dense_q, sparse_q, predicate, top_k, include_values, include_metadata)
            return self._query_response(ix, matches, raw_ns, searched)

    def _query_response(self, ix: IndexState, matches: list[dict[str, Any]], raw_ns: Any,
                        records: int) -> Response:
        # Metered as the service meters a query: by the namespace's size (1 RU per GB, at
        # least 0.25), not by what it returns; the API reports whole units. Sized by the dense
        # values alone: metadata would need a JSON pass per query.
        size_gb = records * 4 * (ix.dimension or 0) / 1e9
        body = {
            "matches": matches,
            "namespace": raw_ns if isinstance(raw_ns, str) else "",
            "usage": {"readUnits": math.ceil(max(0.25, size_gb))},
        }
        return Response(200, body, self._lsn_header(ix, write=False))

    @staticmethod
    def _rank(
        ix: IndexState,
        ns: Namespace,
        dense_q: np.ndarray | None,
        sparse_q: dict[int, float] | None,
        predicate: Callable[[dict[str, Any] | None], bool] | None,
        top_k: int,
        include_values: bool,
        include_metadata: bool,
    ) -> list[dict[str, Any]]:
        if predicate is None:
            ids = list(ns.records)
        else:
            ids = [vid for vid, rec in ns.records.items() if predicate(rec.metadata)]
        if not ids:
            return []
        scores = np.zeros(len(ids), dtype=np.float32)
        if dense_q is not None and ix.dimension is not None:
            view = ns.dense(ix.dimension)
            if predicate is None:
                ids, matrix, norms = view.ids, view.matrix, view.norms
            else:
                rows = [view.rows[vid] for vid in ids]
                matrix, norms = view.matrix[rows], view.norms[rows]
            scores = scores + score_dense(ix.metric, matrix, norms, dense_q)
        if sparse_q is not None:
            scores = scores + score_sparse([ns.records[vid] for vid in ids], sparse_q)
        ascending = ix.metric == "euclidean" and dense_q is not None
        out: list[dict[str, Any]] = []
        for row in top_k_order(ids, scores, top_k, ascending):
            vid = ids[row]
            rec = ns.records[vid]
            match: dict[str, Any] = {
                "id": vid,
                "score": float(np.float32(scores[row])),
                "values": rec.values_json() if include_values else [],
            }
            if include_values and rec.sparse_json() is not None:
                match["sparseValues"] = rec.sparse_json()
            if include_metadata and rec.metadata is not None:
                match["metadata"] = rec.metadata
            out.append(match)
        return out

    def fetch(self, ix: IndexState, query: dict[str, list[str]]) -> Response:
        ids = query.get("ids", [])
        if not ids:
            raise bad_request("ids is required: pass at least one 'ids' query parameter")
        if len(ids) > limits.MAX_FETCH_IDS:
            raise bad_request(
                f"Fetch request contains {len(ids)} IDs, which exceeds the maximum of "
                f"{limits.MAX_FETCH_IDS} IDs per request"
            )
        for vid in ids:
            limits.validate_vector_id(vid)
        raw_ns = query.get("namespace", [""])[-1]
        with self.lock:
            ns = ix.namespace(canonical_namespace(raw_ns))
            vectors: dict[str, Any] = {}
            if ns is not None:
                for vid in ids:
                    rec = ns.records.get(vid)
                    if rec is None:
                        continue
                    item: dict[str, Any] = {"id": vid, "values": rec.values_json()}
                    if rec.sparse_json() is not None:
                        item["sparseValues"] = rec.sparse_json()
                    if rec.metadata is not None:
                        item["metadata"] = rec.metadata
                    vectors[vid] = item
            body = {"vectors": vectors, "namespace": raw_ns, "usage": {"readUnits": 1}}
            return Response(200, body, self._lsn_header(ix, write=False))

    def list_vectors(self, ix: IndexState, query: dict[str, list[str]]) -> Response:
        raw_ns = query.get("namespace", [""])[-1]
        prefix = query.get("prefix", [""])[-1]
        raw_limit = query.get("limit", [str(limits.DEFAULT_LIST_LIMIT)])[-1]
        try:
            limit = int(raw_limit)
        except ValueError:
            raise bad_request(f"limit must be an integer, got {raw_limit!r}") from None
        if not 1 <= limit <= limits.MAX_LIST_LIMIT:
            raise bad_request(f"Invalid value for limit: {limit}. limit must be between 1 and {limits.MAX_LIST_LIMIT}")
        after = ""
        token = query.get("paginationToken", [""])[-1]
        if token:
            decoded = _decode_token(token)
            if decoded.get("prefix", "") != prefix or decoded.get("ns", "") != raw_ns:
                raise bad_request("Invalid pagination token: it belongs to a different listing")
            after = decoded["after"]
        with self.lock:
            ns = ix.namespace(canonical_namespace(raw_ns))
            ids = sorted(vid for vid in (ns.records if ns else ()) if vid.startswith(prefix))
        if after:
            ids = [vid for vid in ids if vid > after]
        page, rest = ids[:limit], ids[limit:]
        body: dict[str, Any] = {
            "vectors": [{"id": vid} for vid in page],
            "namespace": raw_ns,
            "usage": {"readUnits": 1},
        }
        if rest:
            body["pagination"] = {"next": _encode_token({"after": page[-1], "prefix": prefix, "ns": raw_ns})}
        return Response(200, body, self._lsn_header(ix, write=False))

    def delete(self, ix: IndexState, body: Any) -> Response:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        ids = body.get("ids")
        delete_all = _opt_bool(body, "deleteAll", "delete_all")
        raw_filter = body.get("filter")
        if delete_all and ids:
            raise bad_request("No explicit IDs allowed when delete_all=true")
        if delete_all and raw_filter is not None:
            raise bad_request("No filter allowed when delete_all=true")
        if raw_filter is not None and raw_filter == {}:
            raise bad_request("Delete with empty metadata filter is not allowed")
        predicate = compile_filter(raw_filter)
        if ids is not None and raw_filter is None:
            if not isinstance(ids, list) or not ids:
                raise bad_request("ids must be a non-empty list")
            if len(ids) > limits.MAX_DELETE_IDS:
                raise bad_request(
                    f"Delete request contains {len(ids)} IDs, which exceeds the maximum of "
                    f"{limits.MAX_DELETE_IDS} IDs per request"
                )
            for vid in ids:
                limits.validate_vector_id(vid)
        elif not delete_all and predicate is None:
            raise bad_request("Must specify one of ids, deleteAll, or filter")
        ns_name = canonical_namespace(body.get("namespace"))
        with self.lock:
            ns = ix.namespace(ns_name)
            if ns is None:
                # Serverless answers 404 for a namespace that holds nothing.
                raise not_found("Namespace not found")
            if delete_all:
                ns.records.clear()
                ns.invalidate()
            elif predicate is not None:
                # The server ignores ids once a filter is present.
                for vid in [v for v, rec in ns.records.items() if predicate(rec.metadata)]:
                    ns.remove(vid)
            else:
                for vid in ids or []:
                    ns.remove(vid)
            ix.drop_empty(ns_name)
            ix.lsn += 1
            return Response(200, {}, self._lsn_header(ix, write=True))

    def update(self, ix: IndexState, body: Any) -> Response:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        vid = body.get("id")
        raw_filter = body.get("filter")
        raw_values = body.get("values")
        raw_sparse = body.get("sparseValues", body.get("sparse_values"))
        set_metadata = body.get("setMetadata", body.get("set_metadata"))
        dry_run = _opt_bool(body, "dryRun", "dry_run")
        if (vid is None) == (raw_filter is None):
            raise bad_request("Exactly one of id or filter must be provided")
        ns_name = canonical_namespace(body.get("namespace"))
        if raw_filter is not None:
            if raw_filter == {}:
                raise bad_request("Update with empty metadata filter is not allowed")
            if raw_values is not None or raw_sparse is not None:
                raise bad_request("Update by metadata request does not support updating vector values.")
            predicate = compile_filter(raw_filter)
            patch = limits.normalize_metadata(set_metadata, null_metadata=self.null_metadata) or {}
            with self.lock:
                ns = ix.namespace(ns_name)
                targets = [r for r in ns.records.values() if predicate is None or predicate(r.metadata)] if ns else []
                if not dry_run:
                    merged = [{**(r.metadata or {}), **patch} for r in targets]
                    for meta in merged:
                        limits.normalize_metadata(meta, null_metadata=self.null_metadata)
                    for rec, meta in zip(targets, merged, strict=True):
                        rec.metadata = meta
                    ix.lsn += 1
                return Response(200, {"matchedRecords": len(targets)}, self._lsn_header(ix, write=True))
        limits.validate_vector_id(vid)
        values = None
        if raw_values is not None:
            if ix.dimension is None:
                raise bad_request("This index has no dense vector field")
            values = limits.parse_dense(raw_values, ix.dimension, what="Vector")
        sparse = None
        if raw_sparse is not None:
            if not ix.has_sparse:
                raise bad_request("Sparse vector values are not supported by this index")
            nnz = limits.MAX_SPARSE_NNZ_SPARSE_INDEX if ix.dimension is None else limits.MAX_SPARSE_NNZ_HYBRID
            sparse = limits.parse_sparse(raw_sparse, nnz)
        patch = limits.normalize_metadata(set_metadata, null_metadata=self.null_metadata)
        with self.lock:
            ns = ix.namespace(ns_name)
            rec = ns.records.get(vid) if ns else None
            if rec is not None and ns is not None:
                new_meta = rec.metadata
                if patch is not None:
                    new_meta = limits.normalize_metadata(
                        {**(rec.metadata or {}), **patch}, null_metadata=self.null_metadata
                    )
                new_values = values if values is not None else rec.values
                new_idx, new_vals = sparse if sparse is not None else (rec.sparse_indices, rec.sparse_values)
                ns.put(vid, Record(new_values, new_idx, new_vals, new_meta))
            ix.lsn += 1
            return Response(200, {}, self._lsn_header(ix, write=True))

    def describe_index_stats(self, ix: IndexState, body: Any) -> Response:
        if isinstance(body, dict) and body.get("filter"):
            raise bad_request(
                "Serverless and starter indexes do not support describing index stats with metadata filtering"
            )
        with self.lock:
            namespaces = {
                (DEFAULT_NAMESPACE_ALIAS if name == "" else name): {"vectorCount": len(ns.records)}
                for name, ns in sorted(ix.namespaces.items())
                if ns.records
            }
            body_out: dict[str, Any] = {
                "namespaces": namespaces,
                "indexFullness": 0.0,
                "totalVectorCount": ix.total(),
                "metric": ix.metric,
                "vectorType": ix.vector_type,
            }
            if ix.dimension is not None:
                body_out["dimension"] = ix.dimension
            return Response(200, body_out, self._lsn_header(ix, write=False))
