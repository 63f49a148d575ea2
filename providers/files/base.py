"""The file target skeleton every format fills in, and how its writes stay safe.

A file target has to survive ``SIGKILL`` at any point and be resumed by an engine that
replays at most one unacknowledged batch, and a file cannot update a record in place. So
writes never touch the final file directly:

* ``upsert(batch)`` writes the batch to its own *part* in ``<path>.vecmig-parts/``
  (temporary name, fsync, ``os.replace``, fsync of the directory: the ack). A part's name
  is derived from the batch's id list only, so replaying the same batch replaces its own
  earlier part atomically instead of adding a second copy.
* Every part carries a *sequence number* taken from the wall clock (monotonic per
  instance, and never below the staging directory's mtime, so a clock stepped backwards
  cannot reorder a replay before the parts written before the crash). "Latest" means
  highest sequence; the name only breaks ties.
* ``delete(ids)`` writes a *tombstone* part (same naming and sequencing), and rewrites the
  final file at once so that a rollback is visible without another ``finalize``.
* ``finalize()`` merges, in sequence order, the existing final file (oldest), every part
  and every tombstone into a temporary sibling, keeping for each id only its last
  occurrence, then ``os.replace``-es it over the final file and retires the staging
  directory by renaming it away before deleting it. A crash before the replace leaves
  everything as it was; a crash after it re-runs a merge whose result is identical
  (the parts are re-applied over a file that already contains them).

De-duplication streams records; only the set of ids (plus the positions of ids that occur
more than once) is held in memory.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from vecmig import safe_paths
from vecmig.durable import atomic_write, remove_tmp_leftovers
from vecmig.errors import TerminalError
from vecmig.filters import Filter
from vecmig.model import Inventory
from vecmig.providers.base import CollectionSchema, LintFinding, Provider
from vecmig.providers.fidelity import Refusal, check_id, lint_records, refuse, refuse_sparse
from vecmig.providers.files import search
from vecmig.providers.files.fields import check_record_id, resolve_fields
from vecmig.providers.files.staging import Source, Staging, read_tombstone
from vecmig.records import Batch, RecordId
from vecmig.search import Hit
from vecmig.spec import StoreSpec

Keep = Callable[[int, int, RecordId], bool]


class FileProvider(Provider):
    """Target-side protocol common to all file formats; formats fill in the hooks."""

    part_suffix: ClassVar[str]
    needs_finalize: ClassVar[bool] = True
    positional_shards: ClassVar[bool] = True

    def __init__(self, store: StoreSpec) -> None:
        super().__init__(store)
        raw = store.connection.get("path")
        if not isinstance(raw, str) or not raw:
            raise TerminalError(
                f"{store.provider} needs connection.path",
                where=f"{store.pointer}/connection" if store.pointer else None,
                hint="set connection: {path: data/records." + store.provider + "} (relative to the spec file)",
            )
        self.raw_path = raw
        self.path = store.path(raw)
        self.fields = resolve_fields(store.fields)
        self.staging = Staging(self.path, self.part_suffix)
        self.check_paths()

    def check_paths(self) -> None:
        """The file must be a regular file (or absent) and its staging directories directories (or
        absent): checked when the provider is made (plan and apply refresh first) and again before
        anything is replaced or removed, so a device node or a FIFO is never opened, truncated,
        renamed over or unlinked."""
        where = f"{self.store.pointer}/connection/path" if self.store.pointer else None
        safe_paths.ensure_file(self.path, f"{self.store.provider} file", where=where, error=TerminalError,
                               hint="point connection.path at a regular file (or a path that does not exist yet); "
                                    + safe_paths.REGULAR_ONLY)
        for directory in (self.staging.dir, self.staging.done_dir):
            problem = safe_paths.dir_problem(directory)
            if problem is not None:
                raise TerminalError(
                    f"{self.store.provider} staging directory {directory} {problem}", where=where,
                    hint="vecmig keeps unmerged writes there: move that file away (or choose another connection.path)")

    def open_read(self, buffering: int = -1) -> IO[bytes]:
        """The file, opened for reading only if it is a regular file (never blocks on a FIFO)."""
        return safe_paths.open_read(self.path, f"{self.store.provider} file", buffering=buffering,
                                    error=TerminalError)

    # -- hooks ----------------------------------------------------------------------------
    @abstractmethod
    def _manifest_from_schema(self, schema: CollectionSchema) -> dict[str, Any]: ...

    @abstractmethod
    def _derive_manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        """A manifest when create_collection never ran: from the final file or the batch."""

    @abstractmethod
    def _write_empty(self, tmp: Path, manifest: dict[str, Any]) -> None: ...

    @abstractmethod
    def _write_part(self, tmp: Path, batch: Batch, seq: int, manifest: dict[str, Any]) -> None: ...

    @abstractmethod
    def _part_seq(self, path: Path) -> int: ...

    @abstractmethod
    def _part_ids(self, path: Path) -> list[RecordId]: ...

    @abstractmethod
    def _base_ids(self) -> Iterator[RecordId]:
        """Ids of the final file in file order, one per record (the merge's row numbers)."""

    @abstractmethod
    def _write_merged(
        self,
        tmp: Path,
        sources: list[Source],
        keep: Keep,
        duplicates: dict[RecordId, tuple[int, int]],
        manifest: dict[str, Any] | None,
    ) -> None: ...

    def _lint_slots(self, schema: CollectionSchema) -> tuple[dict[str, str] | None, str | None, str | None]:
        """(typed slots, document kind, id type) the sampled records will be written to."""
        return None, "json", None

    def lint(self, sample: Batch, schema: CollectionSchema) -> list[LintFinding]:
        """The write-time fidelity rules (:mod:`vecmig.providers.fidelity`) over the plan's sample."""
        slots, document, id_type = self._lint_slots(schema)
        texts = sample.texts if sample.texts is not None else [None] * len(sample)
        return lint_records(sample.ids, sample.metadata, texts, slots, document, False,
                            f"{self.name} ({self.raw_path})", id_type=id_type)

    # -- shared behaviour -----------------------------------------------------------------
    def _inventory(self, *, dim: int | None, count: int, id_type: str | None, types: dict[str, str],
                   has_text: bool, extra: dict[str, Any]) -> Inventory:
        """The inventory of a target that exists: what the format read (``extra`` holds the file's
        ``size`` when it exists), plus the staged writes not merged yet."""
        if self.staging.exists():
            entries = self.staging.entries()
            extra["pending_parts"] = len(entries)
            extra["pending_bytes"] = sum(p.stat().st_size for _, p in entries)
        return Inventory(
            has_text=has_text,
            provider=self.name,
            collection=self.store.collection or self.raw_path,
            exists=True,
            dimension=dim,
            metric=search.declared_metric(self.store),  # the file records none: what the spec declares
            count=count,
            count_exact=True,
            id_type=id_type,
            fields=types,
            bytes_per_record=(extra["size"] // count) if count else None,
            extra=extra,
        )

    def collection_exists(self) -> bool:
        return self.path.exists() or self.staging.exists()

    def query(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[Hit]:
        """Exact: the file scanned in batches (``files/search.py``), by the declared metric."""
        if not self.path.exists():
            raise self._missing()
        metric = search.file_metric(self.store, None, f"{self.name} file {self.path}")
        return search.exact_query(lambda: self.scan(None, None, search.BATCH), metric, vector, k, flt)

    def search_settings(self) -> dict[str, Any]:
        return search.settings(search.declared_metric(self.store))

    def _missing(self) -> TerminalError:
        return TerminalError(
            f"{self.path} does not exist",
            where=f"{self.store.pointer}/connection/path" if self.store.pointer else None,
            hint="check connection.path (relative paths are relative to the spec file)",
        )

    def create_collection(self, schema: CollectionSchema) -> None:
        """Create an empty file, truncating any earlier one and its unmerged parts.

        The executor runs this before any copy shard, and never again once one started,
        so truncating cannot lose acknowledged data of this migration.
        """
        self.check_paths()
        self.drop_collection()
        manifest = self._manifest_from_schema(schema)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.staging.write_manifest(manifest)
        atomic_write(self.path, lambda tmp: self._write_empty(tmp, manifest))

    def drop_collection(self) -> None:
        self.check_paths()
        self.staging.remove()
        self.path.unlink(missing_ok=True)
        if self.path.parent.exists():
            remove_tmp_leftovers(self.path)

    def _manifest(self, batch_dim: int, sample: Batch) -> dict[str, Any]:
        manifest = self.staging.read_manifest()
        if manifest is None:
            manifest = self._derive_manifest(batch_dim, sample)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.staging.write_manifest(manifest)
        dim = manifest.get("dimension")
        if dim is not None and dim != batch_dim:
            raise TerminalError(
                f"{self.path}: batch has {batch_dim}-dimensional vectors, the file holds {dim}",
                hint="re-create the target (its dimension is fixed at creation) or fix the mapping",
            )
        return manifest

    def _check_ids(self, ids: Sequence[RecordId]) -> None:
        for rid in ids:
            why = check_record_id(rid)
            if why:
                raise TerminalError(f"{self.path}: record id {why}", hint="ids must be integers or strings")
            bad = check_id(rid, "text", pg=False) if type(rid) is str else None
            if bad is not None:
                raise refuse(str(self.path), rid, None, Refusal(bad.code, f"id {bad.why}"))

    def upsert(self, batch: Batch) -> None:
        """Durable once this returns; replaying the same batch is harmless (see module doc)."""
        if not len(batch):
            return
        if not type(self).capabilities.sparse:
            refuse_sparse(batch, self.name)  # a format without them would drop them silently
        self._check_ids(batch.ids)
        vectors = np.asarray(batch.vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch.ids):
            raise TerminalError(f"{self.path}: batch vectors have shape {vectors.shape} for {len(batch)} ids")
        manifest = self._manifest(int(vectors.shape[1]), batch)
        seq = self.staging.next_seq()
        dest = self.staging.part_path(batch.ids)
        atomic_write(dest, lambda tmp: self._write_part(tmp, batch, seq, manifest))

    def delete(self, ids: Sequence[RecordId]) -> None:
        """Tombstones pending parts and rewrites the final file now (O(file): rollback only)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return
        if self.staging.exists():
            self.staging.write_tombstone(wanted)
        if self.path.exists():
            self._merge([Source("base", self.path, -1)], extra_deletes=wanted, only_if_changed=True)

    def finalize(self) -> None:
        """Merge the parts into the final file (idempotent; a no-op when nothing is staged)."""
        if not self.staging.exists():
            return
        self.check_paths()
        sources: list[Source] = []
        if self.path.exists():
            sources.append(Source("base", self.path, -1))
        staged: list[tuple[int, str, Source]] = []
        for kind, path in self.staging.entries():
            seq = read_tombstone(path)[0] if kind == "tomb" else self._part_seq(path)
            staged.append((seq, path.name, Source(kind, path, seq)))
        sources.extend(src for _, _, src in sorted(staged, key=lambda t: (t[0], t[1])))
        self._merge(sources)
        self.staging.retire()
        remove_tmp_leftovers(self.path)

    def _merge(
        self, sources: list[Source], extra_deletes: Sequence[RecordId] = (), only_if_changed: bool = False
    ) -> None:
        # Pass 1 (ids only): the position of the last occurrence of every id seen twice.
        seen: set[RecordId] = set()
        duplicates: dict[RecordId, tuple[int, int]] = {}

        def note(si: int, ids: Iterator[RecordId] | list[RecordId], tomb: bool) -> None:
            for row, rid in enumerate(ids):
                if rid in seen:
                    duplicates[rid] = (si, -1 if tomb else row)
                else:
                    seen.add(rid)

        for si, src in enumerate(sources):
            if src.kind == "base":
                note(si, self._base_ids(), False)
            elif src.kind == "part":
                note(si, self._part_ids(src.path), False)
            else:
                note(si, read_tombstone(src.path)[1], True)
        if extra_deletes:
            note(len(sources), list(extra_deletes), True)
        seen.clear()
        if only_if_changed and not duplicates:
            return

        def keep(si: int, row: int, rid: RecordId) -> bool:
            last = duplicates.get(rid)
            return last is None or last == (si, row)

        manifest = self.staging.read_manifest()
        # Pass 2: stream every record that is the last occurrence of its id.
        atomic_write(self.path, lambda tmp: self._write_merged(tmp, sources, keep, duplicates, manifest))
