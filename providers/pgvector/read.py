"""Reading: shards, ``scan``, ``fetch``, ``count``, the id checks of a source, and rows decoded
into a ``Batch``.

Reading is keyset pagination on the id column (``WHERE id > cursor ORDER BY id LIMIT n``),
each page its own short transaction fetched with a binary ``COPY (SELECT ...) TO STDOUT``
so no snapshot is held across batches and vectors arrive as raw big-endian float32.

Measured on this 2-core machine (PostgreSQL 16 from pgserver on a unix socket, 100k rows x
384 dims + 7 metadata columns, batches of 1000, one worker, load from other work present):

* scan into ``Batch``: binary ``COPY (SELECT ...) TO STDOUT`` pages 125-150k records/s warm
  (~72k on the first pass after a bulk load, which sets hint bits); a binary cursor with
  the same decoding 95-115k records/s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from psycopg import sql

from vecmig.errors import TerminalError
from vecmig.ids import IdReport, canonical_int_text, id_kind, show_id
from vecmig.model import Inventory
from vecmig.providers.pgvector.catalog import CatalogMixin
from vecmig.providers.pgvector.codec import decode_vectors
from vecmig.providers.pgvector.sql import Layout
from vecmig.records import Batch, RecordId


class ReadMixin(CatalogMixin):
    # ---- reading --------------------------------------------------------------------------

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

    def id_literal(self, layout: Layout, value: Any) -> sql.Composable:
        """``value`` as the SQL literal scan's page bounds use, cast to the id type (``PgSession``)."""
        return self._literal(layout, value)

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
