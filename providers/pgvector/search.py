"""Search: ``query`` as a reader's ``ORDER BY <vector> <op> q LIMIT k``, and ``search_settings``.

The query is the one pgvector's documentation gives readers, so PostgreSQL picks the same plan
they get: the HNSW or IVFFlat index when its operator class matches the metric, with the
session's ``hnsw.ef_search`` / ``ivfflat.probes`` (database and role defaults apply to this
session as to theirs), or a sequential scan (exact) when there is none. Filters become a
``WHERE`` clause (``filtersql.py``); with an index PostgreSQL filters the candidates the index
returns, so a selective filter may return fewer than k rows, exactly as readers see it.

Distances are converted to :mod:`vecmig.search` similarities: cosine ``1 - d``, L2 ``-d``
(``<->`` is the plain distance), inner product ``-d`` (``<#>`` is the negated product).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.providers.pgvector.catalog import CatalogMixin
from vecmig.providers.pgvector.filtersql import where
from vecmig.providers.pgvector.sql import (
    METRIC_COMMENT_PREFIX,
    METRIC_OF_OPCLASS,
    VECTOR_INDEX_SQL,
    parse_reloptions,
)
from vecmig.search import Hit
from vecmig.spec import IndexSpec

OPERATOR = {"cosine": "<=>", "euclidean": "<->", "dotproduct": "<#>"}
# Query-time settings of pgvector that decide what an index search finds (0.8 adds the
# iterative scans; an older pgvector has no such setting and they are left out).
SETTINGS = ("hnsw.ef_search", "ivfflat.probes", "hnsw.iterative_scan", "ivfflat.iterative_scan",
            "hnsw.max_scan_tuples", "ivfflat.max_probes")
NEUTRAL = {"hnsw.ef_search": "ef_search", "ivfflat.probes": "probes"}  # the words every store's report uses


class SearchMixin(CatalogMixin):
    _search_index: tuple[dict[str, Any] | None, str | None] | None = None

    def _index_and_metric(self) -> tuple[dict[str, Any] | None, str | None]:
        """The vector index readers' queries use (of the table behind a view too) and the metric:
        the index's operator class, else vecmig's column comment. Looked up once per instance."""
        if self._search_index is not None:
            return self._search_index
        with self._tx() as cur:
            layout = self._require_layout(cur)
            rel = layout.relation
            base = rel if rel.is_table else self._view_base(cur, rel)
            comment = layout.vector.comment
            index: dict[str, Any] | None = None
            metric: str | None = None
            if base is not None:
                column = next((c for c in self._columns(cur, base.oid) if c.name == layout.vector.name), None)
                if column is not None:
                    comment = comment or column.comment
                    found = cur.execute(VECTOR_INDEX_SQL, (base.oid, column.attnum)).fetchone()
                    if found:
                        name, method, opclass, options = found
                        index = {"name": name, "type": method, "opclass": opclass,
                                 "params": parse_reloptions(options, method)}
                        metric = METRIC_OF_OPCLASS.get(opclass)
        if metric is None and comment and comment.startswith(METRIC_COMMENT_PREFIX):
            metric = comment[len(METRIC_COMMENT_PREFIX):].strip() or None
        self._search_index = (index, metric)
        return self._search_index

    def _search_metric(self) -> str:
        metric = self._index_and_metric()[1]
        if metric not in OPERATOR:
            layout = self._require_layout()
            table, column = layout.relation.name, layout.vector.name
            raise TerminalError(
                f"'{table}'.{column} has no vector index and no metric comment, so which distance readers "
                "search it by is unknown",
                hint=f"create the index readers use (CREATE INDEX ON {table} USING hnsw ({column} vector_cosine_ops)) "
                     f"or declare it: COMMENT ON COLUMN {table}.{column} IS '{METRIC_COMMENT_PREFIX}cosine'")
        return str(metric)

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        if k <= 0:
            return []
        metric = self._search_metric()
        q = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self._tx() as cur:
            rows = cur.execute(self.query_sql(k, flt), (q,)).fetchall()
        if metric == "cosine":  # a zero vector has no direction: NaN here, similar to nothing in vecmig.search
            return [Hit(rid, 0.0 if d != d else 1.0 - float(d)) for rid, d in rows]
        return [Hit(rid, -float(d)) for rid, d in rows]

    def query_sql(self, k: int, flt: Filter | None = None) -> sql.Composed:
        """The statement ``query`` runs (one parameter: the query vector), e.g. for EXPLAIN."""
        metric = self._search_metric()
        layout = self._require_layout()
        ident, _ = layout.id.read_expr("t")
        return sql.SQL("SELECT {id}, {vec} " + OPERATOR[metric] + " %s::vector AS distance FROM {rel} AS t "
                        "WHERE {where} ORDER BY distance LIMIT {k}").format(
            id=ident, vec=sql.Identifier("t", layout.vector.name), rel=sql.Identifier(layout.relation.name),
            where=where(layout, flt), k=sql.Literal(int(k)))

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        self._search_index = None  # a new index changes what readers' queries use
        return super().build_index(index, metric)

    def drop_index(self, name: str) -> None:
        self._search_index = None
        super().drop_index(name)

    def search_settings(self) -> dict[str, Any]:
        """One flat mapping in the store-neutral words the query-parity report reads: ``type``
        (hnsw, ivfflat, none), ``name``, ``opclass``, ``metric``, the build parameters (``m``,
        ``ef_construction`` / ``lists``), and this session's ``ef_search`` (``hnsw.ef_search``)
        and ``probes`` (``ivfflat.probes``) as PostgreSQL reports them: database and role
        defaults included. pgvector 0.8's iterative-scan settings keep their own names."""
        index, metric = self._index_and_metric()
        names = sql.SQL(", ").join(sql.SQL("current_setting({}, true)").format(sql.Literal(n)) for n in SETTINGS)
        with self._tx() as cur:
            # pgvector defines its settings when its library loads: a vector value loads it.
            cur.execute("SELECT '[1]'::vector IS NOT NULL")
            row = cur.execute(sql.SQL("SELECT {}").format(names)).fetchone()
        out: dict[str, Any] = {"type": "none", "metric": metric}
        if index is not None:
            out.update(type=index["type"], name=index["name"], opclass=index["opclass"], **index["params"])
        for name, value in zip(SETTINGS, row or (), strict=False):
            if value is not None:
                out[NEUTRAL.get(name, name)] = int(value) if value.lstrip("-").isdigit() else value
        return out
