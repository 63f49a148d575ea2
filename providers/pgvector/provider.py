"""PostgreSQL + pgvector as a source and a target.

Reading is keyset pagination on the id column (``WHERE id > cursor ORDER BY id LIMIT n``),
each page its own short transaction fetched with a binary ``COPY (SELECT ...) TO STDOUT``
so no snapshot is held across batches and vectors arrive as raw big-endian float32.
Writing is a binary ``COPY`` into a per-session temporary staging table followed by one
``INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE`` and ``COMMIT``: atomic per batch and
idempotent by id, so replaying an unacknowledged batch after a crash is harmless.

Measured on this 2-core machine (PostgreSQL 16 from pgserver on a unix socket, 100k rows x
384 dims + 7 metadata columns, batches of 1000, one worker, load from other work present):

* scan into ``Batch``: binary ``COPY (SELECT ...) TO STDOUT`` pages 125-150k records/s warm
  (~72k on the first pass after a bulk load, which sets hint bits); a binary cursor with
  the same decoding 95-115k records/s.
* upsert (staging COPY + INSERT ON CONFLICT + COMMIT) 100k in 1.8-2.0 s (~50-56k records/s;
  replays that update every row ~45-51k/s). ``Copy.write_row`` with numpy-pre-encoded
  vectors and a payload built entirely with numpy/bytes (``codec.build_copy``) tie end to
  end (the server dominates); in isolation write_row spent less client CPU (1.3-1.5 s vs
  1.6-1.9 s per 100k including the server), so it is the fast path, and ``build_copy`` is
  the careful fallback that coerces safe values (``3.0`` into an int8 column, a tuple into
  text[]) and names the offending record otherwise.

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
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import set_json_dumps

from vecmig.errors import ProviderError, TerminalError, TransientError
from vecmig.ids import IdReport, canonical_int_text, id_kind, show_id
from vecmig.model import Inventory
from vecmig.providers import fidelity
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider, Throughput
from vecmig.providers.pgvector import columnar, embedded, pipe
from vecmig.providers.pgvector.codec import (
    CopyColumn,
    EncodeError,
    Wire,
    build_copy,
    decode_vectors,
    encode_vector,
    jsonb_dumps,
    vector_dtype,
)
from vecmig.providers.pgvector.errors import classify
from vecmig.providers.pgvector.sql import (
    COLUMNS_SQL,
    DEPENDENT_VIEWS_SQL,
    ID_UNIQUE_SQL,
    INDEX_BY_NAME_SQL,
    METRIC_COMMENT_PREFIX,
    METRIC_OF_OPCLASS,
    OPCLASS,
    RELATION_SQL,
    SIZE_SQL,
    SQL_TYPE,
    TABLE_PRIVILEGES,
    VECTOR_INDEX_SQL,
    VIEW_BASES_SQL,
    VIEW_GRANTS_SQL,
    WIRE_TYPE,
    Column,
    Layout,
    Relation,
    index_name,
    parse_reloptions,
    row_to_column,
)
from vecmig.records import Batch, ColumnBatch, RecordId
from vecmig.spec import IndexSpec, StoreSpec
from vecmig.state.redact import Redactor, secret_parts

_CONNECT_TIMEOUT_S = 10
_MIN_MWM = 64 * 1024 * 1024
_MAX_MWM = 1024 * 1024 * 1024


class _RawVectorLoader(Loader):
    """Binary ``vector`` values as raw bytes: decoded a whole batch at a time with numpy."""

    format = Format.BINARY

    def load(self, data: Any) -> bytes:
        return bytes(data)


class _PassthroughVectorDumper(Dumper):
    """Binary ``vector`` for COPY: values arrive pre-encoded (see ``_vector_payloads``)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray | memoryview):
            return obj
        return encode_vector(np.asarray(obj))


