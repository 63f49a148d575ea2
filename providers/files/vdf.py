"""vector-io's VDF: a directory with ``VDF_META.json`` and Parquet files per index and namespace.

``connection: {path: DIR}``, ``collection: <index>``, ``namespace: <name>`` (optional: the
index's only namespace, or its default ""). The meta and its rules: :mod:`.vdfmeta`.

Reading: each Parquet file of the namespace is read by the Parquet provider (one id column,
the first vector column, every other column metadata); shards are the files' own shards plus
the file, cursors are row numbers within the file. Writing: one file,
``DIR/<index>[_<namespace>]/1.parquet`` (vdf-io's own layout), with one typed column per
metadata key, so vdf-io's importers see plain columns; staged writes wait in ``DIR/.vecmig/``,
outside every data folder, and the meta's entry is rewritten after each merge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vecmig import safe_paths
from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import Capabilities, CollectionSchema, LintFinding, Provider
from vecmig.providers.files import search, vdfmeta
from vecmig.providers.files.fields import combine_kinds
from vecmig.providers.files.parquet import Layout, ParquetProvider, _concat, _schema_to_text, build_schema
from vecmig.providers.files.parquet import model as parquet_model
from vecmig.providers.files.staging import Staging
from vecmig.records import Batch, RecordId
from vecmig.search import Hit
from vecmig.spec import Fields, StoreSpec

DATA_FILE = "1.parquet"  # vdf-io's exporters number their files from 1


class _ExactLayout(Layout):
    """vdf-io's exporters write vectors as pandas makes them: lists of float64. vecmig keeps
    float32, so a vector whose values float32 cannot hold exactly is refused, naming the row,
    instead of being rounded (values that came from a float32 store convert back exactly)."""

    def _checked(self, rb: pa.RecordBatch, first_row: int, dim: int) -> tuple[pa.Array, np.ndarray]:
        id_col, vectors = super()._checked(rb, first_row, dim)
        if not pa.types.is_float32(self.schema.field(self.vector).type.value_type):
            wide = np.asarray(rb.column(self.vector).flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
            differ = (vectors.astype(np.float64) != wide.reshape(vectors.shape)).any(axis=1)
            if differ.any():
                row = first_row + int(np.flatnonzero(differ)[0])
                raise TerminalError(
                    f"vector '{self.vector}' holds {self.schema.field(self.vector).type.value_type} values that "
                    "float32 cannot hold exactly (vecmig keeps vectors as float32 and would round them)",
                    where=f"{self.path}: row {row}",
                    hint="cast the vector column to float32 in the source if rounding is acceptable")
        return id_col, vectors


class _VdfParquet(ParquetProvider):
    """One Parquet file of a VDF namespace; writes one typed column per metadata key."""

    name = "vdf"

    def _layout(self, pf: pq.ParquetFile) -> Layout:
        return _ExactLayout(self.fields, pf.schema_arrow, self.path)

    def _typed(self, schema: CollectionSchema) -> dict[str, Any]:
        keys = tuple(sorted(schema.metadata))
        clash = [k for k in keys if k in self.fields.reserved or k == "metadata"]
        if clash:
            raise TerminalError(
                f"{self.path}: metadata key(s) {', '.join(map(repr, clash))} would share a column with the id, vector "
                "or text (or read back as one JSON column)",
                hint="rename them (mapping.metadata.rename) or drop them (mapping.metadata.drop)")
        fields = dataclasses.replace(self.fields, metadata=keys, loose=False)
        arrow = build_schema(fields, schema.dimension, schema.id_type, schema.metadata)
        return {"format": "vdf", "dimension": schema.dimension, "id_type": schema.id_type,
                "metadata": dict(sorted(schema.metadata.items())), "text": schema.text,
                "arrow_schema": _schema_to_text(arrow)}

    def _manifest_from_schema(self, schema: CollectionSchema) -> dict[str, Any]:
        return self._typed(schema)

    def _derive_manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        if self.path.exists():
            return super()._derive_manifest(batch_dim, sample)
        manifest = super()._derive_manifest(batch_dim, sample)  # infers the sample's types
        schema = CollectionSchema(dimension=batch_dim, metric="", id_type=manifest["id_type"],
                                  metadata=manifest["metadata"])
        return self._typed(schema)

    def _lint_slots(self, schema: CollectionSchema) -> tuple[dict[str, str] | None, str | None, str | None]:
        return dict(schema.metadata), None, schema.id_type


class VdfProvider(Provider):
    name = "vdf"
    capabilities = Capabilities(
        create_collection=True, aliases=False, namespaces=False, sparse=False, server_side_count=False,
        ordered_scan=True, metadata="typed", metadata_default="typed",
        search="exact", search_filters=True,  # every record scored (files/search.py)
    )
    throughput = parquet_model(384)
    needs_finalize = True
    positional_shards = True

    @classmethod
    def throughput_for(cls, inventory: Inventory, concurrency: int, store: StoreSpec | None = None) -> Any:
        return parquet_model(int(inventory.dimension or 384))

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        raw = store.connection.get("path")
        where = f"{store.pointer}/connection/path" if store.pointer else None
        if not isinstance(raw, str) or not raw:
            raise TerminalError("vdf needs connection.path", where=where,
                                hint="set connection: {path: <VDF directory>}")
        if not store.collection:
            raise TerminalError("vdf needs a collection: the index name inside the VDF directory",
                                where=store.pointer or None, hint="add `collection: <index>`")
        if store.namespace == "*":
            raise TerminalError("vdf reads and writes one namespace at a time, not '*'",
                                where=f"{store.pointer}/namespace" if store.pointer else None,
                                hint="name the namespace (one migration per namespace)")
        self.dir = store.path(raw)
        problem = safe_paths.dir_problem(self.dir)
        if problem is not None:
            raise TerminalError(f"VDF directory {self.dir} {problem}", where=where,
                                hint="point connection.path at the directory that holds VDF_META.json")
        self.index = store.collection
        self.namespace = store.namespace
        self._files: dict[Path, _VdfParquet] = {}

    # ---- the meta and the files ---------------------------------------------------------------

    def _meta(self) -> dict[str, Any] | None:
        return vdfmeta.read(self.dir)

    def _entry(self, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        return vdfmeta.find(meta, self.index, self.namespace)

    def _id_column(self, meta: dict[str, Any] | None) -> str:
        return str((meta or {}).get("id_column") or self.store.fields.id or vdfmeta.DEFAULT_ID)

    def _file(self, path: Path, meta: dict[str, Any] | None, vector: str) -> _VdfParquet:
        inner = self._files.get(path)
        if inner is None:
            fields = Fields(id=self._id_column(meta), vector=vector, text=self.store.fields.text,
                            metadata=self.store.fields.metadata)
            spec = dataclasses.replace(self.store, connection={"path": str(path)}, fields=fields)
            inner = self._files[path] = _VdfParquet(spec)
        return inner

    def _sources(self) -> list[_VdfParquet]:
        meta = self._meta()
        entry = self._entry(meta)
        if entry is None:
            return []
        vector = self._vector_column(entry)
        return [self._file(p, meta, vector) for p in vdfmeta.parquet_files(vdfmeta.data_dir(self.dir, entry))]

    def _vector_column(self, entry: dict[str, Any] | None) -> str:
        """The entry's vector column: the one ``fields.vector`` names (never ignored: one the
        entry lacks is refused), else its first; a new entry's is ``fields.vector`` or "vector".
        The spec's default name ("embedding") cannot be told from one written out: it means
        "not named"."""
        wanted = self.store.fields.vector if self.store.fields.vector != Fields.vector else None
        if entry is None:
            return wanted or "vector"
        columns = [str(c) for c in entry.get("vector_columns") or ["vector"]]
        if wanted is not None and wanted not in columns:
            raise TerminalError(
                f"VDF index '{self.index}' namespace {entry.get('namespace', '')!r} has no vector column '{wanted}' "
                f"(fields.vector); its vector_columns are {', '.join(columns)}",
                where=str(self.dir / vdfmeta.META),
                hint="set fields.vector to one of them, or remove it")
        return wanted or columns[0]

    def _target_namespace(self) -> str:
        return self.namespace or ""

    def _staging_dir(self, data_path: str) -> Path:
        return self.dir / vdfmeta.STAGING / (data_path.replace("/", "_") + ".vecmig-parts")

    def _target(self) -> _VdfParquet:
        """The one file vecmig writes this namespace to."""
        meta = self._meta()
        entry = vdfmeta.find(meta, self.index, self._target_namespace())
        ns = self._target_namespace()
        rel = entry["data_path"] if entry else self.index + (f"_{ns}" if ns else "")
        vector = self._vector_column(entry)
        path = self.dir / rel / DATA_FILE
        if entry is not None:
            files = vdfmeta.parquet_files(vdfmeta.data_dir(self.dir, entry))
            if len(files) > 1:
                raise TerminalError(
                    f"VDF index '{self.index}' namespace {ns!r} holds {len(files)} Parquet files; vecmig writes into "
                    "one", hint="let the plan re-create the target (target.create), or use another index name")
            path = files[0] if files else path
        inner = self._file(path, meta, vector)
        staging = self._staging_dir(rel)
        if inner.staging.dir != staging:
            inner.staging = Staging(inner.path, inner.part_suffix, where=staging)
        return inner

    # ---- reading ------------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        meta = self._meta()
        entry = self._entry(meta)
        if entry is None:
            target = self._target() if meta is None or self.index not in meta["indexes"] else None
            if target is not None and target.staging.exists():
                return target.inventory()
            return Inventory(provider=self.name, collection=self.index, exists=False)
        sources = self._sources()
        invs = [s.inventory() for s in sources]
        count = sum(int(i.count or 0) for i in invs)
        kinds: dict[str, set[str]] = {}
        for inv in invs:
            for key, kind in inv.fields.items():
                kinds.setdefault(key, set()).add(kind)
        id_types = {i.id_type for i in invs if i.id_type and i.count}
        size = sum(int(i.extra.get("size", 0)) for i in invs)
        extra: dict[str, Any] = {"size": size, "files": len(invs)}
        if len(id_types) > 1:
            extra["mixed_id_types"] = True
        staging = self._staging_dir(entry["data_path"])
        if staging.is_dir():  # a target being written: its parts wait there
            extra["pending_parts"] = sum(1 for _ in staging.iterdir())
        return Inventory(
            provider=self.name, collection=self.index, exists=True,
            dimension=int(entry["dimensions"]) if entry["dimensions"] > 0 else next(
                (i.dimension for i in invs if i.dimension), None),
            metric=vdfmeta.FROM_VDF.get(str(entry.get("metric"))), count=count, count_exact=True,
            id_type=("int" if id_types == {"int"} else "text") if id_types else None,
            fields={k: combine_kinds(v) for k, v in sorted(kinds.items())},
            bytes_per_record=size // count if count else None, has_text=any(i.has_text for i in invs),
            namespace=entry["namespace"], extra=extra,
        )

    def shards(self, inventory: Inventory, shard_size: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for source in self._sources():
            rel = str(source.path.relative_to(self.dir))
            out.extend({**s, "file": rel} for s in source.shards(source.inventory(), shard_size))
        return out

    def _source(self, rel: str) -> _VdfParquet:
        for source in self._sources():
            if str(source.path.relative_to(self.dir)) == rel:
                return source
        raise TerminalError(f"VDF index '{self.index}' no longer holds {rel}",
                            hint="the directory changed since the plan; plan again")

    def scan(self, shard: dict[str, Any] | None, cursor: Any, batch_size: int) -> Iterator[Batch]:
        if shard is not None:
            yield from self._source(str(shard["file"])).scan(shard, cursor, batch_size)
            return
        # The whole namespace: cursor = [file number, row in that file].
        first, row = (int(cursor[0]), int(cursor[1])) if cursor is not None else (0, None)
        for i, source in enumerate(self._sources()):
            if i < first:
                continue
            for batch in source.scan(None, row if i == first else None, batch_size):
                batch.cursor = [i, batch.cursor]
                yield batch

    def fetch(self, ids: Sequence[RecordId]) -> Batch:
        wanted = list(dict.fromkeys(ids))
        found: list[Batch] = []
        dim = 0
        for source in self._sources():
            if not wanted:
                break
            batch = source.fetch(wanted)
            if len(batch):
                dim = int(batch.vectors.shape[1])
                found.append(batch)
                got = set(batch.ids)
                wanted = [i for i in wanted if i not in got]
        return _concat(found, dim)

    def count(self) -> int:
        return sum(s.count() for s in self._sources())

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """Exact: every file of the index scanned in batches (``files/search.py``), by the metric
        VDF_META.json records (else ``connection.metric``)."""
        if self._entry(self._meta()) is None:
            raise TerminalError(f"VDF index '{self.index}' does not exist in {self.dir}",
                                hint="check collection and connection.path")
        metric = search.file_metric(self.store, self._metric(), f"VDF index '{self.index}'")
        return search.exact_query(lambda: self.scan(None, None, search.BATCH), metric, vector, k, flt)

    def search_settings(self) -> dict[str, Any]:
        return search.settings(self._metric() or search.declared_metric(self.store))

    def id_positions(self) -> Iterator[tuple[RecordId, int]]:
        base = 0
        for source in self._sources():
            n = 0
            for rid, row in source.id_positions():
                yield rid, base + row
                n = row + 1
            base += n

    def describe_positions(self, positions: list[int]) -> dict[int, str]:
        bounds: list[tuple[int, Path]] = []
        base = 0
        for source in self._sources():
            bounds.append((base, source.path))
            base += source.count()
        out = {}
        for p in positions:
            start, path = max((b for b in bounds if b[0] <= p), default=(0, self.dir), key=lambda b: b[0])
            out[p] = f"{path} row {p - start}"
        return out

    # ---- writing ------------------------------------------------------------------------------

    def collection_exists(self) -> bool:
        return vdfmeta.find(self._meta(), self.index, self._target_namespace()) is not None \
            or self._target().staging.exists()

    def create_collection(self, schema: CollectionSchema) -> None:
        self.drop_collection()
        target = self._target()
        target.create_collection(schema)
        self._write_meta(target, schema.metric)

    def drop_collection(self) -> None:
        meta = self._meta()
        ns = self._target_namespace()
        entry = vdfmeta.find(meta, self.index, ns)
        target = self._target()
        target.drop_collection()
        if entry is not None:
            folder = vdfmeta.data_dir(self.dir, entry)
            for path in vdfmeta.parquet_files(folder):
                path.unlink(missing_ok=True)
            if folder != self.dir.resolve() and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        data = target.path.parent
        if data.is_dir() and data != self.dir and not any(data.iterdir()):
            data.rmdir()
        self._tidy()
        if meta is not None:
            vdfmeta.write(self.dir, meta, self.index, ns, None, self._id_column(meta))
        self._files.clear()

    def _tidy(self) -> None:
        """The staging root goes once nothing waits in it (vdf-io users see only their data)."""
        root = self.dir / vdfmeta.STAGING
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()

    def _write_meta(self, target: _VdfParquet, metric: str | None) -> None:
        meta = self._meta()
        inv = target.inventory()
        schema = target._open().schema_arrow if target.path.exists() else None
        entry = vdfmeta.entry(
            self.index, self._target_namespace(), count=int(inv.count or 0), dimension=int(inv.dimension or 0),
            vector=target.fields.vector_out, data_path=str(target.path.parent.relative_to(self.dir)),
            metric=metric, schema=schema.to_string() if schema is not None else None)
        vdfmeta.write(self.dir, meta, self.index, self._target_namespace(), entry, target.fields.id)

    def _metric(self) -> str | None:
        entry = vdfmeta.find(self._meta(), self.index, self._target_namespace())
        return vdfmeta.FROM_VDF.get(str(entry.get("metric"))) if entry else None

    def upsert(self, batch: Batch) -> None:
        self._target().upsert(batch)

    def delete(self, ids: Sequence[RecordId]) -> None:
        target = self._target()
        target.delete(ids)
        if target.path.exists():
            self._write_meta(target, self._metric())

    def finalize(self) -> None:
        target = self._target()
        metric = self._metric()
        target.finalize()
        if target.path.exists():
            self._write_meta(target, metric)
        self._tidy()

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        return self._target().lint(sample, schema)

    def estimate_schema(self) -> CollectionSchema | None:
        return None
