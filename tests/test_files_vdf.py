"""The VDF store (vector-io's directory format) end to end through the CLI.

vdf-io itself cannot be installed here (it requires torch, chromadb, pinecone-client 4 and
two dozen other clients, and pinecone-client 4 cannot sit beside pinecone>=10), so these tests
use its format exactly as its source (vdf-io 0.1.248) defines it: the pydantic models of
``vdf_io/meta_types.py`` copied below verbatim, directories written the way its exporters write
them (``ExportVDB.save_vectors_to_parquet``: a pandas DataFrame merged from ids, vectors and
metadata, ``df.to_parquet``; the Pinecone exporter's layout and ``model_dump``), and read the way
its importers read them (``ImportVDB``: ``VDF_META.json``, ``os.walk`` for ``*.parquet`` under
``data_path``, ``pd.read_parquet``, ``extract_vector``, every other column metadata).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035 - vdf-io's models, verbatim

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel, ConfigDict

from tests.roundtrip import exact, write_jsonl
from tests.roundtrip import records as make_records
from tests.support.cli import spawn, vecmig
from tests.support.data import make_docs_table
from tests.support.specs import env_for
from tests.test_files_csv import checkpointed
from vecmig.errors import TerminalError
from vecmig.providers import provider_class
from vecmig.spec import StoreSpec

# ---- vdf_io/meta_types.py (vdf-io 0.1.248, Apache-2.0), verbatim -----------------------------


class NamespaceMeta(BaseModel):
    namespace: str
    index_name: str
    total_vector_count: int
    exported_vector_count: int
    dimensions: int
    model_name: str | None = None
    model_map: Dict[str, Any] | None = None  # noqa: UP006
    vector_columns: List[str] = ["vector"]  # noqa: UP006
    data_path: str
    metric: str | None = None
    index_config: Optional[Dict[Any, Any]] = None  # noqa: UP006, UP045
    # schema_dict is a byte string
    schema_dict_str: str | None = None
    model_config = ConfigDict(protected_namespaces=())


class VDFMeta(BaseModel):
    version: str
    file_structure: List[str]  # noqa: UP006
    author: str
    exported_from: str
    indexes: Dict[str, List[NamespaceMeta]]  # noqa: UP006
    exported_at: str
    id_column: Optional[str] = None  # noqa: UP045


# ---- vdf-io's writer and reader, as its source does them -------------------------------------


def vdf_io_export(vdf_dir: Path, index: str, namespaces: dict[str, dict[str, tuple[list[float], dict[str, Any]]]],
                  dim: int, files: int = 1) -> None:
    """What ``ExportPinecone.get_data`` leaves: per namespace a directory
    ``<index>[_<namespace>]/i<n>.parquet/`` holding ``<n>.parquet`` from each
    ``save_vectors_to_parquet`` (one per ``max_file_size`` worth of records: ``files``), and
    ``VDF_META.json`` from ``VDFMeta.model_dump`` with ``indent=4``."""
    file_ctr = 1
    file_structure = []
    metas = []
    for namespace, recs in namespaces.items():
        vectors_directory = os.path.join(str(vdf_dir), index + ("_" + namespace if namespace else ""),
                                         f"i{file_ctr}.parquet")
        os.makedirs(vectors_directory, exist_ok=True)
        items = list(recs.items())
        total = 0
        for part in range(files):
            chunk = dict(items[part * len(items) // files:(part + 1) * len(items) // files])
            vectors = {k: v[0] for k, v in chunk.items()}
            metadata = {k: v[1] for k, v in chunk.items()}
            vectors_df = pd.DataFrame(list(vectors.items()), columns=["id", "vector"])
            metadata_df = pd.DataFrame.from_records([{"id": k, **v} for k, v in metadata.items()])
            common = set(vectors_df.columns) & set(metadata_df.columns) - {"id"}
            metadata_df = metadata_df.rename(columns={c: f"metadata_{c}" for c in common})
            df = vectors_df.merge(metadata_df, on="id", how="outer")
            parquet_file = os.path.join(vectors_directory, f"{file_ctr}.parquet")
            df.to_parquet(parquet_file)
            file_structure.append(parquet_file)
            file_ctr += 1
            total += len(df)
        metas.append(NamespaceMeta(
            namespace=namespace, index_name=index, total_vector_count=len(recs),
            exported_vector_count=total, dimensions=dim, model_name="NOT_PROVIDED", vector_columns=["vector"],
            data_path=str(Path(vectors_directory).relative_to(vdf_dir)), metric="Cosine"))
    file_structure.append(os.path.join(str(vdf_dir), "VDF_META.json"))
    meta = VDFMeta(version="0.1.248", file_structure=file_structure, author="tester", exported_from="pinecone",
                   indexes={index: metas}, exported_at="2026-12-06T22:00:00+00:00")
    (vdf_dir / "VDF_META.json").write_text(json.dumps(meta.model_dump(), indent=4))


def extract_vector(v: Any) -> list[float]:
    """``ImportVDB.extract_vector`` for the shapes Parquet gives back."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    return [float(x) for x in v]


