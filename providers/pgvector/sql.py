"""Catalog queries and the mapping between PostgreSQL column types and vecmig's logical types.

Everything here reads ``pg_catalog`` only: refresh (``plan``) must stay free of side
effects and must not depend on statistics that autovacuum changes behind our back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from vecmig.providers.pgvector.codec import Wire

# Column type vecmig creates for each logical type (also the staging "wire" type).
SQL_TYPE = {
    "text": "text",
    "int": "bigint",
    "float": "double precision",
    "bool": "boolean",
    "text[]": "text[]",
    "json": "jsonb",
}
WIRE_TYPE: dict[str, Wire] = {
    "text": "text", "int": "int8", "float": "float8", "bool": "bool", "text[]": "text[]", "json": "jsonb",
}

# Type oids psycopg loads natively in binary; anything else is cast in the SELECT to the
# canonical type of its logical type, so a domain, citext or timestamptz never reaches
# psycopg without a loader.
INT_OIDS = {20, 21, 23}
NATIVE_OIDS = {16, 20, 21, 23, 25, 114, 700, 701, 1009, 1043, 3802}
CAST_OID = {"text": 25, "int": 20, "float": 701, "bool": 16, "text[]": 1009, "json": 3802}
_STRINGISH = {"text", "varchar", "bpchar", "name", "citext"}

OPCLASS = {"cosine": "vector_cosine_ops", "euclidean": "vector_l2_ops", "dotproduct": "vector_ip_ops"}
METRIC_OF_OPCLASS = {v: k for k, v in OPCLASS.items()}
INDEX_DEFAULTS: dict[str, dict[str, int]] = {"hnsw": {"m": 16, "ef_construction": 64}, "ivfflat": {"lists": 100}}
METRIC_COMMENT_PREFIX = "vecmig:metric="


def logical_type(typname: str, category: str, elem_typname: str | None) -> str:
    """The logical type of a column; vector columns report "vector"."""
    if typname == "vector":
        return "vector"
    if typname in ("int2", "int4", "int8"):
        return "int"
    if typname in ("float4", "float8", "numeric"):
        return "float"
    if typname == "bool":
        return "bool"
    if typname in ("json", "jsonb"):
        return "json"
    if category == "A":
        return "text[]" if elem_typname in _STRINGISH else "json"
    return "text"


@dataclass(frozen=True)
class Column:
    name: str
    attnum: int
    oid: int
    sqltype: str  # format_type(oid, typmod): what a CAST must name to write this column
    typname: str
    typmod: int
    logical: str
    comment: str | None = None

    def read_expr(self, alias: str = "t") -> tuple[sql.Composable, int]:
        """SELECT expression and the oid of what it returns (for COPY ``set_types``)."""
        col = sql.Identifier(alias, self.name)
        if self.logical == "vector" or self.oid in NATIVE_OIDS:
            if self.logical == "text[]" and self.oid != 1009:
                return sql.SQL("{}::text[]").format(col), 1009
            return col, self.oid
        if self.logical == "json":  # arrays of non-strings, e.g. int4[]
            return sql.SQL("to_jsonb({})").format(col), 3802
        cast = {"text": "text", "int": "int8", "float": "float8", "bool": "bool", "text[]": "text[]"}
        return sql.SQL("{}::" + cast[self.logical]).format(col), CAST_OID[self.logical]

    def write_expr(self, alias: str = "s") -> sql.Composable:
        """Expression turning the staged wire-typed value into this column's real type."""
        col = sql.Identifier(alias, self.name)
        wire = WIRE_TYPE.get(self.logical)
        # vector -> vector(n) is an implicit assignment cast that also checks the dimension.
        if self.logical == "vector" or wire == self.typname or (wire, self.typname) == ("text[]", "_text"):
            return col
        return sql.SQL("CAST({} AS " + self.sqltype + ")").format(col)


@dataclass(frozen=True)
class Relation:
    oid: int
    kind: str  # r p v m f
    schema: str
    name: str

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")

    @property
    def kind_name(self) -> str:
        return {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}.get(
            self.kind, "relation"
        )


@dataclass(frozen=True)
class Layout:
    """Where the canonical record parts live in one relation, resolved from the catalog."""

    relation: Relation
    id: Column
    vector: Column
    text: Column | None
    metadata: tuple[Column, ...]  # typed columns; empty in json mode
    json_column: Column | None  # set when ``fields.metadata`` names one document column
    ignored: tuple[str, ...] = ()  # extra vector columns that are not migrated
    columns: tuple[Column, ...] = field(default=(), repr=False)

    @property
    def dimension(self) -> int | None:
        return self.vector.typmod if self.vector.typmod > 0 else None

    @property
    def id_type(self) -> str:
        return "int" if self.id.oid in INT_OIDS else "text"

    @property
    def id_cast(self) -> str:
        """Type name for casting literals/parameters to the id column's type."""
        return self.id.sqltype.split("(")[0]

    def read_columns(self) -> list[Column]:
        cols = [self.id, self.vector]
        if self.text is not None:
            cols.append(self.text)
        if self.json_column is not None:
            cols.append(self.json_column)
        else:
            cols.extend(self.metadata)
        return cols

    def fields(self) -> dict[str, str]:
        if self.json_column is not None:
            return {self.json_column.name: "json"}
        return {c.name: c.logical for c in self.metadata}


