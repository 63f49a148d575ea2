"""The native pgvector → pgvector pipe: binary COPY bytes moved between tables unparsed.

Why: the normal copy parses every row in Python twice (psycopg's COPY row parser on the
scan, its dumpers on the upsert), and that per-row work, not PostgreSQL, was the gap to a
raw ``COPY TO`` → ``COPY FROM`` pipe. Here the *source* server computes every target
column in the target's exact type inside ``COPY (SELECT …) TO STDOUT (FORMAT BINARY)``, so
its output is valid input for ``COPY target (…) FROM STDIN (FORMAT BINARY)`` as it stands.
Python only frames a page (the protocol sends one CopyData message per row, so a page
arrives as a list of row buffers) and reads the first field of the last row: the cursor.

This module is the I/O-free part (planning the column mapping, framing the stream) plus the
threads; ``PgvectorProvider.native_copy`` does the talking to both servers. A reader thread
fetches pages (one queued ahead) and hands each on as soon as its first block is in; writer
threads, each with its own target session, write up to three pages at once: per-page
COMMITs cost a WAL fsync (3-5 ms here) that one session would wait out page after page,
which the raw single-transaction pipe never pays. At most ~5 pages are held (reading,
queued, three writing): at 384 dims and batches of 20000 the process grew by 110-190 MiB,
against 270-300 MiB for the scan → upsert loop.

The cast applied to each column is the one the normal path applies, in the same order:
``scan`` reads ``read_expr`` (canonical "wire" types), Python hands the value over
unchanged (for the type pairs admitted here), the staging table holds the target's wire
type (``WIRE_TYPE``), and ``write_expr`` casts that to the column's type. So a column gets
``CAST(CAST(<read_expr> AS <wire>) AS <target type>)``, minus the casts that are no-ops,
and both paths store the same values, so a run may switch paths at a resume.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from psycopg import sql

from vecmig.providers.pgvector.codec import PGCOPY_HEADER, PGCOPY_TRAILER
from vecmig.providers.pgvector.sql import WIRE_TYPE, Column, Layout

# Types with oids below this are built into every PostgreSQL: their names resolve on any
# server and their binary formats agree, so the source may compute them for the target.
# Anything else (a domain, citext, an enum) may differ between the two databases.
FIRST_NORMAL_OID = 16384

_WIRE_OID = {"int8": 20, "text": 25, "float8": 701, "bool": 16, "text[]": 1009, "jsonb": 3802}
# pg_type.typname of each wire type: when the target column's equals it, no cast is needed.
_WIRE_TYPNAME = {
    "int8": "int8", "text": "text", "float8": "float8", "bool": "bool", "text[]": "_text", "jsonb": "jsonb",
}  # fmt: skip
_INT_TYPNAMES = {"int2": 2, "int4": 4, "int8": 8}
_HEADER_LEN = len(PGCOPY_HEADER)


class NotApplicable(Exception):
    """This pair of tables cannot use the pipe; the message says why (for diagnostics)."""


@dataclass(frozen=True)
class PipePlan:
    """What the source selects and the target receives, column by column."""

    columns: tuple[Column, ...]  # target columns written, in the target's column order
    select: sql.Composable  # the matching SELECT list over the source table (alias ``t``)
    id_index: int  # position of the id among ``columns``
    # How the last row's id field turns into ``scan``'s cursor value: "int" or "text". None
    # when the target's id type changes the value (uuid, varchar(n), …): it is then queried.
    id_decoder: str | None
    source_id: sql.Composable  # the source id exactly as ``scan`` reads it

    @property
    def names(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(c.name) for c in self.columns)


def _wire(col: Column, is_id: bool) -> str:
    if col.logical == "vector":
        return "vector"
    if is_id:
        return "int8" if col.logical == "int" else "text"
    return WIRE_TYPE[col.logical]


def _portable(col: Column) -> bool:
    return col.oid < FIRST_NORMAL_OID or col.typname == "vector"


def column_expr(src: Column | None, tgt: Column, is_id: bool = False) -> sql.Composable:
    """The SELECT expression giving ``tgt``'s value from ``src`` (None: the source lacks it)."""
    if src is None:
        # What the normal path writes for a field no record carries.
        return sql.SQL("CAST(NULL AS " + tgt.sqltype + ")")
    expr, oid = src.read_expr("t")
    wire = _wire(tgt, is_id)
    if wire == "vector":
        # vector_recv checks the dimension against the column's typmod on the target, as the
        # normal path's assignment cast does; the bytes are the same for any typmod.
        return expr
    if oid != _WIRE_OID[wire]:
        expr = sql.SQL("CAST({} AS " + wire + ")").format(expr)
    if _WIRE_TYPNAME[wire] != tgt.typname:
        expr = sql.SQL("CAST({} AS " + tgt.sqltype + ")").format(expr)
    return expr


