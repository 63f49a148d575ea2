"""``native_copy``: pages moved as binary COPY bytes, from another pgvector table (the pipe,
``pipe.py``) or from a columnar source (``columnar.py``), without building a ``Batch``.

pgvector → pgvector skips ``Batch`` altogether: :meth:`PgvectorProvider.native_copy` moves
each page as raw binary COPY bytes (see ``pipe.py``). Measured with bench/native_copy.py
(100k records, one worker, a SQLite checkpoint per batch, medians of 5): 1.0-1.26x the raw
single-transaction ``COPY TO`` → ``COPY FROM`` pipe at 64 and 384 dims for batches of
1000-20000, 1.85-3.0x the scan → upsert loop.

Columnar sources (JSONL, Parquet: ``Provider.scan_columns``) skip the per-row upsert too:
:meth:`PgvectorProvider.native_copy` encodes each column batch into one binary COPY page
with numpy (``columnar.py``, byte-identical to ``codec.build_copy``) on a reader thread
while this session writes the previous page, with the pipe's writes and acknowledgements.
A batch the columns cannot express exactly (a value of another type, a repeated id, a json
column) goes through the careful encoder instead, with its coercions and messages.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.providers.base import Provider
from vecmig.providers.pgvector import columnar, pipe
from vecmig.providers.pgvector.codec import CopyColumn, EncodeError, Wire, build_copy
from vecmig.providers.pgvector.connection import _copy_line
from vecmig.providers.pgvector.sql import WIRE_TYPE, Column, Layout, Relation
from vecmig.providers.pgvector.write import WriteMixin
from vecmig.records import ColumnBatch
from vecmig.spec import StoreSpec


class NativeCopyMixin(WriteMixin):
    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._native_reason: str | None = None  # why native_copy last returned None
        # Target sessions writing pages at once. More sessions hide each COMMIT's WAL flush
        # (measured at 100k x 64 dims, batches of 1000: 1 session 0.6-0.8x the raw pipe, 3
        # about 1.0-1.1x; at 384 dims 1 session is already 0.95-1.15x), but every session
        # may hold a committed, unacknowledged page when the process is killed. One keeps
        # the promise of ARCHITECTURE.md that a kill redoes at most one batch per shard.
        self._native_writers = 1

    # ---- native pipe (pgvector → pgvector) -----------------------------------------------

    def native_copy(
        self, source: Provider, shard: dict[str, Any] | None, cursor: Any, batch_size: int
    ) -> Iterator[tuple[Any, int, int]] | None:
        """Copy ``shard`` of another pgvector table into this one as raw binary COPY bytes.

        Per page, one source transaction runs ``COPY (SELECT <columns cast to this table's
        types> <scan's page>) TO STDOUT (FORMAT BINARY)``, and, only when the cursor cannot
        be read from the last row's bytes, a query for the page's last id in the same
        REPEATABLE READ snapshot. The bytes go unparsed into ``COPY <this table> FROM STDIN
        (FORMAT BINARY)`` after :meth:`expect_new_records` (a unique violation — a page
        replayed after a kill — sends that page through a staging table in this table's
        column types and ``INSERT … ON CONFLICT (id) DO UPDATE``), or always through that
        staging table otherwise. A reader thread fetches pages ahead while writer threads,
        each with its own session, write the previous ones. ``(cursor, records, bytes)`` is
        yielded once the page and all before it are committed. None when the pair does not
        qualify (see :func:`vecmig.providers.pgvector.pipe.plan`; ``_native_reason`` says why).
        """
        self._native_reason = None
        if not isinstance(source, NativeCopyMixin):
            batches = source.scan_columns(shard, cursor, max(1, int(batch_size)))
            if batches is None:
                self._native_reason = f"the source is {source.name}: neither pgvector nor columnar"
                return None
            return self._columnar_run(batches)
        try:
            plan = self._native_plan(source)
        except pipe.NotApplicable as exc:
            self._native_reason = str(exc)
            return None
        return self._native_run(source, plan, shard, cursor, max(1, int(batch_size)))

    def _native_plan(self, source: NativeCopyMixin) -> pipe.PipePlan:
        # One transaction per side plus one statement: this runs once per shard.
        with self._tx() as cur:
            target_layout = self._require_layout(cur)
            # The idempotent fallback needs ON CONFLICT (id), and a direct COPY relies on the
            # key to turn a replayed page into a unique violation instead of duplicates.
            target_unique = self._id_unique(cur, target_layout.relation, target_layout)
        with source._tx() as cur:
            source_layout = source._require_layout(cur)
            base: Relation | None = source_layout.relation
            if not source_layout.relation.is_table:
                base = source._view_base(cur, source_layout.relation)
            source_unique = source._id_unique(cur, base, source_layout)
        plan = pipe.plan(source_layout, target_layout)
        if not target_unique:
            raise pipe.NotApplicable("the target has no unique index on its id column")
        if not source_unique:
            # Duplicate ids in one page would make ON CONFLICT touch a row twice; the normal
            # path de-duplicates them in Python.
            raise pipe.NotApplicable("the source's ids are not guarded by a unique index")
        # Binary COPY sends text in each session's client encoding: both ends must agree or
        # the bytes would be read in the wrong one (the normal path re-encodes in Python).
        src_conn, tgt_conn = source._connection(), self._connection()
        src_enc = src_conn.info.parameter_status("client_encoding")
        tgt_enc = tgt_conn.info.parameter_status("client_encoding")
        if src_enc != tgt_enc:
            raise pipe.NotApplicable(f"client encodings differ ({src_enc!r} → {tgt_enc!r})")
        # Let the source's planner judge every cast once (LIMIT 0 reads nothing): a target
        # type it cannot produce leaves the columns to the normal path and its error message.
        src_conn.autocommit = True
        try:
            src_conn.execute(
                sql.SQL("SELECT {} FROM {} AS t LIMIT 0").format(
                    plan.select, sql.Identifier(source_layout.relation.name)
                )
            )
        except psycopg.Error as exc:
            source._abort(src_conn)
            if (getattr(exc, "sqlstate", None) or "").startswith("42"):
                raise pipe.NotApplicable(f"the source cannot compute the target's columns: {exc.sqlstate}") from None
            raise source._classify(exc) from exc
        finally:
            if not src_conn.closed and src_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                src_conn.autocommit = False
        return plan

    def _native_run(
        self, source: NativeCopyMixin, plan: pipe.PipePlan, shard: dict[str, Any] | None, cursor: Any, size: int
    ) -> Iterator[tuple[Any, int, int]]:
        # depth=1: one page queued while the next is read and up to three are written.
        layout = self._writable()  # resolved here: writer threads must not query the catalog
        main = self._connection()  # idle while the run lasts: the first writer uses it

        def open_writer(slot: int) -> tuple[psycopg.Connection[Any], bool]:
            # Sessions beyond the main one cost a connect (2-4 ms locally, more over TLS), paid
            # on the writer threads while the reader fetches the first page.
            return (main, False) if slot == 0 else (self._extra_connection(), True)

        run = pipe.NativeRun(
            reader=pipe.ReadAhead(source._native_pages(plan, shard, cursor, size), depth=1),
            open_writer=open_writer,
            write=lambda conn, page, stop: self._native_write(conn, layout, plan, page, stop),
            slots=self._native_writers,
        )
        yield from self._acknowledged(run, layout, (self, source))

    def _native_pages(
        self, plan: pipe.PipePlan, shard: dict[str, Any] | None, cursor: Any, size: int
    ) -> Iterator[pipe.Page]:
        """Source side (runs on the reader thread): scan's pages as target-typed COPY bytes.

        A page is yielded as soon as its first block is read (or once complete, if smaller),
        and filled on after the yield: a writer sends it while the rest arrives.
        """
        layout = self._require_layout()
        nfields = len(plan.columns)
        while True:
            page_from = self._page_from(layout, shard, cursor, size)
            copy_sql = sql.SQL("COPY (SELECT {} {}) TO STDOUT (FORMAT BINARY)").format(plan.select, page_from)
            conn = self._connection()
            page = pipe.Page()
            handed = False
            last: Any = None
            previous = conn.isolation_level
            if plan.id_decoder is not None:
                # One statement: its implicit transaction is one snapshot already, and saves
                # the BEGIN and COMMIT round trips.
                conn.autocommit = True
            else:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                try:
                    with conn.cursor() as cur:
                        with cur.copy(copy_sql) as cp:
                            # One message per row: nothing is parsed, rows are only counted
                            # and glued into blocks; the first and last two frame the page.
                            first = prev = final = None
                            messages = 0
                            block: list[Any] = []
                            buffered = 0
                            for message in cp:
                                if first is None:
                                    first = message
                                prev, final = final, message
                                messages += 1
                                block.append(message)
                                buffered += len(message)
                                if buffered >= pipe.BLOCK_BYTES:
                                    page.add(b"".join(block))
                                    block, buffered = [], 0
                                    if not handed:
                                        handed = True
                                        yield page
                            if block:
                                page.add(b"".join(block))
                        framed = pipe.frame_messages(first, prev, final, messages, nfields, plan.id_index)
                        if framed.records and plan.id_decoder is None:
                            # The target's id type changes the value (uuid, varchar(n), ...): take
                            # the cursor from the source, in the same snapshot as the COPY.
                            row = cur.execute(
                                sql.SQL("SELECT k FROM (SELECT {} AS k, {} AS o {}) s ORDER BY o DESC LIMIT 1").format(
                                    plan.source_id, sql.Identifier("t", layout.id.name), page_from
                                )
                            ).fetchone()
                            last = row[0] if row else None
                        elif framed.records:
                            last = pipe.decode_id(plan.id_decoder, framed.last_id, conn.info.encoding)  # type: ignore[arg-type]
                    conn.commit()
                except psycopg.Error as exc:
                    self._abort(conn)
                    raise self._classify(exc) from exc
                except pipe.FramingError as exc:
                    self._abort(conn)
                    raise TerminalError(
                        f"unexpected binary COPY stream from '{layout.relation.name}' ({self._where}): {exc}",
                        hint="the native pgvector → pgvector path cannot read this server; please report it",
                    ) from None
                except BaseException:
                    self._abort(conn)
                    raise
                finally:
                    if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                        conn.autocommit = False
                        conn.isolation_level = previous
            except BaseException as exc:
                # A writer may be sending this page already: make its COPY fail, not commit.
                page.fail(pipe.Stopped() if isinstance(exc, GeneratorExit) else exc)
                raise
            if not framed.records:
                return
            page.finish(framed.records, last)
            if not handed:
                yield page
            cursor = last
            if framed.records < size:
                return

    def _native_write(
        self,
        conn: psycopg.Connection[Any],
        layout: Layout,
        plan: pipe.PipePlan,
        page: pipe.Page,
        stop: threading.Event,
    ) -> None:
        """Target side, on a writer thread and its own session: the page's bytes in and
        committed — returning is the acknowledgement. A run stopped meanwhile starts no
        direct COPY and rolls a staged page back instead of committing it."""
        names = plan.names
        encoding = conn.info.encoding
        try:
            if self._direct and self._copy_page_direct(conn, layout, names, page, stop):
                return
            with conn.cursor() as cur:
                stage = self._native_stage(cur, layout, plan)
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, names)) as cp:
                    for block in page.blocks():
                        cp.write(block)
                cur.execute(
                    sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}").format(
                        sql.Identifier(layout.relation.name),
                        names,
                        names,
                        stage,
                        sql.Identifier(layout.id.name),
                        sql.SQL(", ").join(
                            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name))
                            for c in plan.columns
                            if c is not layout.id
                        ),
                    )
                )
            self._native_commit(conn, stop)
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                conn.rollback()
            raise self._native_error(exc, plan, page, encoding) from exc
        except BaseException:
            with suppress(psycopg.Error):
                conn.rollback()
            raise

    @staticmethod
    def _copy_page_direct(
        conn: psycopg.Connection[Any], layout: Layout, names: sql.Composable, page: pipe.Page, stop: threading.Event
    ) -> bool:
        """COPY a page straight into the table; False when its ids are there already (a page
        replayed after a kill), for the caller to redo it through the idempotent staged path."""
        if stop.is_set():
            raise pipe.Stopped()
        # A lone COPY is its own transaction: the server commits (and flushes the WAL) before
        # it reports completion, and psycopg returns only after ReadyForQuery, so returning
        # here is the durable acknowledgement, minus BEGIN/COMMIT round trips.
        conn.autocommit = True
        try:
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(layout.relation.name), names
            )
            with conn.cursor() as cur, cur.copy(copy_sql) as cp:
                # The last block comes once the reader has checked the whole page: a page
                # that fails to read aborts this COPY instead of ending it.
                for block in page.blocks():
                    cp.write(block)
            return True
        except psycopg.errors.UniqueViolation:
            return False
        finally:
            if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn.autocommit = False

    @staticmethod
    def _native_commit(conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        if stop.is_set():
            raise pipe.Stopped()
        conn.commit()

    def _native_stage(self, cur: psycopg.Cursor[Any], layout: Layout, plan: pipe.PipePlan) -> sql.Identifier:
        """A temp table in the target's *real* column types (the pipe's bytes are in those,
        not in the wire types of ``_staging_table``); same lifetime rules as that one."""
        signature = "|".join(f"{c.name}:{c.sqltype}" for c in plan.columns)
        name = "vecmig_nstage_" + hashlib.sha256(f"{layout.relation.oid}|{signature}".encode()).hexdigest()[:12]
        cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                sql.Identifier(name),
                sql.SQL(", ").join(sql.SQL("{} " + c.sqltype).format(sql.Identifier(c.name)) for c in plan.columns),
            )
        )
        return sql.Identifier(name)

    def _native_error(self, exc: psycopg.Error, plan: pipe.PipePlan, page: pipe.Page, encoding: str) -> ProviderError:
        """Classified like every other write error, naming the record when COPY says which row."""
        err = self._classify(exc)
        row = _copy_line(exc)
        if row is None or not 0 < row <= page.records or plan.id_decoder is None:
            return err
        try:
            raw = pipe.field_of_row(page.payload, row, plan.id_index)
            rid = pipe.decode_id(plan.id_decoder, raw, encoding) if raw is not None else None
        except Exception:  # the page itself failed, or is not what COPY counted: no name then
            return err
        err.message = f"record {rid!r}: {err.message}"
        err.args = (err.message,)
        return err

    # ---- columnar sources (Parquet, JSONL) → pgvector ---------------------------------------

    def _columnar_run(self, batches: Iterator[ColumnBatch]) -> Iterator[tuple[Any, int, int]]:
        """Column batches encoded straight into binary COPY pages (``columnar.py``) on a reader
        thread while this session writes the previous page: the source's parsing and the
        encoding overlap the server's work instead of waiting for it. Writes and
        acknowledgements are those of the native pipe (direct COPY after
        :meth:`expect_new_records`, staged ``ON CONFLICT`` otherwise or on a replay)."""
        layout = self._writable()
        main = self._connection()
        run = pipe.NativeRun(
            reader=pipe.ReadAhead(self._columnar_pages(layout, batches), depth=1),
            open_writer=lambda slot: (main, False),
            write=lambda conn, page, stop: self._columnar_write(conn, layout, page, stop),
            slots=1,
        )
        yield from self._acknowledged(run, layout, (self,))

    def _acknowledged(
        self, run: pipe.NativeRun, layout: Layout, owners: tuple[NativeCopyMixin, ...]
    ) -> Iterator[tuple[Any, int, int]]:
        """``(cursor, records, bytes)`` per committed page, in order. ``owners`` hold the run
        while it lasts, so that closing either provider stops it (see :meth:`close`)."""
        for p in owners:
            p._pipe = run
        try:
            for page in run:
                yield page.last_id, page.records, page.nbytes
        except pipe.Stopped:
            raise TransientError(
                f"the copy into '{layout.relation.name}' ({self._where}) was stopped before the end of its shard",
                hint="a provider was closed while its copy ran; apply again to resume",
            ) from None
        finally:
            run.close()
            for p in owners:
                if p._pipe is run:
                    p._pipe = None

    def _columnar_pages(self, layout: Layout, batches: Iterator[ColumnBatch]) -> Iterator[pipe.Page]:
        for cb in batches:
            if not len(cb):
                continue
            cols, payload, ids = self._columnar_payload(layout, cb)
            page = _EncodedPage(tuple(cols), ids)
            page.add(payload)
            page.finish(len(cb), cb.cursor)
            yield page

    def _columnar_payload(self, layout: Layout, cb: ColumnBatch) -> tuple[list[Column], bytes, Any]:
        """(columns in payload order, binary COPY payload, ids by row) for one batch."""
        n = len(cb)
        if cb.sparse is not None:
            rid = next(i for i, sp in zip(cb.to_batch().ids, cb.sparse, strict=True) if sp is not None)
            raise TerminalError(
                f"record {rid!r} has sparse values, which {self.name} cannot store",
                hint="migrate into a target that holds sparse values (pinecone with metric dotproduct, jsonl), "
                     "or remove them from the source",
            )
        fields = self._columnar_fields(layout, cb)
        if fields is not None:
            order, payload = columnar.encode(fields, n)
            by_name = {c.name: c for c in layout.columns}
            return [by_name[name] for name in order], payload, cb.ids
        # The per-record path: its coercions, de-duplication and messages naming the record.
        batch = cb.to_batch()
        ids = [self._norm_id(layout, i) for i in batch.ids]
        if len(set(ids)) != len(ids):
            keep = sorted({rid: pos for pos, rid in enumerate(ids)}.values())  # the last occurrence wins
            batch = batch.take(keep)
            ids = [ids[p] for p in keep]
        columns = self._batch_columns(layout, batch, ids)
        try:
            order, payload = build_copy([CopyColumn(c.name, w, v) for c, w, v in columns], len(ids))
        except EncodeError as exc:
            raise TerminalError(
                f"record {ids[exc.row]!r}: {exc} (writing '{layout.relation.name}')",
                hint="fix the value or map the field to a compatible type",
            ) from None
        by_name = {c.name: c for c, _, _ in columns}
        return [by_name[name] for name in order], payload, ids

    def _columnar_fields(self, layout: Layout, cb: ColumnBatch) -> list[columnar.Field] | None:
        """The batch as typed columns, or None where the per-record path must decide (a json
        column, a field without a column, a value of another type, a repeated id)."""
        n = len(cb)
        if layout.json_column is not None:
            return None
        if layout.dimension is not None and cb.vectors.shape[1] != layout.dimension:
            return None
        metadata = {c.name: c for c in layout.metadata}
        if any(name not in metadata for name in cb.metadata):
            return None
        texts = cb.texts
        if layout.text is None and texts is not None and _any_value(texts):
            return None
        spec: list[tuple[Column, Wire, Any]] = [(layout.id, "int8" if layout.id_type == "int" else "text", cb.ids)]
        if layout.text is not None:
            spec.append((layout.text, "text", texts if texts is not None else pa.nulls(n)))
        spec += [(c, WIRE_TYPE[c.logical], cb.metadata.get(c.name, pa.nulls(n))) for c in layout.metadata]
        fields = [columnar.Field(layout.vector.name, "vector", np.ascontiguousarray(cb.vectors, dtype=np.float32))]
        for col, wire, values in spec:
            if isinstance(values, pa.Array | pa.ChunkedArray):
                arr = columnar.arrow_for(wire, values)
            else:
                arr = columnar.from_python(wire, values)
            if arr is None or (wire in ("text", "text[]") and _holds_nul(arr)):
                return None  # the careful path names the record (PostgreSQL refuses NUL in text)
            fields.append(columnar.Field(col.name, wire, arr))
        if pc.count_distinct(fields[1].values).as_py() != n:
            return None
        return [fields[1], fields[0], *fields[2:]]

    def _columnar_write(
        self, conn: psycopg.Connection[Any], layout: Layout, page: pipe.Page, stop: threading.Event
    ) -> None:
        """One encoded page in and committed; returning is the acknowledgement (as ``_native_write``)."""
        assert isinstance(page, _EncodedPage)
        cols = list(page.columns)
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
        try:
            direct = self._direct and self._cast_free(layout, cols)
            if direct and self._copy_page_direct(conn, layout, names, page, stop):
                return
            with conn.cursor() as cur:
                stage = self._staging_table(cur, layout, cols)
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(stage), names)) as cp:
                    for block in page.blocks():
                        cp.write(block)
                cur.execute(self._merge_sql(layout, cols, stage))
            self._native_commit(conn, stop)
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                conn.rollback()
            err = self._classify(exc)
            row = _copy_line(exc)
            if row is not None and 0 < row <= page.records:
                ids = page.ids
                rid = ids[row - 1] if isinstance(ids, list) else ids[row - 1].as_py()
                err.message = f"record {rid!r}: {err.message}"
                err.args = (err.message,)
            raise err from exc
        except BaseException:
            with suppress(psycopg.Error):
                conn.rollback()
            raise


# ---- helpers ----------------------------------------------------------------------------------


def _holds_nul(arr: pa.Array) -> bool:
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    if pa.types.is_null(arr.type) or not len(arr):
        return False
    return bool(pc.any(pc.match_substring(arr, "\x00")).as_py())


def _any_value(values: Any) -> bool:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return bool(values.null_count < len(values))  # pyarrow is untyped
    return any(v is not None for v in values)


class _EncodedPage(pipe.Page):
    """A columnar batch encoded as one binary COPY payload, with its column order and ids."""

    def __init__(self, columns: tuple[Column, ...], ids: Any) -> None:
        super().__init__()
        self.columns = columns
        self.ids = ids
