"""Qdrant in the contract suite: the local Qdrant server in a child process, the real client.

Collections are created by the suite through vecmig (``create_collection``) or seeded here
with qdrant-client, writing ids the way the provider documents them (an unsigned 64-bit int
as the point id, any other id under its uuid5 with the original in payload key
``_vecmig_id``) and the text under the payload key ``text``.
"""

from __future__ import annotations

import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from tests.contract.kit import StoreUnderTest
from tests.qdrant_local import QdrantLocal
from vecmig.providers.qdrant.ids import ID_KEY, is_native, point_id
from vecmig.spec import CreateSpec, StoreSpec

API_KEY = "contract-qdrant-key"


def under_test(tmp: Path) -> StoreUnderTest:
    server = QdrantLocal.spawn(api_key=API_KEY)

    def spec(name: str, role: str) -> StoreSpec:
        # dotproduct: Qdrant normalises the vectors of a cosine collection (lint QD003).
        return StoreSpec(provider="qdrant", connection={"url": server.url, "api_key": API_KEY},
                         collection=name, pointer=f"/{role}", create=CreateSpec(metric="dotproduct"))

    def seed(store: StoreSpec, records: list[dict[str, Any]]) -> None:
        name = str(store.collection)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an API key over plain http: a local server
            client = QdrantClient(url=server.url, api_key=API_KEY, prefer_grpc=False, check_compatibility=False)
        with closing(client):
            if not client.collection_exists(name) and records:
                client.create_collection(name, vectors_config=models.VectorParams(
                    size=len(records[0]["vector"]), distance=models.Distance.DOT))
            points = []
            for rec in records:
                payload = dict(rec.get("metadata") or {})
                if rec.get("text") is not None:
                    payload["text"] = rec["text"]
                if not is_native(rec["id"]):
                    payload[ID_KEY] = rec["id"]
                points.append(models.PointStruct(id=point_id(rec["id"]), vector=[float(x) for x in rec["vector"]],
                                                 payload=payload))
            for start in range(0, len(points), 256):
                client.upsert(name, points=points[start:start + 256], wait=True)

    return StoreUnderTest(
        provider="qdrant",
        spec=spec,
        lacks={"sparse": "vecmig moves one dense vector per Qdrant point (sparse vectors are not mapped yet)",
               "namespaces": "Qdrant has no namespaces (one collection is one keyspace)"},
        max_batch=1000,
        stop=server.stop,
        seed=seed,
    )
