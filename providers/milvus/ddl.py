"""Creating and dropping collections, swapping the vector index, moving aliases."""

from __future__ import annotations

from typing import Any

from vecmig.providers.base import CollectionSchema
from vecmig.providers.milvus import indexsettings
from vecmig.providers.milvus import layout as lay
from vecmig.providers.milvus.session import ALL, MilvusSession
from vecmig.spec import IndexSpec


class MilvusDdl(MilvusSession):
    """The schema side of :class:`MilvusProvider`."""


    def create_collection(self, schema: CollectionSchema) -> None:
        """A collection with vecmig's fields, Strong consistency, a FLAT index (so it loads and
        answers queries during the copy), loaded; idempotent."""
        if not self._exists():
            client = self._c()
            index = client.prepare_index_params()
            index.add_index(field_name=lay.VECTOR, index_type="FLAT",
                            metric_type=lay.METRICS.get(schema.metric, "COSINE"))
            self._call("creating the collection", lambda: client.create_collection(
                self._name, schema=lay.new_schema(schema, self.store.fields.text), index_params=index,
                consistency_level="Strong"))
        self._layout = None
        self._ensure_loaded()
        ns = self.store.namespace
        if ns and ns != ALL:
            self._ensure_partition(ns)

    def drop_collection(self) -> None:
        if self._exists():
            self._call("dropping the collection", lambda: self._c().drop_collection(self._name))
        self._layout = None

    def build_index(self, index: IndexSpec, metric: str) -> str | None:
        """Flush what the copy wrote, replace the placeholder index by ``index``, load again."""
        layout = self._get_layout()
        self._replace_index(layout, *lay.index_params(index), lay.METRICS.get(metric, "COSINE"))
        self._record_index(indexsettings.to_record(index))
        return layout.vector

    def _record_index(self, value: str | None) -> None:
        """Keep the built index (its search params are per query in Milvus) with the collection,
        or forget it."""
        client = self._c()
        if value is None:
            self._call("forgetting the index record", lambda: client.drop_collection_properties(
                self._name, property_keys=[indexsettings.PROPERTY]))
            return
        self._call("recording the index", lambda: client.alter_collection_properties(
            self._name, properties={indexsettings.PROPERTY: value}))

    def drop_index(self, name: str) -> None:
        """Back to the FLAT index a new collection has (Milvus cannot load an unindexed one)."""
        if not self._exists():
            return
        _, metric = self._index()
        self._replace_index(self._get_layout(), "FLAT", {}, lay.METRICS.get(metric or "cosine", "COSINE"))
        self._record_index(None)

    def _replace_index(self, layout: lay.Layout, kind: str, params: dict[str, Any], metric: str) -> None:
        self._searching = None  # the index searches read is about to change
        client = self._c()
        self._call("flushing", lambda: client.flush(self._name))
        self._call("releasing the collection", lambda: client.release_collection(self._name))
        for name in self._call("listing indexes", lambda: client.list_indexes(self._name, field_name=layout.vector)):
            self._call(f"dropping index '{name}'", lambda name=name: client.drop_index(  # type: ignore[misc]
                self._name, name))
        spec = client.prepare_index_params()
        spec.add_index(field_name=layout.vector, index_type=kind, metric_type=metric, params=params)
        self._call(f"building the {kind} index", lambda: client.create_index(self._name, spec))
        self._call("loading the collection", lambda: client.load_collection(self._name))

    def read_alias(self, alias: str) -> str | None:
        names = self._call("listing aliases", lambda: self._c().list_aliases())
        if alias not in (names.get("aliases") or []):
            return None
        found = self._call(f"reading alias '{alias}'", lambda: self._c().describe_alias(alias))
        return str(found["collection_name"])

    def switch_alias(self, alias: str, collection: str | None) -> None:
        current = self.read_alias(alias)
        client = self._c()
        if collection is None:
            if current is not None:
                self._call(f"dropping alias '{alias}'", lambda: client.drop_alias(alias))
        elif current is None:
            self._call(f"creating alias '{alias}'", lambda: client.create_alias(collection, alias))
        elif current != collection:
            self._call(f"moving alias '{alias}'", lambda: client.alter_alias(collection, alias))
