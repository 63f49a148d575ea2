"""Record ids as Qdrant point ids, and back.

Qdrant takes an unsigned 64-bit integer or a UUID as a point id, nothing else. An integer id
in ``[0, 2**64)`` is its own point id; any other id (a string, a negative or larger integer)
goes in under a UUID derived from it (uuid5 over :data:`NAMESPACE`, the type tagged in the
name so that ``"5"`` and ``-5`` cannot collide), and the original id is kept in the payload
under :data:`ID_KEY`. Reading maps it back, and checks that the UUID is the one the original
id gives, so a payload edited by hand cannot pass another record's id off as this one's.

Qdrant orders points by id: every integer before every UUID, UUIDs by their 128-bit value.
:func:`order_key` is that order; scans and shards are cut in it.
"""

from __future__ import annotations

import uuid
from typing import Any

from vecmig.errors import TerminalError
from vecmig.records import RecordId

# Fixed for ever: changing it would orphan every point written under a derived UUID.
NAMESPACE = uuid.UUID("6f1c2e0a-8d4b-5b7e-9a43-3c1d7e5a2b90")
ID_KEY = "_vecmig_id"  # payload key holding an id that is not its own point id
U64_MAX = 2**64 - 1

PointId = int | str
OrderKey = tuple[int, int]


def is_native(rid: RecordId) -> bool:
    """Whether ``rid`` is a point id as it stands (an unsigned 64-bit integer)."""
    return type(rid) is int and 0 <= rid <= U64_MAX


def point_id(rid: RecordId) -> PointId:
    if is_native(rid):
        return rid
    tag = "int" if type(rid) is int else "str"
    return str(uuid.uuid5(NAMESPACE, f"{tag}:{rid}"))


def order_key(pid: Any) -> OrderKey:
    """Qdrant's order of point ids (a cursor or a shard bound as stored in state)."""
    if type(pid) is int:
        return (0, pid)
    return (1, uuid.UUID(str(pid)).int)


def record_id(pid: PointId, payload: dict[str, Any], collection: str) -> RecordId:
    """The record id of a point, taking :data:`ID_KEY` out of ``payload``."""
    if ID_KEY not in payload:
        return pid
    original = payload.pop(ID_KEY)
    if type(original) not in (int, str) or point_id(original) != pid:
        raise TerminalError(
            f"point {pid!r} of Qdrant collection '{collection}' holds {ID_KEY}={original!r}, "
            "which is not the id it was stored under",
            hint=f"remove the {ID_KEY} payload key from that point, or restore the original id",
        )
    return original  # type: ignore[no-any-return]
