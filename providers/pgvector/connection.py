"""The session: a DSN or the embedded server, the connection (opened on first use, reopened
after the server dropped it), pgvector's binary type adapters, short transactions, and errors
classified as transient or terminal (``errors.py``).

``ConnectionMixin`` is the base the provider's other parts build on (``catalog``, ``read``,
``write``, ``ddl``, ``native``; ``provider.py`` puts them together). ``PgSession`` is the part
of a provider other modules may use (``digest.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import set_json_dumps

from vecmig.errors import ProviderError, TerminalError
from vecmig.providers.base import Provider
from vecmig.providers.pgvector import embedded, indexsettings, pipe
from vecmig.providers.pgvector.codec import encode_vector, jsonb_dumps
from vecmig.providers.pgvector.errors import classify
from vecmig.providers.pgvector.sql import Layout
from vecmig.spec import StoreSpec
from vecmig.state.redact import Redactor, secret_parts

_CONNECT_TIMEOUT_S = 10


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


class PgSession(Protocol):
    """A provider's session as other modules use it (``digest.py``): transactions, the client
    encoding, the collection's layout and the id literals of scan's page bounds."""

    def transaction(self) -> AbstractContextManager[psycopg.Cursor[Any]]: ...

    def client_encoding(self) -> str | None: ...

    def layout(self) -> Layout: ...

    def id_literal(self, layout: Layout, value: Any) -> sql.Composable: ...


class ConnectionMixin(Provider):
    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._conn: psycopg.Connection[Any] | None = None
        self._embedded: Path | None = None
        self._where = "pgvector"
        self._secrets: tuple[str, ...] = ()
        self._vector_oid: int | None = None
        # The native pipe (see native_copy) using this instance's connection, if one runs.
        self._pipe: pipe.NativeRun | None = None
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
            self._apply_index_settings(conn)
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

    def _apply_index_settings(self, conn: psycopg.Connection[Any]) -> None:
        """The query-time settings recorded on the collection's vector index (``hnsw.ef_search``
        ...), SET for this session: every query vecmig runs searches as the plan said."""
        if not self.store.collection:
            return
        with conn.cursor() as cur:
            indexsettings.apply_recorded(cur, sql.Identifier(self.store.collection).as_string(cur))

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

    # ---- public session API (``PgSession``) ----------------------------------------------

    def transaction(self) -> AbstractContextManager[psycopg.Cursor[Any]]:
        """One short transaction on this provider's session (``_tx``): commits on success,
        rolls back and raises the classified error on failure."""
        return self._tx()

    def client_encoding(self) -> str | None:
        """The session's client encoding as the server reports it (opens the session)."""
        return self._connection().info.parameter_status("client_encoding")


# ---- helpers ----------------------------------------------------------------------------------


_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")


def _copy_line(exc: psycopg.Error) -> int | None:
    """The 1-based row of a COPY that the server rejected, from 'COPY x, line N, column c'."""
    diag = getattr(exc, "diag", None)
    context = (diag.context or "") if diag is not None else ""
    found = _COPY_LINE.search(context)
    return int(found.group(1)) if found else None
