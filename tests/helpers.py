"""Moved to :mod:`tests.support.data`; this shim keeps the old import path working."""

from tests.support.data import (
    DOCS_COLUMNS,
    DOCS_FIELDS,
    LANGS,
    TAGS,
    WORDS,
    DocsData,
    make_docs_table,
    make_ids,
    make_metadata,
    make_vectors,
    pg_store,
)

__all__ = ["DOCS_COLUMNS", "DOCS_FIELDS", "LANGS", "TAGS", "WORDS", "DocsData", "make_docs_table", "make_ids",
           "make_metadata", "make_vectors", "pg_store"]
