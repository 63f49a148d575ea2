"""A decoder for PostgreSQL's ``pgoutput`` logical replication protocol (version 1).

Only what change-data capture needs: transaction boundaries (Begin, Commit), the relation
each change belongs to (Relation) and, per change, the columns as the server sent them in
text form (Insert, Update, Delete) or the relations emptied (Truncate). Values stay text:
the catch-up re-reads the current rows of the ids it sees (``changefeed.py``), so nothing
here has to reproduce PostgreSQL's types, and an unchanged TOASTed value (``u``) is fine.

Message layouts: PostgreSQL 16 docs, "Logical Replication Message Formats" (53.9).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Timestamps on the wire are microseconds since 2000-01-01 UTC (PostgreSQL's epoch).
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

UNCHANGED = object()  # a TOASTed value the update did not touch: not sent


class DecodeError(ValueError):
    """Bytes that are not a pgoutput v1 message this decoder knows."""


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # the position after the commit record: where a consumer confirms up to
    commit_time: datetime


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    key: bool  # part of the replica identity


@dataclass(frozen=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # d(efault) n(othing) f(ull) i(ndex)
    columns: tuple[RelationColumn, ...]


# A tuple's columns: text, None (SQL NULL) or UNCHANGED, in the relation's column order.
Values = tuple[object, ...]


@dataclass(frozen=True)
class Insert:
    relid: int
    new: Values


@dataclass(frozen=True)
class Update:
    relid: int
    new: Values
    old: Values | None = None  # key columns (K) or the whole old row (O) when the key changed / FULL
    old_kind: str | None = None


@dataclass(frozen=True)
class Delete:
    relid: int
    old: Values
    old_kind: str = "K"


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool = False
    restart_identity: bool = False


@dataclass(frozen=True)
class Other:
    """A message kind CDC does not act on (Origin, Type, logical Message)."""

    tag: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Other


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"message ends after {len(self.data)} bytes, {end} needed")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def i16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def i32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DecodeError("unterminated string")
        out = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return out

    def time(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.i64())

    def tuple(self) -> Values:
        values: list[object] = []
        for _ in range(self.i16()):
            kind = chr(self.u8())
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in ("t", "b"):
                raw = self.take(self.i32())
                values.append(raw.decode("utf-8") if kind == "t" else raw)
            else:
                raise DecodeError(f"unknown tuple column kind {kind!r}")
        return tuple(values)


def decode(data: bytes) -> Message:
    """One pgoutput message (one row of ``pg_logical_slot_peek_binary_changes``)."""
    if not data:
        raise DecodeError("empty message")
    r = _Reader(bytes(data), 1)
    tag = chr(data[0])
    if tag == "B":
        return Begin(final_lsn=r.u64(), commit_time=r.time(), xid=r.u32())
    if tag == "C":
        r.u8()  # flags: unused in v1
        return Commit(commit_lsn=r.u64(), end_lsn=r.u64(), commit_time=r.time())
    if tag == "R":
        relid = r.u32()
        namespace, name = r.string(), r.string()
        identity = chr(r.u8())
        columns = []
        for _ in range(r.i16()):
            flags = r.u8()
            col, oid = r.string(), r.u32()
            r.i32()  # typmod
            columns.append(RelationColumn(name=col, type_oid=oid, key=bool(flags & 1)))
        return Relation(relid, namespace or "pg_catalog", name, identity, tuple(columns))
    if tag == "I":
        relid = r.u32()
        if chr(r.u8()) != "N":
            raise DecodeError("insert without a new tuple")
        return Insert(relid, r.tuple())
    if tag == "U":
        relid = r.u32()
        kind = chr(r.u8())
        old: Values | None = None
        old_kind: str | None = None
        if kind in ("K", "O"):
            old, old_kind = r.tuple(), kind
            kind = chr(r.u8())
        if kind != "N":
            raise DecodeError("update without a new tuple")
        return Update(relid, r.tuple(), old, old_kind)
    if tag == "D":
        relid = r.u32()
        kind = chr(r.u8())
        if kind not in ("K", "O"):
            raise DecodeError("delete without an old tuple")
        return Delete(relid, r.tuple(), kind)
    if tag == "T":
        n = r.i32()
        options = r.u8()
        return Truncate(tuple(r.u32() for _ in range(n)), bool(options & 1), bool(options & 2))
    if tag in ("O", "Y", "M"):
        return Other(tag)
    raise DecodeError(f"unknown pgoutput message {tag!r}")


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass
class Transaction:
    """One committed source transaction: the rows it touched, in order."""

    end_lsn: int
    commit_time: datetime
    # (op, values, old values) per row change; op is "I", "U" or "D"; relation resolved.
    changes: list[tuple[str, Relation, Values, Values | None]] = field(default_factory=list)
    truncated: list[Relation] = field(default_factory=list)


def transactions(messages: list[bytes]) -> list[Transaction]:
    """Group one peek's messages into committed transactions (a peek returns whole ones)."""
    relations: dict[int, Relation] = {}
    out: list[Transaction] = []
    current: Transaction | None = None
    for raw in messages:
        m = decode(raw)
        if isinstance(m, Begin):
            current = Transaction(end_lsn=0, commit_time=m.commit_time)
        elif isinstance(m, Relation):
            relations[m.relid] = m
        elif isinstance(m, Commit):
            if current is None:
                raise DecodeError("commit without begin")
            current.end_lsn, current.commit_time = m.end_lsn, m.commit_time
            out.append(current)
            current = None
        elif isinstance(m, Insert | Update | Delete | Truncate):
            if current is None:
                raise DecodeError("change outside a transaction")
            if isinstance(m, Truncate):
                current.truncated.extend(relations[r] for r in m.relids if r in relations)
            elif isinstance(m, Insert):
                current.changes.append(("I", relations[m.relid], m.new, None))
            elif isinstance(m, Update):
                current.changes.append(("U", relations[m.relid], m.new, m.old))
            else:
                current.changes.append(("D", relations[m.relid], m.old, m.old))
    return out
