"""File stores: ``jsonl``, ``parquet``, ``csv`` and ``vdf`` (vector-io's directory of Parquet
files), each usable as a source and as a target.

Modules are imported lazily by the entry points (``files.jsonl``, ``files.parquet``,
``files.csvfile``, ``files.vdf``) so
that a JSONL-only migration never pays for importing pyarrow; shared machinery lives
beside them: ``files.fields`` (field resolution, metadata type inference), ``files.jsonio``,
``files.staging`` (the idempotent staging area), ``files.base`` (the target skeleton and its
merge) and ``files.idindex``; ``files.common`` re-exports all of it. The atomic write they
share with the pointer file is ``vecmig.durable``.
"""
