"""Definitions: create and drop the collection's table, build and drop its vector index, and
aliases as views (``read_alias``, ``switch_alias``: one transaction per cutover)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pgvector import indexsettings
from vecmig.providers.pgvector.catalog import CatalogMixin
from vecmig.providers.pgvector.sql import (
    DEPENDENT_VIEWS_SQL,
    INDEX_BY_NAME_SQL,
    METRIC_COMMENT_PREFIX,
    OPCLASS,
    SIZE_SQL,
    SQL_TYPE,
    TABLE_PRIVILEGES,
    VIEW_GRANTS_SQL,
    Relation,
    index_name,
    parse_reloptions,
)
from vecmig.spec import IndexSpec

_MIN_MWM = 64 * 1024 * 1024
_MAX_MWM = 1024 * 1024 * 1024


class DdlMixin(CatalogMixin):
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
                    indexsettings.record(cur, self._ident(cur, iname), index)
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
            indexsettings.record(cur, self._ident(cur, iname), index)
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


# ---- helpers ----------------------------------------------------------------------------------


def _bad_column_name(name: str) -> str | None:
    """Why PostgreSQL cannot hold ``name`` as a column name unchanged, or None."""
    if not name:
        return "a column name cannot be empty"
    if "\x00" in name:
        return "a column name cannot hold a NUL character"
    if len(name.encode("utf-8")) > 63:
        return "PostgreSQL truncates column names to 63 bytes"
    return None
