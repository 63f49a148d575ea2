"""pgvector's query-time index settings: what the inventory reports, where vecmig keeps them.

``hnsw.ef_search`` and ``ivfflat.probes`` are session settings, not part of an index. vecmig
records the ones an index was built for on the index itself (``COMMENT ON INDEX ... IS
'vecmig: hnsw.ef_search=40'``) and every provider session applies them when it connects, so
each query vecmig runs (query parity) searches as planned. Other readers must set them
themselves: the plan says how (:func:`reader_settings`, finding VM148).

The inventory reports an index in vecmig.indexes' neutral shape: ``m``/``ef_construction``/
``ef_search`` or ``lists``/``probes``, the query-time one as recorded on the index, else as this
session sees it (a role or database default, else pgvector's own).
"""

from __future__ import annotations

from typing import Any

import psycopg

from vecmig.spec import IndexSpec

COMMENT_PREFIX = "vecmig: "
# index type -> (neutral name, PostgreSQL setting, pgvector's default)
SETTINGS: dict[str, tuple[str, str, int]] = {
    "hnsw": ("ef_search", "hnsw.ef_search", 40),
    "ivfflat": ("probes", "ivfflat.probes", 1),
}
_NAMES = {setting for _, setting, _ in SETTINGS.values()}

# The comments of the valid vector indexes on one table (regclass text), to apply at connect.
TABLE_INDEX_COMMENTS_SQL = """
SELECT obj_description(x.indexrelid, 'pg_class')
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
WHERE x.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat') AND x.indisvalid
ORDER BY am.amname = 'hnsw' DESC, i.relname
"""


def query_setting(index: IndexSpec) -> tuple[str, int] | None:
    """The session setting ``index`` asks for: ("hnsw.ef_search", 40); None: none asked."""
    if index.type == "hnsw" and index.ef_search is not None:
        return "hnsw.ef_search", int(index.ef_search)
    if index.type == "ivfflat" and index.probes is not None:
        return "ivfflat.probes", int(index.probes)
    return None


def comment_text(index: IndexSpec) -> str | None:
    found = query_setting(index)
    return f"{COMMENT_PREFIX}{found[0]}={found[1]}" if found else None


def parse_comment(text: str | None) -> dict[str, int]:
    """``'vecmig: hnsw.ef_search=40'`` → ``{"hnsw.ef_search": 40}``; anything else → {}.
    Only known settings with integer values: a comment is no channel for arbitrary SET."""
    if not text or not text.startswith(COMMENT_PREFIX):
        return {}
    out: dict[str, int] = {}
    for part in text[len(COMMENT_PREFIX):].split(","):
        name, _, value = part.strip().partition("=")
        if name in _NAMES and value.strip().isdigit():
            out[name] = int(value)
    return out


def session_value(cur: psycopg.Cursor[Any], setting: str, default: int) -> int:
    row = cur.execute("SELECT current_setting(%s, true)", (setting,)).fetchone()
    value = row[0] if row else None
    return int(value) if value is not None and str(value).strip().isdigit() else default


INDEX_COMMENT_SQL = """
SELECT obj_description(x.indexrelid, 'pg_class')
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s AND i.relname = %s
"""


def neutral(cur: psycopg.Cursor[Any], table_oid: int, index_name: str, method: str,
            params: dict[str, int]) -> dict[str, Any]:
    """The neutral keys of one index of table ``table_oid``: its build parameters and its
    query-time setting."""
    out: dict[str, Any] = dict(params)
    if method not in SETTINGS:
        return out
    key, setting, default = SETTINGS[method]
    row = cur.execute(INDEX_COMMENT_SQL, (table_oid, index_name)).fetchone()
    recorded = parse_comment(row[0] if row else None)
    out[key] = recorded.get(setting, session_value(cur, setting, default))
    return out


def record(cur: psycopg.Cursor[Any], index_ident: str, index: IndexSpec) -> None:
    """Keep ``index``'s query-time setting on the index and use it in this session now."""
    from psycopg import sql

    text = comment_text(index)
    if text is None:
        return
    cur.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(sql.SQL(index_ident), sql.Literal(text)))
    for name, value in parse_comment(text).items():
        cur.execute("SELECT set_config(%s, %s, false)", (name, str(value)))


def apply_recorded(cur: psycopg.Cursor[Any], table_ident: str) -> dict[str, int]:
    """SET in this session what the table's vector indexes record (at connect); returns it."""
    applied: dict[str, int] = {}
    for (text,) in cur.execute(TABLE_INDEX_COMMENTS_SQL, (table_ident,)).fetchall():
        for name, value in parse_comment(text).items():
            applied.setdefault(name, value)  # hnsw first, as the planner picks it
    for name, value in applied.items():
        cur.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
    return applied


def reader_settings(index: IndexSpec) -> str | None:
    found = query_setting(index)
    if found is None:
        return None
    name, value = found
    return (f"readers of the target search with {name} = {value} only if they set it: run `SET {name} = {value}` "
            f"in each session, or once `ALTER DATABASE <db> SET {name} = {value}` (or ALTER ROLE); vecmig's own "
            "sessions read it from the index's comment")