def _compatible(src: Column, tgt: Column) -> bool:
    # Same logical type: the normal path's Python hop is the identity. int → float: the
    # float8 dumper takes a Python int, and int8 → float8 rounds like float(int). Anything
    # else is coerced or refused client-side by the normal path, so leave it to that path.
    return src.logical == tgt.logical or (src.logical, tgt.logical) == ("int", "float")


def plan(src: Layout, tgt: Layout) -> PipePlan:
    """Map the source's columns onto the target's; raises :class:`NotApplicable`."""
    if not tgt.relation.is_table:
        raise NotApplicable(f"the target is a {tgt.relation.kind_name}")
    if src.json_column is not None or tgt.json_column is not None:
        raise NotApplicable("metadata is one json document")
    if src.id_type != tgt.id_type:
        raise NotApplicable(f"id types differ ({src.id_type} → {tgt.id_type})")
    if src.dimension is not None and tgt.dimension is not None and src.dimension != tgt.dimension:
        raise NotApplicable(f"dimensions differ ({src.dimension} → {tgt.dimension})")
    if src.text is not None and tgt.text is None:
        raise NotApplicable("the target has no text column")
    for side, col in (("source", src.text), ("target", tgt.text)):
        if col is not None and col.logical != "text":
            # The normal path stages texts as text whatever the column is; not worth mirroring.
            raise NotApplicable(f"the {side}'s text column '{col.name}' is {col.sqltype}")
    tgt_meta = {c.name: c for c in tgt.metadata}
    missing = [c.name for c in src.metadata if c.name not in tgt_meta]
    if missing:
        raise NotApplicable(f"source column(s) {', '.join(missing)} have no target column")
    src_meta = {c.name: c for c in src.metadata}
    pairs: list[tuple[Column | None, Column]] = [(src.id, tgt.id), (src.vector, tgt.vector)]
    if tgt.text is not None:
        pairs.append((src.text, tgt.text))
    pairs += [(src_meta.get(c.name), c) for c in tgt.metadata]
    pairs.sort(key=lambda p: p[1].attnum)
    for s, t in pairs:
        if not _portable(t):
            raise NotApplicable(f"target column '{t.name}' has a non-builtin type {t.sqltype}")
        if s is not None and not _compatible(s, t):
            raise NotApplicable(f"column '{t.name}': {s.sqltype} → {t.sqltype} needs the normal path's checks")
    columns = tuple(t for _, t in pairs)
    id_index = columns.index(tgt.id)
    select = sql.SQL(", ").join(column_expr(s, t, is_id=t is tgt.id) for s, t in pairs)
    decoder: str | None = None
    if tgt.id.typname in _INT_TYPNAMES:
        decoder = "int"  # same logical type, so the cast kept the value (or failed)
    elif tgt.id.typname == "text" or (tgt.id.typname == "varchar" and tgt.id.typmod < 0):
        decoder = "text"  # the source's text unchanged: what scan's cursor holds
    return PipePlan(
        columns=columns, select=select, id_index=id_index, id_decoder=decoder, source_id=src.id.read_expr("t")[0]
    )


# ---- framing a binary COPY stream -------------------------------------------------------------


# A page travels as blocks of about this size: the writer starts sending the first one while
# the reader still receives the rest, so a page is not read in full before it is written
# (the pipe's fill and drain shrink from a page to a block: at 100k x 64 dims in 5 pages of
# 20000, whole pages ran at 0.75x the raw pipe, 64-256 KiB blocks at 1.0x). 128 KiB is also
# psycopg's largest single write (MAX_BUFFER_SIZE): a block is never split again.
BLOCK_BYTES = 128 * 1024


