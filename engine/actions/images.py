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


def capture(target: Provider, ids: Sequence[RecordId],
            namespace: str | None = None) -> list[tuple[str, bool, bytes | None]]:
    """One row per id: whether it existed, and its full content if it did. ``namespace``: the
    target keeps records per namespace (``namespace: "*"``), and these ids are about to be
    written there: the image is of that namespace's record, keyed ``[namespace, id]`` so that
    a namesake in another namespace is an image of its own."""
    existing = target.fetch(ids) if namespace is None else target.fetch_in({"namespace": namespace}, ids)
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
        if namespace is not None:
            image["namespace"] = namespace
        found[_image_key(rid, namespace)] = json.dumps(image, default=str).encode()
    return [(_image_key(r, namespace), _image_key(r, namespace) in found, found.get(_image_key(r, namespace)))
            for r in ids]


def absent(ids: Sequence[RecordId], namespace: str | None = None) -> list[tuple[str, bool, bytes | None]]:
    """Images of ids known not to exist in the target (a collection vecmig created and no earlier
    action wrote them): restoring them deletes exactly these records."""
    return [(_image_key(r, namespace), False, None) for r in ids]


def _image_key(record_id: RecordId, namespace: str | None) -> str:
    return id_key(record_id) if namespace is None else json.dumps([namespace, record_id])


def restore(target: Provider, images: Iterable[BeforeImageRow], batch_size: int = 1000) -> int:
    """Put back what existed and delete what did not; idempotent, so a killed rollback can rerun.
    Images taken per namespace go back into their namespace (one upsert or delete per namespace)."""
    to_delete: list[tuple[str | None, RecordId]] = []
    rows: list[dict[str, Any]] = []
    n = 0

    def flush() -> None:
        by_space: dict[str | None, list[dict[str, Any]]] = {}
        for r in rows:
            by_space.setdefault(r.get("namespace"), []).append(r)
        for space, some in by_space.items():
            batch = Batch(
                ids=[r["id"] for r in some],
                vectors=as_vectors([np.frombuffer(base64.b64decode(r["vector"]), dtype="<f4") for r in some]),
                metadata=[r["metadata"] for r in some],
                texts=[r["text"] for r in some],
            )
            if any(r.get("sparse") is not None for r in some):
                batch.extra["sparse"] = [r.get("sparse") for r in some]
            if space is not None:
                batch.extra["namespace"] = space
            target.upsert(batch)
        rows.clear()
        gone: dict[str | None, list[RecordId]] = {}
        for space, rid in to_delete:
            gone.setdefault(space, []).append(rid)
        for space, ids in gone.items():
            if space is None:
                target.delete(ids)
            else:
                target.delete_in({"namespace": space}, ids)
        to_delete.clear()

    for img in images:
        n += 1
        if img["existed"]:
            rows.append(json.loads(cast(bytes, img["payload"])))  # an image of a record that existed holds it
        else:
            key = json.loads(img["record_id"])
            to_delete.append((str(key[0]), key[1]) if isinstance(key, list) else (None, key))
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
    if ctx.target_will_be_dropped or not (action.params.get("before_images") or action.params.get("journal")):
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
                ctx.state.save_before_images(ctx.round, action.id, capture(tgt, chunk, ns))
            tgt.delete_in(shard, chunk)
            if advance:
                ctx.reporter.advance(action, len(chunk))
    return len(listed)