def vdf_io_import(vdf_dir: Path) -> dict[tuple[str, str], dict[Any, tuple[list[float], dict[str, Any]]]]:
    """What ``ImportVDB`` subclasses read: (index, namespace) -> id -> (vector, metadata)."""
    meta = json.loads((vdf_dir / "VDF_META.json").read_text())
    VDFMeta.model_validate(meta)  # vdf-io's own model accepts the file
    id_column = meta.get("id_column", "id") or "id"
    out = {}
    for index_name, index_meta in meta["indexes"].items():
        for namespace_meta in index_meta:
            final_data_path = os.path.join(str(vdf_dir), namespace_meta["data_path"])
            assert os.path.isdir(final_data_path), "get_final_data_path refuses anything but a directory"
            files = [os.path.join(root, f) for root, _, fs in os.walk(final_data_path) for f in fs
                     if f.endswith(".parquet")]
            vector_columns = namespace_meta["vector_columns"]
            got: dict[Any, tuple[list[float], dict[str, Any]]] = {}
            for file in files:
                df = pd.read_parquet(file)
                for _, row in df.iterrows():
                    got[row[id_column]] = (extract_vector(row[vector_columns[0]]),
                                           {k: v for k, v in row.items() if k not in vector_columns})
            out[(index_name, namespace_meta["namespace"])] = got
    return out


# ---- helpers ------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spec(tmp: Path, name: str, source: str, target: str, extra: str = "") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"version: 1\nname: {name}\nsource: {source}\ntarget: {target}\n{extra}")
    return path