class Page:
    """One batch in flight, streamed: the reader appends blocks of the binary COPY stream
    (header, rows, trailer) while a writer may already send them; :meth:`finish` gives the
    count and cursor once the page is read and checked, :meth:`fail` ends it otherwise."""

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._cond = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self.records = 0
        self.last_id: Any = None  # scan's cursor after this page
        self.nbytes = 0

    def add(self, block: bytes) -> None:
        with self._cond:
            self._blocks.append(block)
            self.nbytes += len(block)
            self._cond.notify_all()

    def finish(self, records: int, last_id: Any) -> None:
        with self._cond:
            self.records, self.last_id, self._done = records, last_id, True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if not self._done:
                self._error, self._done = exc, True
                self._cond.notify_all()

    def blocks(self) -> Iterator[bytes]:
        """Every block, as it arrives; returns once the page is complete, raises the reader's
        error if it failed (inside a COPY that aborts it: nothing half-read gets committed)."""
        i = 0
        while True:
            with self._cond:
                while i == len(self._blocks) and not self._done:
                    self._cond.wait()
                if self._error is not None:
                    raise self._error
                if i == len(self._blocks):
                    return
                block = self._blocks[i]
            i += 1
            yield block

    @property
    def payload(self) -> bytes:
        """The complete stream (waits for the reader), for the staged fallback."""
        return b"".join(self.blocks())


class FramingError(ValueError):
    """The COPY stream is not shaped as the protocol documents."""


