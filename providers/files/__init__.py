"""File stores: ``jsonl`` and ``parquet``, each usable as a source and as a target.

Modules are imported lazily by the entry points (``files.jsonl``, ``files.parquet``) so
that a JSONL-only migration never pays for importing pyarrow; shared machinery (field
resolution, metadata type inference, the idempotent staging area) lives in
``files.common``.
"""
