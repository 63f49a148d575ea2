"""Pinecone in the contract suite: the real ``pinecone`` SDK against the local server speaking its
REST protocol (``tests/pinecone_local``, spawned once per process by ``tests/support/pinecone``),
faults injected by that server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.contract.kit import Faults, StoreUnderTest
from tests.pinecone_local import reset_sdk_host_state
from tests.support import pinecone
from vecmig.spec import CreateSpec, StoreSpec

LACKS = {
    "ids:str": "ids must be printable ASCII: any other id is refused, naming the record (PC007)",
    "ids:int": "ids are strings: an int id is written as its decimal text (fetch maps it back to the "
               "type asked for; a scan gives the text)",
    "metadata:int": "metadata numbers are doubles: an int comes back as the float of the same value "
                    "(2 -> 2.0); one beyond 2**53 is refused",
}


def under_test(tmp: Path) -> StoreUnderTest:
    server = pinecone.acquire()

    def spec(collection: str, role: str) -> StoreSpec:
        return StoreSpec(provider="pinecone", connection={"api_key": pinecone.API_KEY, "host": server.url},
                         collection=collection, create=CreateSpec(), pointer=f"/{role}", base_dir=tmp)

    def seed(spec: StoreSpec, records: list[dict[str, Any]]) -> None:
        """The index created and filled with the SDK itself, as a user's data would be: ids as
        strings, the text under the metadata key ``text`` (vecmig's default), nulls left out."""
        from pinecone import Pinecone, ServerlessSpec

        with Pinecone(api_key=pinecone.API_KEY, host=server.url) as pc:
            pc.create_index(name=spec.collection, dimension=len(records[0]["vector"]), metric="cosine",
                            spec=ServerlessSpec(cloud="aws", region="us-east-1"))
            index = pc.Index(host=pc.describe_index(spec.collection).host)
            vectors = []
            for rec in records:
                metadata = {k: v for k, v in rec["metadata"].items() if v is not None}
                if rec.get("text") is not None:
                    metadata["text"] = rec["text"]
                item: dict[str, Any] = {"id": str(rec["id"]), "values": rec["vector"], "metadata": metadata}
                if rec.get("sparse") is not None:
                    item["sparse_values"] = rec["sparse"]
                vectors.append(item)
            for start in range(0, len(vectors), 100):
                index.upsert(vectors=vectors[start:start + 100], namespace=spec.namespace or "")

    @contextmanager
    def faults(target: StoreSpec) -> Iterator[Faults]:
        server.reset_stats()
        # 429s, 503s and dropped connections on upserts, none asking for a wait; the SDK and
        # vecmig's own retries (and, past them, the engine's) must absorb every one.
        server.set_faults(script=["429", "ok", "503", "drop", "ok", "429", "429", "503"], retry_after=0,
                          retry_after_503=0, endpoints=["upsert"])
        try:
            yield Faults(target, lambda: sum(server.stats()["faults"].values()))
        finally:
            server.clear_faults()
            reset_sdk_host_state()  # the SDK's per-host retry budget must not leak into later cases

    return StoreUnderTest(provider="pinecone", spec=spec, lacks=LACKS, max_batch=1000, stop=pinecone.release,
                          seed=seed, faults=faults)