class PgvectorProvider(Provider):
    name: ClassVar[str] = "pgvector"
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_collection=True,
        aliases=True,  # views
        namespaces=False,
        indexes=("hnsw", "ivfflat"),
        id_types=("int", "text"),
        server_side_count=True,
        ordered_scan=True,
        metadata="both",
        max_dimension=16_000,  # pgvector's vector type (sparsevec is not used: 0.6 lacks it here)
    )
    # Per worker, deliberately below what was measured locally (scan 70-150k records/s,
    # upsert 45-56k records/s at 384 dims over a unix socket, ~1.7 KB/record): real servers
    # sit behind a network, carry indexes during writes and share their disks.
    throughput: ClassVar[Throughput] = Throughput(
        read_records_per_s=40_000,
        write_records_per_s=15_000,
        read_mb_per_s=80.0,
        write_mb_per_s=30.0,
        max_parallel=8,
        spread=3.0,
    )

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._conn: psycopg.Connection[Any] | None = None
        self._embedded: Path | None = None
        self._where = "pgvector"
        self._secrets: tuple[str, ...] = ()
        self._layout: Layout | None = None
        self._vector_oid: int | None = None
        # Set by expect_new_records(): COPY straight into the table, staging only on conflict.
        self._direct = False
        # The native pipe (see native_copy) using this instance's connection, if one runs.
        self._pipe: pipe.NativeRun | None = None
        self._native_reason: str | None = None  # why native_copy last returned None
        # Target sessions writing pages at once. More sessions hide each COMMIT's WAL flush
        # (measured at 100k x 64 dims, batches of 1000: 1 session 0.6-0.8x the raw pipe, 3
        # about 1.0-1.1x; at 384 dims 1 session is already 0.95-1.15x), but every session
        # may hold a committed, unacknowledged page when the process is killed. One keeps
        # the promise of ARCHITECTURE.md that a kill redoes at most one batch per shard.
        self._native_writers = 1
        self._describe_connection()

    # ---- lifecycle ------------------------------------------------------------------------

    def _describe_connection(self) -> None:
        """A secret-free label (host:port/dbname) for messages, and the secrets to scrub."""
        conn = self.store.connection or {}
        if "embedded" in conn:
            self._where = f"embedded PostgreSQL at {self.store.path(str(conn['embedded']))}"
            return
        dsn = conn.get("dsn")
        if not dsn:
            return
        # Every piece libpq could print of the password, however it parses it (an unescaped
        # '/' or '@' in a URL's password lands in "host" or "dbname").
        self._secrets = tuple(sorted(secret_parts(str(dsn)), key=len, reverse=True))
        try:
            info = psycopg.conninfo.conninfo_to_dict(str(dsn))
        except psycopg.ProgrammingError:
            return  # reported properly by connect()
        host = str(info.get("host") or info.get("hostaddr") or "localhost")
        where = f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"
        self._where = Redactor(self._secrets)(where)

    def connect(self) -> None:
        self._connection()

    def _conninfo(self) -> str:
        dsn = self._resolve_dsn()
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise TerminalError(
                f"invalid PostgreSQL connection string for {self._role}",
                hint=f"check {self._role}.connection.dsn (a postgresql:// URI or key=value pairs)",
            ) from None
        info.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        info.setdefault("application_name", "vecmig")
        return psycopg.conninfo.make_conninfo("", **info)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        # Type adapters belong to a session: a dropped one (e.g. a native-pipe writer whose
        # session the server killed) must not leave the new session without them.
        self._vector_oid = None
        conninfo = self._conninfo()
        try:
            conn = psycopg.connect(conninfo, autocommit=False)
        except psycopg.Error as exc:
            self._release_embedded()
            raise self._classify(exc, connecting=True) from None
        set_json_dumps(jsonb_dumps, conn)  # jsonb values come back with the type they went in with
        try:
            self._register_types(conn)
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            self._release_embedded()
            raise self._classify(exc) from None
        self._conn = conn
        return conn

    def _resolve_dsn(self) -> str:
        conn = self.store.connection or {}
        if "embedded" in conn:
            if self._embedded is None:
                path = self.store.path(str(conn["embedded"]))
                uri = embedded.acquire(path)
                self._embedded = path
                return uri
            return embedded.uri(self._embedded)
        dsn = conn.get("dsn")
        if not dsn:
            raise TerminalError(
                f"{self._role}.connection needs 'dsn' or 'embedded'",
                hint="e.g. connection: {dsn: \"${env:PG_DSN}\"} or connection: {embedded: .vecmig/pg}",
            )
        return str(dsn)

    def _extra_connection(self) -> psycopg.Connection[Any]:
        """One more session to the same database, owned (and closed) by the caller.

        Safe on another thread once the main session is open (it holds the embedded server).
        """
        try:
            conn = psycopg.connect(self._conninfo(), autocommit=False)
        except psycopg.Error as exc:
            raise self._classify(exc, connecting=True) from None
        set_json_dumps(jsonb_dumps, conn)
        return conn

    def _release_embedded(self) -> None:
        if self._embedded is not None:
            path, self._embedded = self._embedded, None
            embedded.release(path)

    def close(self) -> None:
        running, self._pipe = self._pipe, None
        if running is not None:
            running.close()  # its reader thread must let go of a connection before it closes
        conn, self._conn = self._conn, None
        self._vector_oid = None
        if conn is not None and not conn.closed:
            with suppress(psycopg.Error):
                conn.rollback()
            conn.close()
        self._release_embedded()

    def _register_types(self, conn: psycopg.Connection[Any]) -> bool:
        """Teach the connection pgvector's types; False while the extension is absent."""
        if self._vector_oid is not None:
            return True
        info = TypeInfo.fetch(conn, "vector")
        if info is None:
            return False
        from pgvector.psycopg import register_vector

        register_vector(conn)
        # Our own binary adapters win over pgvector's: raw bytes in, pre-encoded bytes out,
        # so a batch's vectors are (de)coded by numpy in one go instead of per row.
        conn.adapters.register_loader(info.oid, _RawVectorLoader)
        conn.adapters.register_dumper(None, type("_VectorDumper", (_PassthroughVectorDumper,), {"oid": info.oid}))
        self._vector_oid = info.oid
        return True

    @property
    def _role(self) -> str:
        return self.store.pointer.strip("/").replace("/", ".") or self.name

    def _classify(self, exc: BaseException, connecting: bool = False) -> ProviderError:
        return classify(
            exc,
            where=self._where,
            collection=self.store.collection,
            pointer=self.store.pointer,
            secrets=self._secrets,
            connecting=connecting,
        )

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        """One short transaction: commit on success, roll back and classify on failure."""
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except psycopg.Error as exc:
            self._abort(conn)
            raise self._classify(exc) from exc
        except BaseException:
            self._abort(conn)
            raise

    def _abort(self, conn: psycopg.Connection[Any]) -> None:
        # A broken connection is dropped and the next call reconnects; otherwise a rollback
        # leaves it ready for the next transaction.
        if conn.broken or conn.closed:
            self._conn = None
            self._vector_oid = None
            conn.close()
            return
        try:
            conn.rollback()
        except psycopg.Error:
            self._conn = None
            self._vector_oid = None
            conn.close()

    # ---- catalog --------------------------------------------------------------------------

    def _ident(self, cur: psycopg.Cursor[Any], name: str) -> str:
        return sql.Identifier(name).as_string(cur)

    def _relation(self, cur: psycopg.Cursor[Any], name: str) -> Relation | None:
        row = cur.execute(RELATION_SQL, (self._ident(cur, name),)).fetchone()
        return Relation(*row) if row else None

    def _columns(self, cur: psycopg.Cursor[Any], oid: int) -> list[Column]:
        return [row_to_column(r) for r in cur.execute(COLUMNS_SQL, (oid,)).fetchall()]

    def _collection_name(self) -> str:
        if not self.store.collection:
            raise TerminalError(f"{self._role}.collection is required", hint="name the table")
        return self.store.collection

    def _resolve(self, cur: psycopg.Cursor[Any], rel: Relation) -> Layout:
        cols = self._columns(cur, rel.oid)
        by_name = {c.name: c for c in cols}
        f = self.store.fields
        what = f"{rel.kind_name} '{rel.name}'"

        def need(name: str, key: str) -> Column:
            if name not in by_name:
                listing = ", ".join(c.name for c in cols)
                raise TerminalError(
                    f"{what} has no column '{name}' (columns: {listing})", hint=f"check {self._role}.fields.{key}"
                )
            return by_name[name]

        id_col = need(f.id, "id")
        if id_col.logical not in ("int", "text"):
            raise TerminalError(
                f"id column '{id_col.name}' of {what} is {id_col.sqltype}; vecmig ids are integers or text "
                "(a float, numeric or boolean id would not compare equal across stores)",
                hint=f"point {self._role}.collection at a view that casts it (SELECT {id_col.name}::bigint AS "
                     f"{id_col.name}, ... or ::text), or set {self._role}.fields.id to another column",
            )
        vec = need(f.vector, "vector")
        if vec.logical != "vector":
            vectors = [c.name for c in cols if c.logical == "vector"] or ["none"]
            raise TerminalError(
                f"column '{vec.name}' of {what} is {vec.sqltype}, not a pgvector vector "
                f"(vector columns: {', '.join(vectors)})",
                hint=f"check {self._role}.fields.vector",
            )
        text: Column | None
        if f.text is not None:
            text = need(f.text, "text")
        else:
            # Without fields.text a text-typed column literally named "text" holds the text:
            # it is where create_collection() puts it, so a target reads back as it was written.
            cand = by_name.get("text")
            text = cand if cand is not None and cand.logical == "text" and cand.name not in (f.id, f.vector) else None
        taken = {id_col.name, vec.name} | ({text.name} if text else set())
        json_col: Column | None = None
        meta: list[Column] = []
        ignored: list[str] = []
        if isinstance(f.metadata, str):
            json_col = need(f.metadata, "metadata")
            if json_col.typname not in ("json", "jsonb"):
                raise TerminalError(
                    f"column '{json_col.name}' of {what} is {json_col.sqltype}, not json/jsonb",
                    hint=f"{self._role}.fields.metadata as a single name means one jsonb document column",
                )
        elif f.metadata is not None:
            meta = [need(name, "metadata") for name in f.metadata]
        else:
            for c in cols:
                if c.name in taken:
                    continue
                if c.logical == "vector":
                    ignored.append(c.name)  # a second embedding is not metadata
                    continue
                meta.append(c)
        return Layout(
            relation=rel,
            id=id_col,
            vector=vec,
            text=text,
            metadata=tuple(meta),
            json_column=json_col,
            ignored=tuple(ignored),
            columns=tuple(cols),
        )

    def _require_layout(self, cur: psycopg.Cursor[Any] | None = None) -> Layout:
        if self._layout is not None:
            return self._layout
        if cur is None:
            with self._tx() as c:
                return self._require_layout(c)
        name = self._collection_name()
        rel = self._relation(cur, name)
        if rel is None:
            raise TerminalError(
                f"table '{name}' does not exist in {self._where}", hint=f"check {self._role}.collection"
            )
        layout = self._resolve(cur, rel)
        if not self._register_types(cur.connection):
            raise TerminalError(f"the pgvector extension is not installed in {self._where}")
        self._layout = layout  # only an existing relation is cached: a missing one may appear
        return layout

    def _view_base(self, cur: psycopg.Cursor[Any], rel: Relation) -> Relation | None:
        """The one relation a view reads from, or None for zero/several."""
        rows = cur.execute(VIEW_BASES_SQL, (rel.oid, rel.oid)).fetchall()
        return Relation(*rows[0]) if len(rows) == 1 else None

    def _qualified(self, rel: Relation, relative_to: str) -> str:
        return rel.name if rel.schema == relative_to else f"{rel.schema}.{rel.name}"

    def _read_alias(self, cur: psycopg.Cursor[Any], alias: str) -> str | None:
        rel = self._relation(cur, alias)
        if rel is None:
            return None
        if rel.kind != "v":
            raise TerminalError(
                f"'{alias}' is a {rel.kind_name}, not a view, so it cannot be used as an alias",
                hint="choose another alias name, or rename that relation",
            )
        rows = cur.execute(VIEW_BASES_SQL, (rel.oid, rel.oid)).fetchall()
        if not rows:
            return None
        if len(rows) > 1:
            names = ", ".join(r[3] for r in rows)
            raise TerminalError(
                f"view '{alias}' reads from several relations ({names}); it is not an alias vecmig manages",
                hint="choose another alias name",
            )
        return self._qualified(Relation(*rows[0]), rel.schema)

    # ---- reading --------------------------------------------------------------------------

    def collection_exists(self) -> bool:
        with self._tx() as cur:
            return self._relation(cur, self._collection_name()) is not None

    def inventory(self) -> Inventory:
        name = self._collection_name()
        with self._tx() as cur:
            aliases: dict[str, str | None] = {}
            if self.store.alias:
                aliases[self.store.alias] = self._read_alias(cur, self.store.alias)
            rel = self._relation(cur, name)
            if rel is None:
                return Inventory(provider=self.name, collection=name, exists=False, aliases=aliases)
            layout = self._resolve(cur, rel)
            self._register_types(cur.connection)
            t = sql.Identifier(rel.name)
            idc = sql.Identifier(layout.id.name)
            count = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(t)).fetchone()[0]  # type: ignore[index]
            # Ends of the id order read from the primary key index; ORDER BY rather than
            # min()/max(), which do not exist for every type (uuid), and cast afterwards so a
            # uuid or varchar id reports as text.
            end = "(SELECT {0} FROM {1} WHERE {0} IS NOT NULL ORDER BY {0} %s LIMIT 1)"
            cast = "" if layout.id_type == "int" else "::text"
            minmax = sql.SQL(f"SELECT {end % 'ASC'}{cast}, {end % 'DESC'}{cast}").format(idc, t)
            lo, hi = cur.execute(minmax).fetchone()  # type: ignore[misc]
            dimension = layout.dimension
            if dimension is None and count:
                dimension = cur.execute(
                    sql.SQL("SELECT vector_dims({}) FROM {} ORDER BY {} LIMIT 1").format(
                        sql.Identifier(layout.vector.name), t, idc
                    )
                ).fetchone()[0]  # type: ignore[index]

            base = rel if rel.is_table else self._view_base(cur, rel)
            index: dict[str, Any] | None = None
            metric: str | None = None
            comment = layout.vector.comment
            if base is not None:
                base_vec = next((c for c in self._columns(cur, base.oid) if c.name == layout.vector.name), None)
                if base_vec is not None:
                    comment = comment or base_vec.comment
                    found = cur.execute(VECTOR_INDEX_SQL, (base.oid, base_vec.attnum)).fetchone()
                    if found:
                        iname, method, opclass, options = found
                        index = {
                            "name": iname,
                            "type": method,
                            "opclass": opclass,
                            "params": parse_reloptions(options, method),
                        }
                        metric = METRIC_OF_OPCLASS.get(opclass)
            if metric is None and comment and comment.startswith(METRIC_COMMENT_PREFIX):
                metric = comment[len(METRIC_COMMENT_PREFIX) :].strip() or None
            for view, kind in cur.execute(DEPENDENT_VIEWS_SQL, (rel.oid, rel.oid)).fetchall():
                if kind == "v":
                    aliases.setdefault(view, rel.name)
            id_unique = self._id_unique(cur, base, layout)
            bytes_per_record = self._bytes_per_record(cur, rel, layout, count, dimension)
        self._layout = layout
        extra: dict[str, Any] = {
            "relkind": rel.kind_name,
            "schema": rel.schema,
            "min_id": lo,
            "max_id": hi,
            "id_column": layout.id.name,
            "id_unique": id_unique,
            "vector_column": layout.vector.name,
            "text_column": layout.text.name if layout.text else None,
            "metadata_column": layout.json_column.name if layout.json_column else None,
        }
        if layout.ignored:
            extra["ignored_columns"] = list(layout.ignored)
        if not rel.is_table:
            extra["view_of"] = self._qualified(base, rel.schema) if base is not None else None
        return Inventory(
            provider=self.name,
            collection=name,
            exists=True,
            dimension=dimension,
            metric=metric,
            count=count,
            count_exact=True,
            id_type=layout.id_type,
            fields=layout.fields(),
            index=index,
            aliases=aliases,
            bytes_per_record=bytes_per_record,
            extra=extra,
        )

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        """What ``_batch_columns`` would refuse during the copy, found from the inventory: a
        metadata field with no column (VM140), text with no text column (VM141)."""
        extra = inventory.extra
        name = inventory.collection
        out: list[LintFinding] = []
        texts = sample.texts
        if extra.get("text_column") is None and texts is not None and any(x is not None for x in texts):
            out.append(LintFinding("VM141", "error", f"records carry text but '{name}' has no text column",
                                   f"set {self._role}.fields.text to the column that should hold it"))
        if extra.get("metadata_column") is None:
            taken = {extra.get("id_column"), extra.get("vector_column"), extra.get("text_column"),
                     *extra.get("ignored_columns", [])}
            columns = set(inventory.fields) - taken
            keys: set[str] = set()
            for m in sample.metadata:
                keys.update(m)
            unknown = sorted(keys - columns)
            if unknown:
                out.append(LintFinding(
                    "VM140", "error", f"metadata field(s) {', '.join(unknown)} have no column in '{name}'",
                    "add the columns, drop/rename the fields in mapping, or store metadata as jsonb"))
        return out

    def _id_unique(self, cur: psycopg.Cursor[Any], base: Relation | None, layout: Layout) -> bool:
        """Does a unique index on exactly the id column guard ``base`` (the table behind a view)?"""
        if base is None:
            return False
        base_id = next((c for c in self._columns(cur, base.oid) if c.name == layout.id.name), None)
        if base_id is None:
            return False
        return bool(cur.execute(ID_UNIQUE_SQL, (base.oid, base_id.attnum)).fetchone()[0])  # type: ignore[index]

    def _bytes_per_record(
        self, cur: psycopg.Cursor[Any], rel: Relation, layout: Layout, count: int, dimension: int | None
    ) -> int | None:
        # The stored size of the first rows by id (compressed and TOASTed values as stored)
        # plus a tuple header: a pure function of the data, so two plans of unchanged data
        # agree byte for byte. The relation's file size did not: right after a bulk load,
        # PostgreSQL's relation extension and autovacuum changed it between two plans.
        if rel.is_table and count:
            size = sql.SQL(" + ").join(
                sql.SQL("coalesce(pg_column_size({}), 0)").format(sql.Identifier("t", c.name))
                for c in layout.read_columns()
            )
            row = cur.execute(
                sql.SQL("SELECT avg({}) FROM (SELECT * FROM {} AS t ORDER BY {} LIMIT 1000) AS t").format(
                    size, sql.Identifier(rel.schema, rel.name), sql.Identifier(layout.id.name)
                )
            ).fetchone()
            if row and row[0] is not None:
                return int(row[0]) + 28  # tuple header and line pointer
        if dimension:
            # A view or an empty table: the vector, tuple header and a guess per column.
            return 4 * dimension + 32 + 24 * len(layout.read_columns())
        return None

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        """Contiguous id ranges; the first and last are open so together they cover every id.

        Int ids split [min, max] evenly (no query); text ids cut at every ``shard_size``-th
        id in index order (one index-only pass).
        """
        if not inventory.exists:
            return []
        count = inventory.count or 0
        if shard_size <= 0 or count <= shard_size:
            return [{"lo": None, "hi": None, "records": count}]
        n = math.ceil(count / shard_size)
        layout = self._require_layout()
        if layout.id_type == "int":
            lo = inventory.extra.get("min_id")
            hi = inventory.extra.get("max_id")
            if lo is None or hi is None:
                return [{"lo": None, "hi": None, "records": count}]
            span = int(hi) - int(lo) + 1
            n = max(1, min(n, span))
            bounds: list[Any] = [int(lo) + (span * i) // n for i in range(1, n)]
            sizes = [count // n + (1 if i < count % n else 0) for i in range(n)]
        else:
            idc = sql.Identifier(layout.id.name)
            query = sql.SQL(
                "SELECT id FROM (SELECT {0}::text AS id, row_number() OVER (ORDER BY {0}) AS rn FROM {1}) s "
                "WHERE rn > 1 AND (rn - 1) % {2} = 0 ORDER BY rn"
            ).format(idc, sql.Identifier(layout.relation.name), sql.Literal(int(shard_size)))
            with self._tx() as cur:
                bounds = [r[0] for r in cur.execute(query).fetchall()]
            n = len(bounds) + 1
            sizes = [shard_size] * (n - 1) + [max(0, count - shard_size * (n - 1))]
        edges: list[Any] = [None, *bounds, None]
        return [{"lo": edges[i], "hi": edges[i + 1], "records": sizes[i]} for i in range(n)]

    def _select(self, layout: Layout) -> tuple[sql.Composable, list[int]]:
        exprs, oids = zip(*(c.read_expr("t") for c in layout.read_columns()), strict=True)
        return sql.SQL(", ").join(exprs), list(oids)

    def _literal(self, layout: Layout, value: Any) -> sql.Composable:
        return sql.SQL("({})::" + layout.id_cast).format(sql.Literal(self._norm_id(layout, value)))

    def _page_from(self, layout: Layout, shard: dict[str, Any] | None, cursor: Any, size: int) -> sql.Composable:
        """``FROM <table> AS t WHERE <shard bounds> AND id > cursor ORDER BY id LIMIT size``.

        The one definition of a page: ``scan`` and the native pipe (``native_copy``) both use
        it, so a run may switch between them across a resume without skipping or repeating.
        COPY cannot take bind parameters: the bounds are quoted literals cast to the id type.
        ORDER BY names the qualified column, never the (possibly cast) output.
        """
        idc = sql.Identifier("t", layout.id.name)
        lo = shard.get("lo") if shard else None
        hi = shard.get("hi") if shard else None
        # A NULL id can be neither resumed from nor upserted; without this a NULL in a table
        # lacking a primary key would become the cursor and restart the scan.
        conds: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(idc)]
        if lo is not None:
            conds.append(sql.SQL("{} >= {}").format(idc, self._literal(layout, lo)))
        if hi is not None:
            conds.append(sql.SQL("{} < {}").format(idc, self._literal(layout, hi)))
        if cursor is not None:
            conds.append(sql.SQL("{} > {}").format(idc, self._literal(layout, cursor)))
        return sql.SQL("FROM {} AS t WHERE {} ORDER BY {} LIMIT {}").format(
            sql.Identifier(layout.relation.name), sql.SQL(" AND ").join(conds), idc, sql.Literal(int(size))
        )

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        layout = self._require_layout()
        select, oids = self._select(layout)
        size = max(1, int(batch_size))
        while True:
            query = sql.SQL("COPY (SELECT {} {}) TO STDOUT (FORMAT BINARY)").format(
                select, self._page_from(layout, shard, cursor, size)
            )
            with self._tx() as cur, cur.copy(query) as cp:
                cp.set_types(oids)
                rows = list(cp.rows())
            if not rows:
                return
            batch = self._to_batch(layout, rows)
            batch.cursor = batch.ids[-1]
            cursor = batch.cursor
            yield batch
            if len(rows) < size:
                return

    def ids_unique_by_store(self, inventory: Inventory) -> bool:
        """A primary key or unique index on the id column: one type, every id once."""
        return bool(inventory.extra.get("id_unique"))

    def check_ids(self, limit: int | None = None) -> IdReport:
        """Without a unique index on the id column, ids may repeat (and the id-ordered scan
        would read a repeated id once, or not at all across a page boundary): found by the
        server, located by ``ctid``. NULL ids are refused too (a scan cannot resume from one)."""
        name = self._collection_name()
        with self._tx() as cur:
            layout = self._require_layout(cur)
            rel = layout.relation
            report = IdReport(id_type=layout.id_type)
            base = rel if rel.is_table else self._view_base(cur, rel)
            if self._id_unique(cur, base, layout):
                return report
            t = sql.Identifier(rel.name)
            idc = sql.Identifier(layout.id.name)
            loc = sql.SQL("ctid::text") if rel.is_table else sql.SQL("NULL::text")
            inner = sql.SQL("SELECT {id} AS id, {loc} AS loc FROM {t}").format(id=idc, loc=loc, t=t)
            if limit is not None:
                inner = sql.SQL("{} ORDER BY {} LIMIT {}").format(inner, idc, sql.Literal(int(limit)))
            null = cur.execute(sql.SQL("SELECT loc FROM ({}) s WHERE id IS NULL LIMIT 1").format(inner)).fetchone()
            if null is not None:
                report.invalid = (None, f"{name} ctid {null[0]}" if null[0] else name)
                return report
            rows = cur.execute(sql.SQL(
                "SELECT id, count(*), (array_agg(loc ORDER BY loc))[1:4], count(*) OVER () FROM ({}) s "
                "GROUP BY id HAVING count(*) > 1 ORDER BY min(loc), id LIMIT 3").format(inner)).fetchall()
        if rows:
            report.repeated_total = int(rows[0][3])
            report.repeated = [(rid, int(n), [f"{name} ctid {c}" if c else name for c in locs])
                               for rid, n, locs, _ in rows]
            report.note = f"'{name}' has no primary key or unique index on '{layout.id.name}'"
        return report

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        layout = self._require_layout()
        if not ids:
            return self._to_batch(layout, [])
        select, _ = self._select(layout)
        query = sql.SQL("SELECT {} FROM {} AS t WHERE {} = ANY(%s::" + layout.id_cast + "[]) ORDER BY {}").format(
            select,
            sql.Identifier(layout.relation.name),
            sql.Identifier("t", layout.id.name),
            sql.Identifier("t", layout.id.name),
        )
        params = self._lookup_ids(layout, ids)
        with self._tx() as cur:
            rows = cur.execute(query, (params,), binary=True).fetchall()
        return self._to_batch(layout, rows)

    def count(self) -> int:
        layout = self._require_layout()
        with self._tx() as cur:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(layout.relation.name))
            row = cur.execute(query).fetchone()
        return int(row[0])  # type: ignore[index]

    def _norm_id(self, layout: Layout, value: Any) -> RecordId:
        """The id as the column holds it, converted only losslessly (see vecmig.ids): an
        integer id into a text column is its decimal text; a text id into an integer column
        must be exactly an integer's decimal text ("5", never "05", " 5" or "5.0"), else two
        different ids could land on one row. Anything else is refused, naming the id."""
        kind = id_kind(value)
        if layout.id_type == "int":
            if kind == "int":
                return int(value)
            number = canonical_int_text(value) if kind == "text" else None
            if number is None:
                raise TerminalError(
                    f"record id {show_id(value)} cannot be stored in integer column '{layout.id.name}' of "
                    f"'{layout.relation.name}' without changing it",
                    hint="migrate into a text id column (or a new collection), or give the records integer ids",
                )
            return number
        if kind == "text":
            return value  # type: ignore[no-any-return]
        if kind == "int":
            return str(int(value))
        raise TerminalError(f"record id {show_id(value)} is a {type(value).__name__}; ids are integers or strings",
                            hint="give every record a non-empty integer or string id")

    def _lookup_ids(self, layout: Layout, ids: Sequence[RecordId]) -> list[RecordId]:
        """Ids to look up (fetch, delete): one the column cannot hold is simply not there."""
        out = []
        for rid in ids:
            try:
                out.append(self._norm_id(layout, rid))
            except TerminalError:
                continue
        return out

    def _to_batch(self, layout: Layout, rows: list[tuple[Any, ...]]) -> Batch:
        dim = layout.dimension
        if not rows:
            return Batch(ids=[], vectors=np.zeros((0, dim or 0), dtype=np.float32), metadata=[], texts=None)
        ids = [r[0] for r in rows]
        try:
            vectors = decode_vectors([r[1] for r in rows], dim)
        except ValueError as exc:
            raise TerminalError(f"column '{layout.vector.name}' of '{layout.relation.name}': {exc}") from None
        k = 2
        texts: list[str | None] | None = None
        if layout.text is not None:
            texts = [r[2] for r in rows]
            k = 3
        if layout.json_column is not None:
            name = layout.json_column.name
            metadata = [
                d if isinstance(d, dict) else ({} if d is None else {name: d}) for d in (r[k] for r in rows)
            ]
        else:
            names = [c.name for c in layout.metadata]
            metadata = [{n: v for n, v in zip(names, r[k:], strict=True) if v is not None} for r in rows]
        return Batch(ids=ids, vectors=vectors, metadata=metadata, texts=texts)

    # ---- writing --------------------------------------------------------------------------

    def _writable(self) -> Layout:
        layout = self._require_layout()
        if not layout.relation.is_table:
            raise TerminalError(
                f"'{layout.relation.name}' is a {layout.relation.kind_name}; vecmig writes only to tables",
                hint=f"point {self._role}.collection at a table",
            )
        return layout

    def _staging_table(self, cur: psycopg.Cursor[Any], layout: Layout, cols: list[Column]) -> str:
        """A temp table with the batch's columns in wire types (ON COMMIT DELETE ROWS).

        ``IF NOT EXISTS`` runs in every upsert transaction rather than once per connection:
        it costs one cheap statement, and stays correct behind a transaction-pooling
        PgBouncer (where consecutive transactions may land on different server sessions)
        and after a rollback that took a freshly created staging table with it.
        """
        signature = "|".join(f"{c.name}:{c.logical}" for c in cols)
        name = "vecmig_stage_" + hashlib.sha256(f"{layout.relation.oid}|{signature}".encode()).hexdigest()[:12]
        defs = []
        for c in cols:
            wire = "vector" if c.logical == "vector" else WIRE_TYPE[c.logical]
            if c is layout.id:
                wire = "int8" if layout.id_type == "int" else "text"
            defs.append(sql.SQL("{} " + wire).format(sql.Identifier(c.name)))
        cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                sql.Identifier(name), sql.SQL(", ").join(defs)
            )
        )
        return name

    def _batch_columns(self, layout: Layout, batch: Batch, ids: list[RecordId]) -> list[tuple[Column, Wire, Any]]:
        n = len(batch)
        vectors = np.asarray(batch.vectors)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise TerminalError(f"batch vectors have shape {vectors.shape}, expected ({n}, dim)")
        if layout.dimension is not None and vectors.shape[1] != layout.dimension:
            raise TerminalError(
                f"vectors have {vectors.shape[1]} dimensions but '{layout.relation.name}.{layout.vector.name}' "
                f"is vector({layout.dimension})",
                hint="the target's dimension must match the source (or re-embed)",
            )
        out: list[tuple[Column, Wire, Any]] = [
            (layout.id, "int8" if layout.id_type == "int" else "text", ids),
            (layout.vector, "vector", vectors),
        ]
        if layout.text is not None:
            out.append((layout.text, "text", list(batch.texts) if batch.texts is not None else [None] * n))
        elif batch.texts is not None and any(t is not None for t in batch.texts):
            raise TerminalError(
                f"records carry text but '{layout.relation.name}' has no text column",
                hint=f"set {self._role}.fields.text to the column that should hold it",
            )
        self._check_fidelity(layout, batch, ids)
        if layout.json_column is not None:
            out.append((layout.json_column, "jsonb", list(batch.metadata)))
            return out
        names = {c.name for c in layout.metadata}
        keys: set[str] = set()
        for m in batch.metadata:
            keys.update(m)
        unknown = sorted(keys - names)
        if unknown:
            raise TerminalError(
                f"metadata field(s) {', '.join(unknown)} have no column in '{layout.relation.name}'",
                hint="add the columns, drop/rename the fields in mapping, or store metadata as jsonb",
            )
        for c in layout.metadata:
            out.append((c, WIRE_TYPE[c.logical], [m.get(c.name) for m in batch.metadata]))
        return out

    def _check_fidelity(self, layout: Layout, batch: Batch, ids: list[RecordId]) -> None:
        """Refuse, naming record and field, what the columns would refuse with a raw server
        error or silently change (see :mod:`vecmig.providers.fidelity`)."""
        slots, document = _slots(layout)
        texts = batch.texts if batch.texts is not None else [None] * len(batch)
        id_type = "int" if layout.id_type == "int" else "text"
        where = f"'{layout.relation.name}'"
        for rid, meta, text in zip(ids, batch.metadata, texts, strict=True):
            bad_id = fidelity.check_id(rid, id_type, pg=True)
            if bad_id is not None:
                raise fidelity.refuse(where, rid, None, fidelity.Refusal(bad_id.code, f"id {bad_id.why}"))
            found = fidelity.record_problem(meta, slots, document, True, text if layout.text is not None else None)
            if found is not None:
                raise fidelity.refuse(where, rid, found[0], found[1])

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """The write-time fidelity rules over the plan's sample, for the table create_collection
        would make (an existing table's real column types are checked at write time)."""
        f = self.store.fields
        if isinstance(f.metadata, str):
            slots, document = None, "jsonb"
        else:
            slots, document = {k: v for k, v in schema.metadata.items()}, None
        texts = sample.texts if sample.texts is not None else [None] * len(sample)
        return fidelity.lint_records(sample.ids, sample.metadata, texts, slots, document, True,
                                     f"PostgreSQL ({self.store.collection})", id_type=schema.id_type)

    def expect_new_records(self) -> None:
        """The target was created by this plan: ids are new unless a batch is being replayed.

        A plain binary COPY into the table is then the fastest correct write: the primary
        key still guards uniqueness, and a replayed batch (after a kill) fails its COPY with
        a unique violation and is redone through the idempotent staged upsert.
        """
        self._direct = True

    def upsert(self, batch: Batch) -> None:
        if not len(batch):
            return
        layout = self._writable()
        ids = [self._norm_id(layout, i) for i in batch.ids]
        if len(set(ids)) != len(ids):
            # ON CONFLICT cannot touch one row twice in a statement: the last occurrence wins,
            # as it would have with one upsert per record.
            keep = sorted({rid: pos for pos, rid in enumerate(ids)}.values())
            batch = batch.take(keep)
            ids = [ids[p] for p in keep]
        columns = self._batch_columns(layout, batch, ids)
        cols = [c for c, _, _ in columns]
        if self._direct and self._copy_direct(layout, cols, columns):
            return
        try:
            self._upsert(layout, cols, columns, fast=True)
        except _FastPathRejected:
            # psycopg's dumpers are strict (an int8 column refuses 3.0, text[] refuses a
            # tuple); the numpy/bytes encoder coerces what is safe and pinpoints the rest.
            self._upsert(layout, cols, columns, fast=False)

    def _copy_direct(self, layout: Layout, cols: list[Column], columns: list[tuple[Column, Wire, Any]]) -> bool:
        """COPY into the table itself; False (nothing written) when the staged upsert must do it."""
        if not self._cast_free(layout, cols):
            return False  # a column needs a cast from its wire type: only the staged path does that
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                self._copy_rows(cur, layout.relation.name, columns, len(columns[0][2]))
            conn.commit()  # the acknowledgement
            return True
        except psycopg.errors.UniqueViolation:
            self._abort(conn)
            return False
        except psycopg.Error as exc:
            self._abort(conn)
            if _client_side(exc):
                return False
            raise self._classify(exc) from exc
        except (TerminalError, TransientError):
            self._abort(conn)
            raise
        except Exception:  # a dumper refused a Python value: the staged path coerces or explains
            self._abort(conn)
            return False

    def _upsert(self, layout: Layout, cols: list[Column], columns: list[tuple[Column, Wire, Any]], fast: bool) -> None:
        n = len(columns[0][2])
        ids = columns[0][2]
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                stage = self._staging_table(cur, layout, cols)
                if fast:
                    order = [c.name for c in cols]
                    try:
                        self._copy_rows(cur, stage, columns, n)
                    except psycopg.Error as exc:
                        if _client_side(exc):
                            raise _FastPathRejected() from exc
                        raise
                    except Exception as exc:  # a dumper choked on a Python value
                        raise _FastPathRejected() from exc
                else:
                    try:
                        order, payload = build_copy([CopyColumn(c.name, w, v) for c, w, v in columns], n)
                    except EncodeError as exc:
                        raise TerminalError(
                            f"record {ids[exc.row]!r}: {exc} (writing '{layout.relation.name}')",
                            hint="fix the value or map the field to a compatible type",
                        ) from None
                    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, order))
                    )
                    with cur.copy(copy_sql) as cp:
                        cp.write(payload)
                by_name = {c.name: c for c in cols}
                cur.execute(self._merge_sql(layout, [by_name[name] for name in order], stage))
            # The commit is the acknowledgement: only after it may the caller checkpoint.
            conn.commit()
        except _FastPathRejected:
            self._abort(conn)
            raise
        except psycopg.Error as exc:
            self._abort(conn)
            err = self._classify(exc)
            row = _copy_line(exc)
            if row is not None and 0 < row <= n:
                err.message = f"record {ids[row - 1]!r}: {err.message}"
                err.args = (err.message,)
            raise err from exc
        except BaseException:
            self._abort(conn)
            raise

    @staticmethod
    def _merge_sql(layout: Layout, target_cols: Sequence[Column], stage: str) -> sql.Composed:
        """Staged rows into the table, cast to its column types, idempotent by id."""
        return sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {exprs} FROM {s} AS s ON CONFLICT ({id}) DO UPDATE SET {sets}"
        ).format(
            t=sql.Identifier(layout.relation.name),
            cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in target_cols),
            exprs=sql.SQL(", ").join(c.write_expr("s") for c in target_cols),
            s=sql.Identifier(stage),
            id=sql.Identifier(layout.id.name),
            sets=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.name))
                for c in target_cols
                if c is not layout.id
            ),
        )

    @staticmethod
    def _cast_free(layout: Layout, cols: Sequence[Column]) -> bool:
        """Every column takes its wire type as it is: a COPY straight into the table works."""
        if layout.id_type == "int" and layout.id.typname != "int8":
            return False
        return all(c is layout.id or c.write_expr("s") == sql.Identifier("s", c.name) for c in cols)

    def _copy_rows(self, cur: psycopg.Cursor[Any], stage: str, columns: list[tuple[Column, Wire, Any]], n: int) -> None:
        types: list[int | str] = []
        values: list[Any] = []
        for _col, wire, vals in columns:
            if wire == "vector":
                if self._vector_oid is None and not self._register_types(cur.connection):
                    raise TerminalError(f"the pgvector extension is not installed in {self._where}")
                types.append(self._vector_oid)  # type: ignore[arg-type]
                values.append(_vector_payloads(vals))
            else:
                types.append(wire)
                values.append(vals)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(stage), sql.SQL(", ").join(sql.Identifier(c.name) for c, _, _ in columns)
        )
        with cur.copy(copy_sql) as cp:
            cp.set_types(types)
            write = cp.write_row
            for row in zip(*values, strict=True):
                write(row)

    def delete(self, ids: Sequence[RecordId]) -> None:
        if not ids:
            return
        layout = self._writable()
        params = self._lookup_ids(layout, ids)
        with self._tx() as cur:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::" + layout.id_cast + "[])").format(
                    sql.Identifier(layout.relation.name), sql.Identifier(layout.id.name)
                ),
                (params,),
            )

    def create_collection(self, schema: CollectionSchema) -> None:
        name = self._collection_name()
        f = self.store.fields
        if schema.dimension is None or not 0 < int(schema.dimension) <= 16000:
            raise TerminalError(f"invalid dimension {schema.dimension!r}", hint="pgvector supports 1..16000")
        if schema.id_type not in ("int", "text"):
            raise TerminalError(f"unsupported id type {schema.id_type!r}", hint="use int or text")
        defs: list[sql.Composable] = [
            sql.SQL("{} " + ("bigint" if schema.id_type == "int" else "text") + " PRIMARY KEY").format(
                sql.Identifier(f.id)
            ),
            sql.SQL("{} vector({}) NOT NULL").format(sql.Identifier(f.vector), sql.Literal(int(schema.dimension))),
        ]
        names = [f.id, f.vector]
        if isinstance(f.metadata, str):
            names.append(f.metadata)
            defs.append(sql.SQL("{} jsonb").format(sql.Identifier(f.metadata)))
        else:
            wanted = list(f.metadata) if f.metadata is not None else list(schema.metadata)
            for col in wanted:
                why = _bad_column_name(col)
                if why:
                    raise TerminalError(
                        f"metadata key {col!r} cannot be a column of '{name}': {why}",
                        hint="rename it in mapping.metadata.rename, or set target.fields.metadata to one jsonb "
                        "column name to keep the metadata as one document",
                    )
                logical = schema.metadata.get(col, "json")
                if logical not in SQL_TYPE:
                    raise TerminalError(f"metadata field '{col}' has unknown type {logical!r}")
                names.append(col)
                defs.append(sql.SQL("{} " + SQL_TYPE[logical]).format(sql.Identifier(col)))
        if schema.text or f.text:
            # Last, after the metadata: the column order of a typical documents table. A text column
            # named in the spec is created even when the source holds no text: the spec asked for it.
            names.append(f.text or "text")
            defs.append(sql.SQL("{} text").format(sql.Identifier(f.text or "text")))
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TerminalError(
                f"column name(s) {', '.join(dupes)} used twice in '{name}'",
                hint=f"rename the metadata field(s) in mapping or change {self._role}.fields",
            )
        with self._tx() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        with self._tx() as cur:
            self._register_types(cur.connection)
            rel = self._relation(cur, name)
            if rel is not None:
                self._check_existing(cur, rel, schema)
            else:
                cur.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(defs)))
                if schema.metric:
                    # Remembered on the column so the metric survives until (and without) an index.
                    cur.execute(
                        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                            sql.Identifier(name),
                            sql.Identifier(f.vector),
                            sql.Literal(METRIC_COMMENT_PREFIX + schema.metric),
                        )
                    )
        self._layout = None

    def _check_existing(self, cur: psycopg.Cursor[Any], rel: Relation, schema: CollectionSchema) -> None:
        """create_collection() on an existing table is a no-op when the shape matches."""
        layout = self._resolve(cur, rel)
        problems = []
        if not rel.is_table:
            problems.append(f"it is a {rel.kind_name}")
        if layout.dimension != schema.dimension:
            problems.append(f"dimension {layout.dimension} != {schema.dimension}")
        if layout.id_type != schema.id_type:
            problems.append(f"id type {layout.id_type} != {schema.id_type}")
        if problems:
            raise TerminalError(
                f"'{rel.name}' already exists with a different shape: {'; '.join(problems)}",
                hint=f"choose another {self._role}.collection or drop the existing one",
            )

    def drop_collection(self) -> None:
        name = self._collection_name()
        with self._tx() as cur:
            rel = self._relation(cur, name)
            if rel is None:
                return
            if not rel.is_table:
                raise TerminalError(f"'{name}' is a {rel.kind_name}; refusing to drop it as a collection")
            views = [v for v, _ in cur.execute(DEPENDENT_VIEWS_SQL, (rel.oid, rel.oid)).fetchall()]
            if views:
                raise TerminalError(
                    f"cannot drop '{name}': view(s) {', '.join(views)} read from it",
                    hint="switch or remove the alias first (vecmig never drops with CASCADE)",
                )
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        self._layout = None

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        if index.type == "none":
            return None
        if index.type not in ("hnsw", "ivfflat"):
            raise TerminalError(f"pgvector has no '{index.type}' index", hint="use hnsw, ivfflat or none")
        if metric not in OPCLASS:
            raise TerminalError(f"unknown metric {metric!r}", hint="use cosine, euclidean or dotproduct")
        layout = self._writable()
        table = layout.relation.name
        iname = index_name(table, layout.vector.name, index.type)
        params = (
            {"m": int(index.m), "ef_construction": int(index.ef_construction)}
            if index.type == "hnsw"
            else {"lists": int(index.lists)}
        )
        with self._tx() as cur:
            found = cur.execute(INDEX_BY_NAME_SQL, (self._ident(cur, iname),)).fetchone()
            if found is not None:
                _, method, opclass, options, indrelid = found
                same = (
                    indrelid == layout.relation.oid
                    and method == index.type
                    and opclass == OPCLASS[metric]
                    and parse_reloptions(options, method) == params
                )
                if same:
                    return iname
                raise TerminalError(
                    f"index '{iname}' exists with different settings ({method}, {opclass}, "
                    f"{parse_reloptions(options, method)})",
                    hint="drop it first; vecmig does not replace an index it did not plan",
                )
            # Index builds are long by nature: no statement timeout, and enough memory for
            # the HNSW graph to be built in memory (it is many times slower once it spills).
            cur.execute("SET LOCAL statement_timeout = 0")
            size = cur.execute(SIZE_SQL, (layout.relation.oid,)).fetchone()[0] or 0  # type: ignore[index]
            current = cur.execute(
                "SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'"
            ).fetchone()[0]  # type: ignore[index]
            want = min(_MAX_MWM, max(_MIN_MWM, int(size) * 2))
            if want > current:
                cur.execute(
                    sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{want // 1024}kB"))
                )
            with_ = sql.SQL(", ").join(sql.SQL(k + " = {}").format(sql.Literal(v)) for k, v in params.items())
            cur.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING " + index.type + " ({} {}) WITH ({})").format(
                    sql.Identifier(iname),
                    sql.Identifier(table),
                    sql.Identifier(layout.vector.name),
                    sql.Identifier(OPCLASS[metric]),
                    with_,
                )
            )
        return iname

    def drop_index(self, name: str) -> None:
        with self._tx() as cur:
            cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))

    def read_alias(self, alias: str) -> str | None:
        with self._tx() as cur:
            return self._read_alias(cur, alias)

    def switch_alias(self, alias: str, collection: str | None) -> None:
        """Point the view ``alias`` at ``collection`` in one transaction (None drops it)."""
        view = sql.Identifier(alias)
        with self._tx() as cur:
            rel = self._relation(cur, alias)
            if rel is not None:
                # Refuses a table, and a view over several relations (someone's real view).
                self._read_alias(cur, alias)
            if collection is None:
                if rel is not None:
                    cur.execute(sql.SQL("DROP VIEW {}").format(view))
                return
            if self._relation(cur, collection) is None:
                raise TerminalError(
                    f"cannot point alias '{alias}' at '{collection}': it does not exist in {self._where}",
                    hint="create and fill the collection before the cutover",
                )
            body = sql.SQL("SELECT * FROM {}").format(sql.Identifier(collection))
            if rel is None:
                cur.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, body))
                return
            # CREATE OR REPLACE keeps grants and dependent objects but only works when the new
            # column list extends the old one; otherwise drop and create, still atomically,
            # re-granting what readers had so a cutover does not lock the application out.
            cur.execute("SAVEPOINT vecmig_alias")
            try:
                cur.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, body))
            except psycopg.errors.DatabaseError:
                cur.execute("ROLLBACK TO SAVEPOINT vecmig_alias")
                grants = cur.execute(VIEW_GRANTS_SQL, (rel.oid,)).fetchall()
                cur.execute(sql.SQL("DROP VIEW {}").format(view))
                cur.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, body))
                for grantee, privilege in grants:
                    if privilege in TABLE_PRIVILEGES:
                        cur.execute(sql.SQL("GRANT " + privilege + " ON {} TO " + grantee).format(view))
            cur.execute("RELEASE SAVEPOINT vecmig_alias")

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
        if not isinstance(source, PgvectorProvider):
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

    def _native_plan(self, source: PgvectorProvider) -> pipe.PipePlan:
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
        self, source: PgvectorProvider, plan: pipe.PipePlan, shard: dict[str, Any] | None, cursor: Any, size: int
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
        self, run: pipe.NativeRun, layout: Layout, owners: tuple[PgvectorProvider, ...]
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

    def estimate_schema(self) -> CollectionSchema | None:
        """Shape of an existing table; ``metric`` is "" when neither an index nor vecmig's
        column comment says which one it is."""
        with self._tx() as cur:
            rel = self._relation(cur, self._collection_name())
        if rel is None:
            return None
        inv = self.inventory()
        return CollectionSchema(
            dimension=int(inv.dimension or 0),
            metric=inv.metric or "",
            id_type=inv.id_type or "int",
            metadata=dict(inv.fields),
            text=inv.extra.get("text_column") is not None,
        )

    def server_digest(self) -> Any:
        """Validation's fast path: per-shard ``(rows, digest)`` computed by this server
        (a :class:`vecmig.providers.base.ServerDigest`; see ``digest.py``)."""
        from vecmig.providers.pgvector.digest import PgDigest

        return PgDigest.of(self)