RELATION_SQL = """
SELECT c.oid, c.relkind, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""

COLUMNS_SQL = """
SELECT a.attname, a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod), t.typname,
       a.atttypmod, t.typcategory, e.typname, col_description(a.attrelid, a.attnum)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# Vector indexes on exactly the vector column; HNSW first, then by name, so the answer is
# stable when a table carries more than one.
VECTOR_INDEX_SQL = """
SELECT i.relname, am.amname, opc.opcname, coalesce(i.reloptions, '{}'::text[])
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_opclass opc ON opc.oid = x.indclass[0]
WHERE x.indrelid = %s AND x.indnatts = 1 AND x.indkey[0] = %s
  AND am.amname IN ('hnsw', 'ivfflat') AND x.indisvalid
ORDER BY am.amname = 'hnsw' DESC, i.relname
"""

INDEX_BY_NAME_SQL = """
SELECT i.relname, am.amname, opc.opcname, coalesce(i.reloptions, '{}'::text[]), x.indrelid
FROM pg_class i
JOIN pg_index x ON x.indexrelid = i.oid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_opclass opc ON opc.oid = x.indclass[0]
WHERE i.oid = to_regclass(%s)
"""

# Is there a unique index whose only key is the id column (needed by ON CONFLICT, and what
# makes keyset pagination an index scan)?
ID_UNIQUE_SQL = """
SELECT EXISTS (
  SELECT 1 FROM pg_index x
  WHERE x.indrelid = %s AND x.indisunique AND x.indnatts = 1 AND x.indkey[0] = %s
    AND x.indpred IS NULL AND x.indexprs IS NULL
)
"""

# Columns an INSERT must fill: NOT NULL, no default, not an identity or generated column.
REQUIRED_COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull AND NOT a.atthasdef
  AND a.attidentity = '' AND a.attgenerated = ''
ORDER BY a.attnum
"""

# Relations a view's rewrite rule reads from (its "base tables").
VIEW_BASES_SQL = """
SELECT DISTINCT b.oid, b.relkind, n.nspname, b.relname
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                 AND d.refclassid = 'pg_class'::regclass
JOIN pg_class b ON b.oid = d.refobjid
JOIN pg_namespace n ON n.oid = b.relnamespace
WHERE r.ev_class = %s AND d.refobjid <> %s
ORDER BY n.nspname, b.relname
"""

# Views (and materialized views) whose rewrite rule reads from the relation: the plain
# views are the aliases pointing at it; either kind blocks dropping it.
DEPENDENT_VIEWS_SQL = """
SELECT DISTINCT v.relname, v.relkind
FROM pg_depend d
JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s AND v.oid <> %s AND v.relkind IN ('v', 'm')
ORDER BY v.relname
"""

# Explicit grants on a view, so that replacing it (DROP + CREATE) can restore them.
VIEW_GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type
FROM pg_class c
CROSS JOIN LATERAL aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s AND a.grantee <> c.relowner
ORDER BY 1, 2
"""
TABLE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"})

# Main forks only: the visibility map and free space map forks are created by (auto)vacuum
# at unpredictable times, and must not change the inventory fingerprint.
SIZE_SQL = """
SELECT pg_relation_size(c.oid, 'main')
     + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0), 'main'), 0)
FROM pg_class c WHERE c.oid = %s
"""


def parse_reloptions(options: list[str] | None, method: str) -> dict[str, int]:
    """``['m=16', 'ef_construction=64']`` plus pgvector's defaults for what is absent."""
    params: dict[str, int] = dict(INDEX_DEFAULTS.get(method, {}))
    for opt in options or []:
        key, _, value = opt.partition("=")
        if key in params or key in ("m", "ef_construction", "lists"):
            try:
                params[key] = int(value)
            except ValueError:
                continue
    return params


def row_to_column(row: tuple[Any, ...]) -> Column:
    name, attnum, oid, sqltype, typname, typmod, category, elem, comment = row
    return Column(
        name=name,
        attnum=attnum,
        oid=oid,
        sqltype=sqltype,
        typname=typname,
        typmod=typmod,
        logical=logical_type(typname, category, elem),
        comment=comment,
    )


def index_name(table: str, column: str, method: str) -> str:
    """``<table>_<vector>_<type>_idx``, kept under NAMEDATALEN (63 bytes) deterministically.

    PostgreSQL would truncate a longer name itself, but then ``IF NOT EXISTS`` and later
    lookups would have to reproduce its truncation; a stable hash suffix avoids that.
    """
    name = f"{table}_{column}_{method}_idx"
    if len(name.encode()) <= 63:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    suffix = f"_{method}_{digest}_idx"
    head = f"{table}_{column}".encode()[: 63 - len(suffix)].decode(errors="ignore")
    return head + suffix
