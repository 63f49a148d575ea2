"""Machinery shared by the file providers.

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

import base64
import datetime as _dt
import decimal
import functools
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np

from vecmig import safe_paths
from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema, LintFinding, Provider
from vecmig.providers.fidelity import Refusal, check_id, lint_records, refuse
from vecmig.records import Batch, RecordId, canonical_id
from vecmig.spec import Fields, StoreSpec

_SPEC_DEFAULT_FIELDS = Fields()
LOGICAL_TYPES = ("text", "int", "float", "bool", "text[]", "json")
TYPE_SAMPLE = 1000  # records read by inventory() to infer metadata types


# ---- field names ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFields:
    """Where id, vector, text and metadata live in a record or a row.

    ``vector`` is a preference list: the first name is the one written. ``loose`` is true
    when the spec gave no ``fields.metadata``; then keys/columns claimed by no other role
    are metadata too, so a foreign file with top-level ``title`` keeps it.
    """

    id: str
    vector: tuple[str, ...]
    text: str
    metadata: str | tuple[str, ...]
    loose: bool

    @property
    def vector_out(self) -> str:
        return self.vector[0]

    @functools.cached_property
    def reserved(self) -> frozenset[str]:  # cached: asked once per key of every JSONL record
        names = {self.id, self.text, "sparse", *self.vector}
        if isinstance(self.metadata, str):
            names.add(self.metadata)
        return frozenset(names)


def resolve_fields(fields: Fields) -> FileFields:
    """File defaults: id "id", vector "vector", text "text", metadata "metadata" (an object).

    ``Fields.vector`` defaults to "embedding" (pgvector's habit), and a spec that omits it
    cannot be told from one that spells it out; so that default reads "vector" first and
    falls back to "embedding", and writes "vector".
    """
    if fields.vector == _SPEC_DEFAULT_FIELDS.vector:
        vector: tuple[str, ...] = ("vector", "embedding")
    else:
        vector = (fields.vector,)
    meta = fields.metadata  # the spec loader already made a listed metadata a tuple
    return FileFields(
        id=fields.id or "id",
        vector=vector,
        text=fields.text or "text",
        metadata=meta if meta is not None else "metadata",
        loose=meta is None,
    )


# ---- metadata types -------------------------------------------------------------------------


def value_kind(value: Any) -> str | None:
    """Logical type of one value; None for values that say nothing (null, empty list)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        if not value:
            return None
        return "text[]" if all(isinstance(v, str) for v in value) else "json"
    return "json"


class TypeSampler:
    """Infers one logical type per metadata key from a sample of records."""

    def __init__(self) -> None:
        self._kinds: dict[str, set[str]] = {}

    def add(self, metadata: Mapping[str, Any]) -> None:
        for key, value in metadata.items():
            kinds = self._kinds.setdefault(key, set())
            kind = value_kind(value)
            if kind is not None:
                kinds.add(kind)
            elif isinstance(value, list | tuple):
                kinds.add("[]")  # an empty list fits text[] or a document, never a scalar column

    def types(self) -> dict[str, str]:
        return {key: combine_kinds(self._kinds[key]) for key in sorted(self._kinds)}


def combine_kinds(kinds: set[str]) -> str:
    if "[]" in kinds:
        kinds = kinds - {"[]"}
        return "text[]" if kinds == {"text[]"} else "json"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds == {"int", "float"}:
        return "float"
    return "json"  # nothing seen, or a mixture only a document can hold


def dict_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per-record dicts as one list per field (None where a record lacks it), for writers
    that encode columns; a field no record has does not appear."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for what other stores hand us inside metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


try:  # an optional accelerator (pinecone's SDK brings it): parsed values are identical
    import orjson as _orjson

    _HAVE_ORJSON = True
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_ORJSON = False


# orjson parses integers outside [-2**63, 2**64) as floats (18446744073709551616 becomes
# 1.8446744073709552e+19) instead of refusing them. A float that large in what orjson
# returned may therefore have been an integer in the text: such documents are parsed again
# by stdlib json, which keeps every integer exact. A regular expression over the raw bytes
# cost 2-8x the parse itself on digit-heavy lines; the checks below cost a few percent, and
# a float that really was written that large only costs a second parse.
_MAYBE_INT = float(2**63)


def _maybe_big_int(values: Iterable[Any]) -> bool:
    """Any float beyond +-2**63 among ``values``, nested or not (plain loops: 2x ``any(map())``)."""
    for value in values:
        t = type(value)
        if t is float:
            if value >= _MAYBE_INT or value <= -_MAYBE_INT:
                return True
        elif t is dict:
            if _maybe_big_int(value.values()):
                return True
        elif t is list and _maybe_big_int(value):
            return True
    return False


def loads(data: bytes | str, skip: frozenset[str] | tuple[str, ...] = ()) -> Any:
    """Parse one JSON document exactly; stdlib json has the last word on anything orjson
    refuses or would change (NaN literals, integers beyond 64 bits) and words the errors.

    ``skip``: top-level keys whose numbers need not be exact (a JSONL record's float32
    vector), left out of the look for integers orjson turned into floats.
    """
    if _HAVE_ORJSON:
        try:
            doc = _orjson.loads(data)
        except ValueError:
            return json.loads(data)
        if type(doc) is dict:
            suspect = _maybe_big_int(v for k, v in doc.items() if k not in skip) if skip else \
                _maybe_big_int(doc.values())
        else:
            suspect = _maybe_big_int((doc,))
        if not suspect:
            return doc
    return json.loads(data)


def float32_for_json(vectors: np.ndarray) -> np.ndarray:
    """float64 copies of float32 values whose repr is the short decimal of the float32.

    ``repr(float(np.float32(0.1)))`` is ``0.10000000149011612``; the double nearest to
    ``0.1`` converts back to the same float32 and prints as ``0.1``. Files get ~40% smaller
    and faster to parse. Each candidate (6 to 9 significant digits, the most a float32
    needs) is checked bit for bit; whatever fails keeps the exact widened value.
    """
    v32 = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    v64 = v32.astype(np.float64)
    out = v64.copy()
    bits = v32.view(np.uint32)
    with np.errstate(all="ignore"):
        exp = np.floor(np.log10(np.abs(v64)))
        exp[~np.isfinite(exp)] = 0
        exp_i = exp.astype(np.int64)
        todo = np.flatnonzero(np.isfinite(v64))
        for digits in (6, 7, 8, 9):
            if not todo.size:
                break
            x = v64[todo]
            m = digits - 1 - exp_i[todo]
            scale = 10.0 ** np.abs(m)  # exact up to 1e22, so the division below rounds once
            up = m >= 0
            y = np.where(up, np.round(x * scale) / scale, np.round(x / scale) * scale)
            good = (np.abs(m) <= 22) & (y.astype(np.float32).view(np.uint32) == bits[todo])
            out[todo[good]] = y[good]
            todo = todo[~good]
    return out.reshape(np.shape(vectors))


def dumps(obj: Any) -> str:
    # allow_nan=False: NaN is not JSON, and no vector store accepts it either.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=json_default)


def check_record_id(value: Any) -> str | None:
    """Why ``value`` cannot be an id, or None when it can (bool is an int to Python only)."""
    if value is None:
        return "is missing"
    if isinstance(value, bool) or not isinstance(value, int | str):
        return f"must be an integer or a string, not {type(value).__name__} {value!r}"
    if isinstance(value, str) and not value:
        return "is an empty string"
    return None


# ---- durable files --------------------------------------------------------------------------


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (Linux flushes the inode whatever the fd mode)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_sibling(dest: Path) -> Path:
    """A unique temporary name beside ``dest`` (same filesystem, so ``os.replace`` is atomic)."""
    tag = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    return dest.with_name(f".{dest.name}.{tag}.vecmig-tmp")


def atomic_write(dest: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then make it durable under ``dest``: readers see old or new, never half."""
    tmp = tmp_sibling(dest)
    try:
        write(tmp)
        fsync_path(tmp)
        # The last moment before the rename: never put a file in the place of a device or a FIFO.
        safe_paths.ensure_file(dest, "file", error=TerminalError)
        os.replace(tmp, dest)
        fsync_path(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_tmp_leftovers(dest: Path) -> None:
    """Temporaries of writers killed mid-write (their unique names are never reused)."""
    for leftover in dest.parent.glob(f".{dest.name}.*.vecmig-tmp"):
        leftover.unlink(missing_ok=True)


# ---- the staging area -----------------------------------------------------------------------

PartKind = Literal["base", "part", "tomb"]
TOMB_SUFFIX = ".del.json"


@dataclass(frozen=True)
class Source:
    """One input of a merge, in order: the existing final file, parts, tombstones."""

    kind: PartKind
    path: Path
    seq: int


class Staging:
    """``<path>.vecmig-parts/``: manifest.json plus one file per acknowledged write."""

    def __init__(self, final: Path, part_suffix: str) -> None:
        self.final = final
        self.dir = final.with_name(final.name + ".vecmig-parts")
        self.done_dir = self.dir.with_name(self.dir.name + ".done")
        self.manifest_path = self.dir / "manifest.json"
        self.part_suffix = part_suffix
        self._last_seq = 0

    def exists(self) -> bool:
        return self.dir.is_dir()

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.manifest_path.read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
            fsync_path(self.dir.parent)  # the directory entry itself must survive a power cut
        blob = json.dumps(manifest, sort_keys=True, indent=1).encode()
        atomic_write(self.manifest_path, lambda tmp: tmp.write_bytes(blob))

    def next_seq(self) -> int:
        if not self._last_seq:
            try:
                self._last_seq = os.stat(self.dir).st_mtime_ns + 1
            except FileNotFoundError:
                self._last_seq = 1
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq

    def part_path(self, ids: Sequence[RecordId], tomb: bool = False) -> Path:
        """Named by the id list alone: a replayed batch lands on its own earlier part.

        Two writes with the same id list are interchangeable as far as "last write wins"
        goes (the later one overrides every id of the earlier), so replacing is safe even
        when the values changed.
        """
        h = hashlib.blake2b(digest_size=16)
        for rid in ids:
            h.update(canonical_id(rid))
            h.update(b"\x00")
        suffix = TOMB_SUFFIX if tomb else self.part_suffix
        return self.dir / f"{h.hexdigest()}-{len(ids)}{suffix}"

    def write_tombstone(self, ids: Sequence[RecordId]) -> None:
        blob = json.dumps({"seq": self.next_seq(), "ids": list(ids)}, ensure_ascii=False).encode()
        atomic_write(self.part_path(ids, tomb=True), lambda tmp: tmp.write_bytes(blob))

    def entries(self) -> list[tuple[PartKind, Path]]:
        out: list[tuple[PartKind, Path]] = []
        for entry in sorted(os.scandir(self.dir), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue  # a temporary of a killed writer: never acknowledged
            if entry.name.endswith(TOMB_SUFFIX):
                out.append(("tomb", Path(entry.path)))
            elif entry.name.endswith(self.part_suffix):
                out.append(("part", Path(entry.path)))
        return out

    def retire(self) -> None:
        """Remove the staging directory; the rename makes "merged" an atomic fact."""
        done = self.dir.with_name(self.dir.name + ".done")
        if done.exists():
            shutil.rmtree(done)
        if self.dir.exists():
            os.replace(self.dir, done)
            fsync_path(self.dir.parent)
        shutil.rmtree(done, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.dir.with_name(self.dir.name + ".done"), ignore_errors=True)


def read_tombstone(path: Path) -> tuple[int, list[RecordId]]:
    doc = json.loads(path.read_bytes())
    return int(doc["seq"]), list(doc["ids"])


# ---- the provider skeleton ------------------------------------------------------------------


Keep = Callable[[int, int, RecordId], bool]


class FileProvider(Provider):
    """Target-side protocol common to all file formats; formats fill in the hooks."""

    part_suffix: ClassVar[str]
    needs_finalize: ClassVar[bool] = True

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
    def collection_exists(self) -> bool:
        return self.path.exists() or self.staging.exists()

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


# ---- random access for fetch() ----------------------------------------------------------------


def file_stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class IdIndex:
    """``hash(id)`` -> position (byte offset or row number), sorted for binary search.

    Validation fetches every source batch from the target, so a scan per ``fetch`` would
    make it quadratic; one pass builds this instead, 16 bytes per record whatever the id
    type. Hashes may collide (and ``hash(-1) == hash(-2)``): callers read the candidate
    records and keep those whose id really matches.
    """

    def __init__(self, stamp: tuple[int, int, int], keys: array[int], positions: array[int]) -> None:
        self.stamp = stamp
        k = np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, np.int64)
        p = np.frombuffer(positions, dtype=np.int64) if len(positions) else np.zeros(0, np.int64)
        order = np.argsort(k, kind="stable")
        self.keys, self.positions = k[order], p[order]

    @classmethod
    def build(cls, stamp: tuple[int, int, int], pairs: Iterator[tuple[RecordId, int]]) -> IdIndex:
        keys, positions = array("q"), array("q")
        for rid, pos in pairs:
            keys.append(hash(rid))
            positions.append(pos)
        return cls(stamp, keys, positions)

    def candidates(self, ids: Sequence[RecordId]) -> list[int]:
        if not len(ids) or not len(self.keys):
            return []
        q = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        lo = np.searchsorted(self.keys, q, "left")
        hi = np.searchsorted(self.keys, q, "right")
        hits = [self.positions[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        return np.unique(np.concatenate(hits)).tolist() if hits else []


def line_number(path: Path, offset: int) -> int:
    """1-based line of the byte at ``offset``; only called on the error path."""
    n = 1
    with safe_paths.open_read(path, "file", error=TerminalError) as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 20))
            if not chunk:
                break
            n += chunk.count(b"\n")
            remaining -= len(chunk)
    return n