def _fields(row: memoryview | bytes, start: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """End offset and (offset, length) of each field of the row beginning at ``start``."""
    n = int.from_bytes(row[start : start + 2], "big", signed=True)
    pos = start + 2
    out = []
    for _ in range(n):
        length = int.from_bytes(row[pos : pos + 4], "big", signed=True)
        pos += 4
        out.append((pos, length))
        if length > 0:
            pos += length
    if pos > len(row):
        raise FramingError("row runs past the end of its message")
    return pos, out


@dataclass(frozen=True)
class Frame:
    records: int
    last_id: bytes | None  # first field of the last row; None for an empty page


def frame(chunks: list[Any], nfields: int, id_index: int) -> Frame:
    """:func:`frame_messages` over a page kept as its list of CopyData messages."""
    return frame_messages(
        chunks[0] if chunks else None, chunks[-2] if len(chunks) > 1 else None, chunks[-1] if chunks else None,
        len(chunks), nfields, id_index,
    )  # fmt: skip


def frame_messages(first: Any, prev: Any, last: Any, messages: int, nfields: int, id_index: int) -> Frame:
    """Count the rows of a page read as ``messages`` CopyData messages and take the last row's
    id field, from the first, the second-to-last (``prev``) and the last message only.

    Copy-out sends one message per row (PostgreSQL protocol, "Copy Operations"), the header
    travels with the first row and the trailer alone, so rows need no parsing; the last row
    is walked field by field, which also proves it is exactly one row.
    """
    if not messages or bytes(first[:_HEADER_LEN]) != PGCOPY_HEADER:
        raise FramingError("missing binary COPY header")
    if messages == 1:
        if bytes(last) != PGCOPY_HEADER + PGCOPY_TRAILER:
            raise FramingError("malformed empty COPY stream")
        return Frame(0, None)
    if bytes(last) != PGCOPY_TRAILER:
        raise FramingError("binary COPY trailer is not a message of its own")
    header_alone = len(first) == _HEADER_LEN
    records = messages - 1 - (1 if header_alone else 0)
    if records == 0:
        return Frame(0, None)
    row = memoryview(prev)
    start = _HEADER_LEN if (records == 1 and not header_alone) else 0
    end, fields = _fields(row, start)
    if end != len(row) or len(fields) != nfields:
        raise FramingError("a COPY message does not hold exactly one row")
    offset, length = fields[id_index]
    if length < 0:
        raise FramingError("NULL id in a COPY row")
    return Frame(records, bytes(row[offset : offset + length]))


def decode_id(kind: str, raw: bytes, encoding: str) -> Any:
    if kind == "int":
        if len(raw) not in (2, 4, 8):
            raise FramingError(f"integer id of {len(raw)} bytes")
        return int.from_bytes(raw, "big", signed=True)
    return raw.decode(encoding)


def field_of_row(payload: bytes | memoryview, row_no: int, index: int) -> bytes | None:
    """Field ``index`` of the ``row_no``-th (1-based) row of a complete binary COPY payload.

    A walk over the whole stream: only for naming the record in an error message.
    """
    view = memoryview(payload)
    pos = _HEADER_LEN
    for _ in range(row_no - 1):
        pos = _fields(view, pos)[0]
    _, fields = _fields(view, pos)
    offset, length = fields[index]
    return None if length < 0 else bytes(view[offset : offset + length])


# ---- read-ahead ----------------------------------------------------------------------------------


class Stopped(Exception):
    """The run was closed: a writer left its page unwritten (or rolled it back), or the
    consumer kept iterating a run that a provider's ``close`` had stopped."""


T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead(Generic[T]):
    """Run ``source`` on its own thread, at most ``depth`` items ahead of the consumer.

    Memory stays bounded (``depth`` queued + one being produced + those the consumer holds),
    the producer's exceptions are raised in the consumer, and :meth:`close` stops the
    producer and waits until it has let go of its connection: it is called from both
    providers' ``close`` as well, so nothing keeps using a connection that is being closed.
    The producer may go on filling an item after yielding it (a streamed :class:`Page`):
    it runs until its next yield, so only the item it is blocked on handing over can stall.
    """

    def __init__(self, source: Iterator[T], depth: int = 1, name: str = "vecmig-pipe-reader") -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self._started = False
        self._finished = False

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised in its thread
            self._put(_Failure(exc))
        finally:
            close: Callable[[], None] | None = getattr(self._source, "close", None)
            if close is not None:
                close()  # a generator's own cleanup runs here, on the thread that used it

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._stop.is_set():
            raise Stopped()  # closed while in use: never mistake that for the end of the data
        if self._finished:
            raise StopIteration
        if not self._started:
            self._started = True
            self._thread.start()
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.exc
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        if not self._started:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
            return
        # Drain so a blocked put() notices the stop; the producer finishes the page it is
        # reading (bounded by the batch size) and exits.
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


# ---- ordered writers -------------------------------------------------------------------------------


class NativeRun:
    """Pages from a :class:`ReadAhead` written by ``slots`` writer threads, acknowledged in order.

    Each writer slot has one target session from ``open_writer(slot)``, which returns the
    session and whether this run owns it (and must close it); sessions open concurrently on
    the writer threads while the reader fetches the first page. Page ``k`` goes to slot
    ``k % slots`` and at most ``slots`` pages are in flight, so a session never serves two
    pages at once. Iterating yields each page once ``write`` returned for it *and* for every
    page before it: a yielded page is committed, and so is everything before its cursor.
    A page committed out of order but not yet yielded is simply written again after a crash
    (idempotently). :meth:`close` stops the reader, tells in-flight writers to stop (``write``
    checks the event before committing where it can; a page already committed is merely
    unacknowledged), waits for them and closes the sessions it owns; it is idempotent.
    """

    def __init__(
        self,
        reader: ReadAhead[Page],
        open_writer: Callable[[int], tuple[Any, bool]],
        write: Callable[[Any, Page, threading.Event], None],
        slots: int = 2,
    ) -> None:
        self._reader = reader
        self._open_writer = open_writer
        self._write = write
        self._slots = max(1, int(slots))
        self._stop = threading.Event()
        self._sessions: list[Future[tuple[Any, bool]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: deque[tuple[Page, Future[None]]] = deque()
        self._closed = False

    def _write_on(self, slot: int, page: Page) -> None:
        session, _ = self._sessions[slot].result()
        self._write(session, page, self._stop)

    def __iter__(self) -> Iterator[Page]:
        if self._closed:
            return
        self._pool = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="vecmig-pipe-writer")
        self._sessions = [self._pool.submit(self._open_writer, slot) for slot in range(self._slots)]
        k = 0
        while True:
            try:
                page = next(self._reader)
            except StopIteration:
                break
            except Stopped:
                raise
            except BaseException:
                # The source failed: first acknowledge the pages written before it (in order;
                # the failed page's writer raises its error when reached), then raise.
                while self._inflight:
                    yield self._acknowledge()
                    self._check_open()
                raise
            # Acknowledge what is done before taking on more; wait only when all slots are busy.
            while self._inflight and (len(self._inflight) >= self._slots or self._inflight[0][1].done()):
                yield self._acknowledge()
                self._check_open()
            self._inflight.append((page, self._pool.submit(self._write_on, k % self._slots, page)))
            k += 1
        while self._inflight:
            yield self._acknowledge()
            self._check_open()

    def _check_open(self) -> None:
        # close() from elsewhere (a provider's close) while the consumer still iterates: the
        # rest of the shard was not copied, which must not look like its end.
        if self._closed:
            raise Stopped()

    def _acknowledge(self) -> Page:
        page, done = self._inflight[0]
        done.result()  # raises the writer's error: this page and the ones after are not acknowledged
        self._inflight.popleft()
        return page

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._reader.close()
        for _, done in self._inflight:
            with contextlib.suppress(BaseException):
                done.result()
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for opened in self._sessions:
            with contextlib.suppress(BaseException):
                session, owned = opened.result()
                if owned:
                    session.close()  # an open transaction (a stopped page) is rolled back
        self._sessions.clear()