def ok(*args: str, env: dict[str, str] | None = None) -> None:
    r = vecmig(*args, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def bits(vector: Any) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


# ---- pgvector → vdf → jsonl, and vdf-io reads what vecmig wrote -----------------------------


def test_pgvector_to_vdf_to_jsonl_is_exact_and_vdf_io_reads_it(pg_db: str, tmp_path: Path) -> None:
    docs = make_docs_table(pg_db, "docs", 300, 16, seed=4)
    env = env_for(pg_db)
    there = spec(tmp_path, "there",
                 '{provider: pgvector, connection: {dsn: "${env:SOURCE_DSN}"}, collection: docs, '
                 "fields: {id: id, vector: embedding, text: body}}",
                 "{provider: vdf, connection: {path: out.vdf}, collection: docs}",
                 "strategy: {type: big-bang, batch_size: 70, concurrency: 2}\n")
    back = spec(tmp_path, "back", "{provider: vdf, connection: {path: out.vdf}, collection: docs}",
                "{provider: jsonl, connection: {path: back.jsonl}}", "strategy: {batch_size: 45}\n")
    ok("apply", str(there), "--auto-approve", env=env)
    ok("apply", str(back), "--auto-approve")

    expected = [{"id": rid, "vector": vec, "metadata": meta, "text": text}
                for rid, vec, meta, text in zip(docs.ids, docs.vectors, docs.metadata, docs.texts, strict=True)]
    assert exact(read_jsonl(tmp_path / "back.jsonl")) == exact(expected)

    # vdf-io's reader: its model accepts the meta, its walk finds one file, every value is there.
    vdf = tmp_path / "out.vdf"
    assert sorted(p.name for p in vdf.iterdir()) == ["VDF_META.json", "docs"], "no staging left for vdf-io to see"
    meta = VDFMeta.model_validate_json((vdf / "VDF_META.json").read_text())
    (ns,) = meta.indexes["docs"]
    assert (ns.namespace, ns.total_vector_count, ns.dimensions, ns.metric) == ("", 300, 16, "Cosine")
    read = vdf_io_import(vdf)[("docs", "")]
    assert len(read) == 300
    for rid, vec, m, text in zip(docs.ids, docs.vectors, docs.metadata, docs.texts, strict=True):
        vector, columns = read[rid]
        assert bits(vector) == bits(vec)
        assert columns["id"] == rid and (columns["text"] if text is not None else None) == text
        for key in ("title", "lang", "year", "score", "published"):
            value = columns[key]
            if key not in m:
                assert value is None or pd.isna(value), (rid, key, value)
            else:
                assert value == m[key], (rid, key, value)  # pandas widens an int column with nulls
        if "tags" in m:
            assert list(columns["tags"]) == m["tags"]
    # The types are in the file, for any reader: int stays int, bool bool, tags a list of strings.
    schema = pq.read_schema(vdf / "docs" / "1.parquet")
    assert {n: str(schema.field(n).type) for n in ("id", "year", "score", "published", "title", "tags")} == {
        "id": "int64", "year": "int64", "score": "double", "published": "bool", "title": "string",
        "tags": "list<element: string>"}


# ---- vdf-io's export → vecmig, and a directory shared with another index ------------------------


def exported(n: int, seed: int, dim: int) -> dict[str, tuple[list[float], dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    genres = ["drama", "5", "", "true"]
    return {f"v-{seed}-{i}": ([float(x) for x in vecs[i]],
                              {"genre": genres[i % 4], "year": 1990 + i, "rating": i / 7, "flag": bool(i % 2),
                               "tags": [f"t{i % 3}", "x"]})
            for i in range(n)}


def test_vdf_io_export_reads_exactly_and_shared_directory_survives_apply_and_rollback(tmp_path: Path) -> None:
    vdf = tmp_path / "vdf_20261206_220000_abcd"
    vdf.mkdir()
    default, prod = exported(25, 1, 8), exported(40, 2, 8)
    vdf_io_export(vdf, "movies", {"": default, "prod": prod}, 8, files=3)  # three files per namespace
    for namespace, records in (("", default), ("prod", prod)):
        ns = f", namespace: {namespace}" if namespace else ""
        out = f"{namespace or 'default'}.jsonl"
        s = spec(tmp_path, f"read{namespace}", f"{{provider: vdf, connection: {{path: {vdf.name}}}, "
                 f"collection: movies{ns}}}", f"{{provider: jsonl, connection: {{path: {out}}}}}",
                 "strategy: {batch_size: 9}\n")
        ok("apply", str(s), "--auto-approve")
        got = read_jsonl(tmp_path / out)
        want = [{"id": rid, "vector": vec, "metadata": meta, "text": None} for rid, (vec, meta) in records.items()]
        assert exact(got) == exact(want)

    # vecmig writes a second index into the same directory; vdf-io's reader sees both, and the
    # first one is untouched. Rollback takes the second one away again.
    before = json.loads((vdf / "VDF_META.json").read_text())["indexes"]["movies"]
    files_before = sorted(p.relative_to(vdf) for p in vdf.rglob("*") if p.is_file() and p.name != "VDF_META.json")
    write = spec(tmp_path, "write", "{provider: jsonl, connection: {path: prod.jsonl}}",
                 f"{{provider: vdf, connection: {{path: {vdf.name}}}, collection: copy, namespace: prod}}",
                 "strategy: {batch_size: 11}\n")
    ok("apply", str(write), "--auto-approve")
    meta = json.loads((vdf / "VDF_META.json").read_text())
    assert meta["indexes"]["movies"] == before
    read = vdf_io_import(vdf)
    assert set(read) == {("movies", ""), ("movies", "prod"), ("copy", "prod")}
    copy = read[("copy", "prod")]
    assert set(copy) == set(prod)
    for rid, (vec, m) in prod.items():
        vector, columns = copy[rid]
        assert bits(vector) == bits(vec)
        assert {k: (list(v) if k == "tags" else v) for k, v in columns.items() if k not in ("id", "text")} == m
    ok("rollback", str(write), "--auto-approve")
    meta = json.loads((vdf / "VDF_META.json").read_text())
    assert list(meta["indexes"]) == ["movies"] and meta["indexes"]["movies"] == before
    assert sorted(p.relative_to(vdf) for p in vdf.rglob("*") if p.is_file() and p.name != "VDF_META.json") \
        == files_before


# ---- hostile directories: one line each ----------------------------------------------------------


def refusal(tmp_path: Path, meta: str | None, collection: str = "idx", namespace: str | None = None) -> str:
    vdf = tmp_path / "bad.vdf"
    vdf.mkdir(exist_ok=True)
    if meta is not None:
        (vdf / "VDF_META.json").write_text(meta)
    store = StoreSpec(provider="vdf", connection={"path": "bad.vdf"}, collection=collection, namespace=namespace,
                      base_dir=tmp_path, pointer="/source")
    with pytest.raises(TerminalError) as caught:
        p = provider_class("vdf")(store)
        inv = p.inventory()
        for shard in p.shards(inv, 1000):
            for _ in p.scan(shard, None, 100):
                pass
    line = caught.value.one_line()
    assert "\n" not in line
    return line


def ns(namespace: str, data_path: str = "idx") -> dict[str, Any]:
    return {"namespace": namespace, "index_name": "idx", "total_vector_count": 1, "exported_vector_count": 1,
            "dimensions": 2, "data_path": data_path}


@pytest.mark.parametrize(("meta", "namespace", "expected"), [
    ("{not json", None, "is not valid JSON"),
    ('{"version": "1"}', None, "no 'indexes' object"),
    (json.dumps({"indexes": {"idx": [{**ns(""), "dimensions": "2"}]}}), None, "/indexes/idx/0/dimensions"),
    (json.dumps({"indexes": {"idx": [ns("a"), ns("b")]}}), None, "namespaces 'a', 'b'"),
    (json.dumps({"indexes": {"idx": [ns("", "../outside")]}}), None, "outside the VDF directory"),
    (None, "*", "not '*'"),
], ids=["invalid JSON", "no indexes", "wrong type", "no default namespace", "escaping data_path", "all namespaces"])
def test_hostile_vdf_is_refused_in_one_line(tmp_path: Path, meta: str | None, namespace: str | None,
                                            expected: str) -> None:
    assert expected in refusal(tmp_path, meta, namespace=namespace)


def test_double_vectors_float32_cannot_hold_are_refused_not_rounded(tmp_path: Path) -> None:
    """vdf-io writes vectors as pandas lists of float64: 0.1 as a double is no float32 value."""
    vdf = tmp_path / "bad.vdf"
    vdf.mkdir()
    vdf_io_export(vdf, "idx", {"": {"a": ([0.5, 0.25], {"k": 1}), "b": ([0.1, 0.5], {"k": 2})}}, 2)
    line = refusal(tmp_path, None)
    assert "row 1" in line and "float32 cannot hold exactly" in line and "1.parquet" in line, line


# ---- SIGKILL mid-apply, then resume ---------------------------------------------------------------


def test_sigkill_mid_apply_then_resume_leaves_vdf_io_exactly_the_records(tmp_path: Path) -> None:
    """Parts of a killed run wait outside the data folder; the resumed run merges each record once."""
    src = make_records(range(2000), 5)
    write_jsonl(tmp_path / "src.jsonl", src)
    s = spec(tmp_path, "kill", "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: vdf, connection: {path: out.vdf}, collection: docs}",
             "strategy: {type: big-bang, batch_size: 40, concurrency: 2, shard_size: 1000}\n")
    db = tmp_path / ".vecmig" / "kill.db"
    kills = 0
    for threshold in (200, 900, 1500):
        proc = spawn("apply", str(s), "--auto-approve")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and checkpointed(db) < threshold:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            proc.communicate(timeout=30)
    assert kills >= 2, f"only {kills} kills landed"
    ok("apply", str(s), "--auto-approve")
    read = vdf_io_import(tmp_path / "out.vdf")[("docs", "")]
    assert len(read) == 2000 and set(read) == {r["id"] for r in src}
    back = spec(tmp_path, "back", "{provider: vdf, connection: {path: out.vdf}, collection: docs}",
                "{provider: jsonl, connection: {path: back.jsonl}}")
    ok("apply", str(back), "--auto-approve")
    out = read_jsonl(tmp_path / "back.jsonl")
    assert len(out) == 2000, "nothing lost, nothing doubled"
    # Typed Parquet columns keep no null apart from an absent key (the store declares it).
    want = [{**r, "metadata": {k: v for k, v in r["metadata"].items() if v is not None}} for r in src]
    assert exact(out) == exact(want)
