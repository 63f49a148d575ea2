"""Milvus in the contract suite: a real Milvus server (milvus-lite's gRPC server) started once
for the session, collections seeded with pymilvus itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymilvus import DataType, MilvusClient

from tests.contract.kit import StoreUnderTest
from tests.support.milvus import MilvusLite
from vecmig.providers.milvus.lint import MAX_VARCHAR_BYTES
from vecmig.spec import StoreSpec


def under_test(tmp: Path) -> StoreUnderTest:
    srv = MilvusLite()

    def spec(name: str, role: str) -> StoreSpec:
        return StoreSpec(provider="milvus", connection={"uri": srv.uri}, collection=name, pointer=f"/{role}")

    def seed(store: StoreSpec, records: list[dict[str, Any]]) -> None:
        """The collection a Milvus user would make for these records, filled with ``insert``."""
        client = srv.client()
        try:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            if all(type(r["id"]) is int for r in records):
                schema.add_field("id", DataType.INT64, is_primary=True)
            else:
                schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR_BYTES)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=len(records[0]["vector"]))
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES, nullable=True)
            schema.add_field("metadata", DataType.JSON)
            index = client.prepare_index_params()
            index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
            client.create_collection(str(store.collection), schema=schema, index_params=index,
                                     consistency_level="Strong")
            rows = [{"id": r["id"], "vector": r["vector"], "text": r.get("text"), "metadata": r.get("metadata") or {}}
                    for r in records]
            for start in range(0, len(rows), 1000):
                client.insert(str(store.collection), rows[start:start + 1000])
        finally:
            client.close()

    return StoreUnderTest(
        provider="milvus",
        spec=spec,
        lacks={
            "sparse": "vecmig's Milvus collections hold one dense FLOAT_VECTOR "
                      "(the engine's VM104 refuses sparse values)",
            "namespaces": "a Milvus primary key is unique across a collection's partitions: the same id in "
                          "two partitions is one record (writing a namesake into another partition is refused by id)",
        },
        max_batch=5000,
        stop=srv.stop,
        seed=seed,
    )
