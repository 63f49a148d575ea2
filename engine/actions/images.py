"""Before-images: the records vecmig is about to overwrite or delete in a target it did not create."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vecmig.namespaces import target_by_namespace
from vecmig.providers import Provider
from vecmig.records import Batch, RecordId, as_vectors, sparse_of
from vecmig.state.rows import BeforeImageRow

if TYPE_CHECKING:
    from vecmig.actions.base import RunContext
    from vecmig.model import Action


def id_key(record_id: RecordId) -> str:
    return json.dumps(record_id)


def capture(target: Provider, ids: Sequence[RecordId]) -> list[tuple[str, bool, bytes | None]]:
    """One row per id: whether it existed, and its full content if it did."""
    existing = target.fetch(ids)
    found: dict[str, bytes] = {}
    for (rid, vec, meta, text), sparse in zip(existing.rows(), sparse_of(existing), strict=True):
        image: dict[str, Any] = {
            "id": rid,
            "vector": base64.b64encode(np.ascontiguousarray(vec, dtype="<f4").tobytes()).decode(),
            "metadata": meta,
            "text": text,
        }
        if sparse is not None:  # Pinecone hybrid records: restoring without them would lose data
            image["sparse"] = _plain_sparse(sparse)
        found[id_key(rid)] = json.dumps(image, default=str).encode()
    return [(id_key(r), id_key(r) in found, found.get(id_key(r))) for r in ids]


def restore(target: Provider, images: Iterable[BeforeImageRow], batch_size: int = 1000) -> int:
    """Put back what existed and delete what did not; idempotent, so a killed rollback can rerun."""
    to_delete: list[RecordId] = []
    rows: list[dict[str, Any]] = []
    n = 0

    def flush() -> None:
        if rows:
            batch = Batch(
                ids=[r["id"] for r in rows],
                vectors=as_vectors([np.frombuffer(base64.b64decode(r["vector"]), dtype="<f4") for r in rows]),
                metadata=[r["metadata"] for r in rows],
                texts=[r["text"] for r in rows],
            )
            if any(r.get("sparse") is not None for r in rows):
                batch.extra["sparse"] = [r.get("sparse") for r in rows]
            target.upsert(batch)
            rows.clear()
        if to_delete:
            target.delete(list(to_delete))
            to_delete.clear()

    for img in images:
        n += 1
        if img["existed"]:
            rows.append(json.loads(cast(bytes, img["payload"])))  # an image of a record that existed holds it
        else:
            to_delete.append(json.loads(img["record_id"]))
        if len(rows) >= batch_size or len(to_delete) >= batch_size:
            flush()
    flush()
    return n


def _plain_sparse(sparse: Any) -> dict[str, list[Any]]:
    """JSON-able sparse values (the SDK hands back objects with indices/values attributes)."""
    def get(key: str) -> Any:
        return sparse.get(key) if isinstance(sparse, dict) else getattr(sparse, key)

    return {"indices": [int(i) for i in get("indices")], "values": [float(v) for v in get("values")]}


def undo_writes(ctx: RunContext, action: Action) -> None:
    """The inverse of every kind that overwrites or deletes target records: put their
    before-images back (nothing to do when the collection itself is dropped, or none were kept)."""
    if ctx.target_will_be_dropped or not action.params.get("before_images"):
        return
    tgt = ctx.target()
    try:
        restore(tgt, ctx.state.before_images(ctx.round, action.id))
    finally:
        tgt.close()


def delete_listed(ctx: RunContext, action: Action, tgt: Provider, listed: Sequence[Any], batch_size: int,
                  *, advance: bool = True) -> int:
    """Delete the extras a diff listed (``[namespace, id]`` pairs where records are kept per
    namespace, so a namesake elsewhere stays), saving their before-images first when the action
    keeps them. Idempotent: a killed run deletes them again (rollback restores the earliest image)."""
    keep = bool(action.params.get("before_images"))
    by_shard: dict[str | None, list[RecordId]] = {}
    for item in listed:
        if target_by_namespace(ctx.spec):
            ns, rid = item
            by_shard.setdefault(str(ns), []).append(rid)
        else:
            by_shard.setdefault(None, []).append(item)
    for ns, ids in sorted(by_shard.items(), key=lambda kv: kv[0] or ""):
        shard = {"namespace": ns} if ns is not None else None
        for i in range(0, len(ids), batch_size):
            chunk = ids[i:i + batch_size]
            if keep:
                ctx.state.save_before_images(ctx.round, action.id, capture(tgt, chunk))
            tgt.delete_in(shard, chunk)
            if advance:
                ctx.reporter.advance(action, len(chunk))
    return len(listed)
