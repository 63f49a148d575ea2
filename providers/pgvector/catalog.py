"""What the database holds: the collection's relation and columns resolved into a ``Layout``
(id, vector, text, metadata), views read as aliases, the inventory the planner compares, and
the checks of an existing target (``check_existing_target``, ``_writable``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.ids import canonical_int_text, show_id
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema, LintFinding
from vecmig.providers.pgvector import indexsettings
from vecmig.providers.pgvector.connection import ConnectionMixin
from vecmig.providers.pgvector.sql import (
    COLUMNS_SQL,
    DEPENDENT_VIEWS_SQL,
    ID_UNIQUE_SQL,
    METRIC_COMMENT_PREFIX,
    METRIC_OF_OPCLASS,
    RELATION_SQL,
    REQUIRED_COLUMNS_SQL,
    VECTOR_INDEX_SQL,
    VIEW_BASES_SQL,
    Column,
    Layout,
    Relation,
    parse_reloptions,
    row_to_column,
)
from vecmig.records import Batch
from vecmig.spec import StoreSpec


class CatalogMixin(ConnectionMixin):
    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        self._layout: Layout | None = None

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

    def layout(self) -> Layout:
        """The collection's layout (``PgSession``): resolved once the table exists, then kept."""
        return self._require_layout()

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
                        params = parse_reloptions(options, method)
                        index = {
                            "name": iname,
                            "type": method,
                            "opclass": opclass,
                            "params": params,
                            # vecmig.indexes' neutral keys: m, ef_construction, ef_search / lists, probes
                            **indexsettings.neutral(cur, base.oid, iname, method, params),
                        }
                        metric = METRIC_OF_OPCLASS.get(opclass)
            if metric is None and comment and comment.startswith(METRIC_COMMENT_PREFIX):
                metric = comment[len(METRIC_COMMENT_PREFIX) :].strip() or None
            for view, kind in cur.execute(DEPENDENT_VIEWS_SQL, (rel.oid, rel.oid)).fetchall():
                if kind == "v":
                    aliases.setdefault(view, rel.name)
            id_unique = self._id_unique(cur, base, layout)
            required = [r[0] for r in cur.execute(REQUIRED_COLUMNS_SQL, (base.oid,)).fetchall()] if base else []
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
        if required:
            extra["required_columns"] = required
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
            has_text=layout.text is not None,
            metadata_column=layout.json_column.name if layout.json_column else None,
            extra=extra,
        )

    def check_existing_target(self, inventory: Inventory, sample: Batch, schema: CollectionSchema) \
            -> list[LintFinding]:
        """What ``_batch_columns`` would refuse during the copy, found from the inventory: a
        metadata field with no column (VM140), text with no text column (VM141)."""
        extra = inventory.extra
        name = inventory.collection
        out: list[LintFinding] = []
        if extra.get("relkind") not in (None, "table"):
            what = extra["relkind"]
            out.append(LintFinding(
                "VM142", "error", f"'{name}' is a {what}; vecmig writes only to tables",
                f"point {self._role}.collection at a table" + (f" (the view reads {extra['view_of']})"
                                                               if extra.get("view_of") else "")))
        elif extra.get("id_unique") is False:
            out.append(LintFinding(
                "VM143", "error", f"'{name}'.{extra.get('id_column')} has no primary key or unique index, so "
                "records cannot be upserted by id (a re-run would add them twice)",
                f"ALTER TABLE {name} ADD PRIMARY KEY ({extra.get('id_column')}), or migrate into a new table"))
        if inventory.id_type == "int":
            bad = [rid for rid in sample.ids if isinstance(rid, str) and canonical_int_text(rid) is None]
            if bad:
                out.append(LintFinding(
                    "VM144", "error", f"record id {show_id(bad[0])} cannot be stored in integer column "
                    f"'{extra.get('id_column')}' of '{name}': only the exact decimal text of an integer can",
                    "migrate into a table with a text id column"))
        texts = sample.texts
        filled = {extra.get("id_column"), extra.get("vector_column")}
        for col in extra.get("required_columns", []):
            if col in filled:
                continue
            if col == extra.get("text_column"):
                lacking = texts is None or any(t is None for t in texts)
            elif col == extra.get("metadata_column"):
                lacking = False  # a record without metadata is written as {}, never NULL
            elif col in set(extra.get("ignored_columns", [])):
                lacking = True
            else:
                lacking = any(m.get(col) is None for m in sample.metadata)
            if lacking:
                out.append(LintFinding(
                    "VM145", "error", f"column '{col}' of '{name}' is NOT NULL without a default, and records "
                    "without a value for it would be refused", f"give '{col}' a default, allow NULL, or fill it "
                    "from the source (fields / mapping)"))
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

    def _writable(self) -> Layout:
        layout = self._require_layout()
        if not layout.relation.is_table:
            raise TerminalError(
                f"'{layout.relation.name}' is a {layout.relation.kind_name}; vecmig writes only to tables",
                hint=f"point {self._role}.collection at a table",
            )
        return layout

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
