"""Red-team regressions for the Milvus, Chroma and LanceDB stores (small data, one server per module)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.milvus import MilvusLite
from vecmig.providers.base import CollectionSchema
from vecmig.providers.milvus.provider import MilvusProvider
from vecmig.records import Batch, RecordId
from vecmig.spec import StoreSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def milvus() -> Iterator[MilvusLite]:
    srv = MilvusLite()
    try:
        yield srv
    finally:
        srv.stop()


def test_milvus_string_ids_with_line_breaks_scan_resume_and_fetch(milvus: MilvusLite) -> None:
    """A VARCHAR id holding a newline or carriage return: the scan's cursor filter (`pk > "..."`)
    was sent with the raw character, which Milvus' expression parser refuses ("unterminated
    string literal (newline)"), so a faithful migration stopped after the first batch."""
    p = MilvusProvider(StoreSpec(provider="milvus", connection={"uri": milvus.uri}, collection="linebreaks",
                                 pointer="/source"))
    p.create_collection(CollectionSchema(dimension=2, metric="euclidean", id_type="text"))
    ids: list[RecordId] = ["a\nb", "a\rb", "a\r\nb", "a\tb", "a\\nb", 'a"\nb', "a\x01b", "b"]
    rng = np.random.default_rng(1)
    p.upsert(Batch(ids=list(ids), vectors=rng.standard_normal((len(ids), 2)).astype(np.float32),
                   metadata=[{"k": i} for i in range(len(ids))], texts=None))
    ordered = sorted(ids, key=lambda s: str(s).encode())
    assert [r for b in p.scan(None, None, 2) for r in b.ids] == ordered
    for k, rid in enumerate(ordered):
        assert [r for b in p.scan(None, rid, 2) for r in b.ids] == ordered[k + 1:], f"resume after {rid!r}"
    assert p.fetch(ids).ids == ids
    p.delete(ids[:4])
    assert sorted(p.fetch(ids).ids, key=str) == sorted(ids[4:], key=str) and p.count() == 4
    p.drop_collection()
