"""The staging area of a file target: ``<path>.vecmig-parts/`` with its manifest, one part per
acknowledged batch and one tombstone per delete (the protocol: :mod:`vecmig.providers.files.base`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

from vecmig.durable import atomic_write, fsync_path
from vecmig.errors import TerminalError
from vecmig.records import RecordId, canonical_id

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

    def __init__(self, final: Path, part_suffix: str, where: Path | None = None) -> None:
        """``where``: the staging directory when it cannot sit beside the file (a VDF directory,
        whose readers take every Parquet file under a data path for data)."""
        self.final = final
        self.dir = where if where is not None else final.with_name(final.name + ".vecmig-parts")
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


class JsonHeaderedParts:
    """Staged parts that open with one JSON line naming their seq and ids (JSONL, CSV): what the
    merge asks of a part without reading its records. ``part_marker`` tells one format's parts
    from stray files."""

    part_marker: ClassVar[str]

    @classmethod
    def _part_header(cls, f: IO[bytes], path: Path) -> dict[str, Any]:
        header = json.loads(f.readline())
        if not isinstance(header, dict) or header.get(cls.part_marker) != 1:
            raise TerminalError(f"{path} is not a vecmig part", hint="remove stray files from the parts directory")
        return header

    def _part_seq(self, path: Path) -> int:
        with open(path, "rb") as f:
            return int(self._part_header(f, path)["seq"])

    def _part_ids(self, path: Path) -> list[RecordId]:
        with open(path, "rb") as f:
            return list(self._part_header(f, path)["ids"])