# ---- helpers ----------------------------------------------------------------------------------


_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")


_SLOT_OF_TYPNAME = {"int2": "int2", "int4": "int4", "float4": "float4", "numeric": "numeric"}


def _slots(layout: Layout) -> tuple[dict[str, str] | None, str | None]:
    """Where each metadata key goes, for :mod:`vecmig.providers.fidelity`."""
    if layout.json_column is not None:
        return None, "jsonb"
    return {c.name: _SLOT_OF_TYPNAME.get(c.typname, "jsonb" if c.logical == "json" else c.logical)
            for c in layout.metadata}, None


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


class _FastPathRejected(Exception):
    """write_row refused a value client-side: retry the batch with the careful encoder."""


def _client_side(exc: psycopg.Error) -> bool:
    """An error raised by psycopg while dumping (no server SQLSTATE): the data, not the server."""
    return not getattr(exc, "sqlstate", None) and isinstance(exc, psycopg.DataError | psycopg.ProgrammingError)


def _copy_line(exc: psycopg.Error) -> int | None:
    """The 1-based row of a COPY that the server rejected, from 'COPY x, line N, column c'."""
    diag = getattr(exc, "diag", None)
    context = (diag.context or "") if diag is not None else ""
    found = _COPY_LINE.search(context)
    return int(found.group(1)) if found else None


def _vector_payloads(vectors: np.ndarray) -> list[bytes]:
    """Every row's binary ``vector`` value, byteswapped in one numpy operation."""
    n, dim = vectors.shape
    rec = np.empty(n, dtype=vector_dtype(dim))
    rec["dim"] = dim
    rec["unused"] = 0
    rec["v"] = vectors
    raw = rec.tobytes()
    width = rec.dtype.itemsize
    return [raw[i * width : (i + 1) * width] for i in range(n)]


def _bad_column_name(name: str) -> str | None:
    """Why PostgreSQL cannot hold ``name`` as a column name unchanged, or None."""
    if not name:
        return "a column name cannot be empty"
    if "\x00" in name:
        return "a column name cannot hold a NUL character"
    if len(name.encode("utf-8")) > 63:
        return "PostgreSQL truncates column names to 63 bytes"
    return None
