"""Red-team findings on the stores added this session (Qdrant, CSV, VDF, namespaces), each a
defect a realistic user hit: the test fails without the fix next to it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from tests.qdrant_local import QdrantLocal
from tests.roundtrip import exact, records, write_jsonl
from tests.support.cli import vecmig
from vecmig.errors import TerminalError
from vecmig.providers.base import CollectionSchema
from vecmig.providers.qdrant.provider import QdrantProvider
from vecmig.records import Batch
from vecmig.spec import Fields, StoreSpec

pytestmark = pytest.mark.integration

KEY = "red2-qdrant-key-77ab"


@pytest.fixture(scope="module")
def server() -> Iterator[QdrantLocal]:
    with QdrantLocal(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def srv(server: QdrantLocal) -> Iterator[QdrantLocal]:
    server.reset()
    yield server


def qclient(srv: QdrantLocal) -> QdrantClient:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return QdrantClient(url=srv.url, api_key=KEY, prefer_grpc=False, check_compatibility=False)


def provider(srv: QdrantLocal, collection: str, vector: str | None) -> QdrantProvider:
    return QdrantProvider(StoreSpec(provider="qdrant", connection={"url": srv.url, "api_key": KEY},
                                    collection=collection, fields=Fields(vector=vector), pointer="/target"))


def test_qdrant_target_created_with_fields_vector_gets_that_named_vector(srv: QdrantLocal, tmp_path: Path) -> None:
    """`fields.vector: dense` on a target vecmig creates was accepted and ignored: the collection
    got one unnamed vector, and the application querying `using="dense"` found nothing."""
    src = records(range(1, 9), 3)
    write_jsonl(tmp_path / "src.jsonl", src)
    store = (f'provider: qdrant, connection: {{url: "{srv.url}", api_key: "${{env:QK}}"}}, collection: named, '
             "fields: {vector: dense}")
    target = f"{{{store}, create: {{metric: dotproduct}}}}"
    (tmp_path / "there.yaml").write_text(
        f"version: 1\nname: there\nsource: {{provider: jsonl, connection: {{path: src.jsonl}}}}\ntarget: {target}\n")
    (tmp_path / "back.yaml").write_text(
        f"version: 1\nname: back\nsource: {{{store}}}\ntarget: {{provider: jsonl, connection: {{path: out.jsonl}}}}\n")
    env = {**os.environ, "QK": KEY}
    for name in ("there", "back"):
        r = vecmig("apply", str(tmp_path / f"{name}.yaml"), "--auto-approve", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    with closing(qclient(srv)) as qc:
        vectors = qc.get_collection("named").config.params.vectors
        assert isinstance(vectors, dict) and set(vectors) == {"dense"}, vectors
        points, _ = qc.scroll("named", limit=100, with_vectors=True)
        assert len(points) == 8 and all(isinstance(p.vector, dict) and set(p.vector) == {"dense"} for p in points)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert exact(out) == exact(src)


def test_qdrant_fields_vector_naming_no_vector_of_the_collection_is_refused(srv: QdrantLocal) -> None:
    """A `fields.vector` the collection does not have was ignored silently: the unnamed vector, or
    the only named one, was moved instead of the one the spec names."""
    with closing(qclient(srv)) as qc:
        qc.create_collection("plain", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        qc.create_collection("one", vectors_config={"image": models.VectorParams(size=2, distance=models.Distance.DOT)})
    with pytest.raises(TerminalError, match="has one unnamed vector, not the named vector 'dense'"):
        provider(srv, "plain", "dense").inventory()
    with pytest.raises(TerminalError, match=r"has no named vector 'dense'.*it has image"):
        provider(srv, "one", "dense").inventory()
    with pytest.raises(TerminalError, match="has one unnamed vector"):  # an existing target: not written into
        provider(srv, "plain", "dense").create_collection(
            CollectionSchema(dimension=2, metric="dotproduct", id_type="int"))
    assert provider(srv, "one", None).inventory().extra["vector_name"] == "image"  # no fields.vector: the only one


def test_vdf_fields_vector_names_the_vector_column_written_and_read(tmp_path: Path) -> None:
    """`fields.vector: emb` on a VDF target was accepted and ignored (the column was 'vector'),
    and on a VDF source a name the index lacks was ignored for its first vector column."""
    import pyarrow.parquet as pq

    src = records(range(1, 7), 4)
    write_jsonl(tmp_path / "src.jsonl", src)
    (tmp_path / "there.yaml").write_text(
        "version: 1\nname: there\nsource: {provider: jsonl, connection: {path: src.jsonl}}\n"
        "target: {provider: vdf, connection: {path: out_vdf}, collection: idx, fields: {vector: emb}}\n")
    r = vecmig("apply", str(tmp_path / "there.yaml"), "--auto-approve", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "emb" in pq.read_schema(tmp_path / "out_vdf" / "idx" / "1.parquet").names
    meta = json.loads((tmp_path / "out_vdf" / "VDF_META.json").read_text())
    assert meta["indexes"]["idx"][0]["vector_columns"] == ["emb"]
    for name, vector, ok in (("back", "emb", True), ("wrong", "nope", False)):
        (tmp_path / f"{name}.yaml").write_text(
            f"version: 1\nname: {name}\nsource: {{provider: vdf, connection: {{path: out_vdf}}, collection: idx, "
            f"fields: {{vector: {vector}}}}}\ntarget: {{provider: jsonl, connection: {{path: {name}.jsonl}}}}\n")
        r = vecmig("apply", str(tmp_path / f"{name}.yaml"), "--auto-approve", cwd=tmp_path)
        if ok:
            assert r.returncode == 0, r.stdout + r.stderr
            out = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
            absent_nulls = [{**r, "metadata": {k: v for k, v in r["metadata"].items() if v is not None}} for r in src]
            assert exact(out) == exact(absent_nulls)  # a typed column's null is an absent key (by design)
        else:
            assert r.returncode != 0 and "has no vector column 'nope'" in r.stderr, r.stdout + r.stderr
            assert "Traceback" not in r.stderr


def test_qdrant_existing_dotproduct_target_of_a_cosine_source_is_not_refused_qd003(
        srv: QdrantLocal, tmp_path: Path) -> None:
    """QD003 judged the source's metric (JSONL: cosine) rather than the existing target's own:
    a faithful copy into a dotproduct collection vecmig writes as it is was refused at plan."""
    with closing(qclient(srv)) as qc:
        qc.create_collection("dot", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    write_jsonl(tmp_path / "src.jsonl", records(range(1, 5), 1))
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\nsource: {provider: jsonl, connection: {path: src.jsonl}}\n"
        f'target: {{provider: qdrant, connection: {{url: "{srv.url}", api_key: "${{env:QK}}"}}, collection: dot}}\n')
    r = vecmig("apply", str(tmp_path / "s.yaml"), "--auto-approve", env={**os.environ, "QK": KEY}, cwd=tmp_path)
    assert r.returncode == 0 and "QD003" not in r.stdout + r.stderr, r.stdout + r.stderr
    with closing(qclient(srv)) as qc:
        assert qc.count("dot", exact=True).count == 4
        qc.create_collection("cos", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    sample = Batch(ids=[1], vectors=np.ones((1, 4), np.float32), metadata=[{}], texts=[None])
    codes = [f.code for f in provider(srv, "cos", None).lint(sample, CollectionSchema(4, "dotproduct", "int"))]
    assert codes == ["QD003"], "an existing cosine collection is refused whatever the source's metric"
