"""Chroma in the contract suite: the real ``chromadb`` client against a real ``chroma run`` server
(``tests/support/chroma.py``), started once per session on a free port with its data under ``tmp``.
Collections are created and seeded through vecmig with metric euclidean (l2), whose vectors come
back bit for bit; seeding with chromadb's own client and the cosine tolerance are the e2e test's
(``tests/test_e2e_chroma.py``)."""

from __future__ import annotations

from pathlib import Path

from tests.contract.kit import StoreUnderTest
from tests.support.chroma import chroma_server
from vecmig.spec import CreateSpec, StoreSpec

LACKS = {
    "sparse": "Chroma collections hold dense vectors only: a record with sparse values is refused",
    "namespaces": "Chroma has no namespaces inside a collection",
    "metadata:float": "a double is kept exactly only where Chroma's JSON parser lands on it (all of up to 15 "
                      "significant digits); one it would keep 1 ulp off is refused naming the record (CH012), "
                      "as are NaN, Infinity (CH007) and -0.0 (CH008)",
    "metadata:list_str": "Chroma keeps only non-empty lists (chromadb refuses an empty one): a record with an "
                         "empty list is refused naming the record (CH005); non-empty lists of strings are kept",
}


def under_test(tmp: Path) -> StoreUnderTest:
    running = chroma_server(tmp / "chroma-data")
    server = running.__enter__()

    def spec(collection: str, role: str) -> StoreSpec:
        # Chroma names are 3-512 of [A-Za-z0-9._-]: the suite's names are made to fit.
        name = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "-" for c in collection).strip("-._")
        return StoreSpec(provider="chroma", connection={"host": server.host, "port": server.port},
                         collection=f"c-{name}"[:500], create=CreateSpec(metric="euclidean"), pointer=f"/{role}",
                         base_dir=tmp)

    return StoreUnderTest(provider="chroma", spec=spec, lacks=LACKS, max_batch=server.client().get_max_batch_size(),
                          stop=lambda: running.__exit__(None, None, None))
