"""The pinecone provider, driven through the real ``pinecone`` SDK against the local server.

No mocks: every request goes over HTTP to ``tests.pinecone_local``, which enforces
Pinecone's documented limits (1000 records / 2 MB per upsert, 40 KB metadata, ...) and can
inject 429s, 503s and dropped connections.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest
from pinecone import Pinecone

from tests.pinecone_local import PineconeLocal, reset_sdk_host_state
from vecmig.errors import TerminalError, TransientError
from vecmig.providers import provider_class
from vecmig.providers.base import CollectionSchema
from vecmig.providers.pinecone import PineconeProvider, lint_sample, packing, pricing
from vecmig.providers.pinecone.lint import summarize
from vecmig.providers.pinecone.provider import model_throughput
from vecmig.records import Batch, Checksum
from vecmig.spec import CreateSpec, Fields, StoreSpec

API_KEY = "test-key"


@pytest.fixture(scope="module")
def shared() -> Iterator[PineconeLocal]:
    with PineconeLocal(api_key=API_KEY) as server:
        yield server
    reset_sdk_host_state()


@pytest.fixture
def srv(shared: PineconeLocal) -> Iterator[PineconeLocal]:
    shared.reset()
    yield shared
    shared.reset()
    # Fault tests drain the SDK's process-wide, per-hostname retry budget.
    reset_sdk_host_state()


def store(server: PineconeLocal, index: str = "docs", *, namespace: str | None = None, api_key: str = API_KEY,
          text: str | None = None, **options: Any) -> StoreSpec:
    return StoreSpec(
        provider="pinecone",
        connection={"api_key": api_key, "host": server.url, **options},
        collection=index,
        namespace=namespace,
        fields=Fields(text=text),
        create=CreateSpec(dimension=None, metric=None),
        pointer="/target",
    )


def provider(server: PineconeLocal, index: str = "docs", **kw: Any) -> PineconeProvider:
    return PineconeProvider(store(server, index, **kw))


def make_batch(n: int, dim: int, *, start: int = 0, seed: int = 0, prefix: str = "doc-",
               texts: bool = True, int_ids: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    ids: list[Any] = list(range(start, start + n)) if int_ids else [f"{prefix}{i:05d}" for i in range(start, start + n)]
    return Batch(
        ids=ids,
        vectors=rng.standard_normal((n, dim)).astype(np.float32),
        metadata=[{"year": 2000 + i % 30, "score": i / 7, "lang": "en" if i % 2 else "de",
                   "tags": ["a", f"t{i % 5}"], "ok": i % 3 == 0, "gone": None} for i in range(start, start + n)],
        texts=[f"text of record {i}" for i in range(start, start + n)] if texts else None,
    )


def created(server: PineconeLocal, index: str = "docs", dim: int = 16, metric: str = "cosine",
            **kw: Any) -> PineconeProvider:
    p = provider(server, index, **kw)
    p.create_collection(CollectionSchema(dimension=dim, metric=metric, id_type="text"))
    return p


def checksum(*batches: Batch) -> Checksum:
    c = Checksum()
    for b in batches:
        c.add_batch(b)
    return c


def scan_all(p: PineconeProvider, batch_size: int, shard: dict[str, Any] | None = None) -> list[Batch]:
    if shard is None:
        shard = p.shards(p.inventory(), 50_000)[0]
    return list(p.scan(shard, None, batch_size))


# ---- lifecycle --------------------------------------------------------------------------------


def test_entry_point_resolves_to_the_provider() -> None:
    assert provider_class("pinecone") is PineconeProvider


def test_create_index_waits_until_ready_and_is_idempotent(srv: PineconeLocal) -> None:
    srv.set_ready_delay(0.3)
    p = provider(srv)
    try:
        assert p.inventory().exists is False
        p.create_collection(CollectionSchema(dimension=16, metric="dotproduct", id_type="text"))
        inv = p.inventory()  # no wait needed: create returned only once the index was ready
        assert (inv.exists, inv.dimension, inv.metric, inv.count) == (True, 16, "dotproduct", 0)
        assert inv.extra["ready"] is True
        with Pinecone(api_key=API_KEY, host=srv.url) as pc:
            model = pc.indexes.describe("docs")
            assert model.tags == {"created-by": "vecmig"} and model.deletion_protection == "disabled"
            assert (model.deployment.cloud, model.deployment.region) == ("aws", "us-east-1")
        # Same shape again: a no-op; another shape: refused with a hint.
        p.create_collection(CollectionSchema(dimension=16, metric="dotproduct", id_type="text"))
        with pytest.raises(TerminalError, match="different shape: dimension 16 != 8"):
            p.create_collection(CollectionSchema(dimension=8, metric="dotproduct", id_type="text"))
    finally:
        p.close()


def test_invalid_index_name_is_a_terminal_error(srv: PineconeLocal) -> None:
    with pytest.raises(TerminalError, match="not a valid Pinecone index name") as err:
        provider(srv, "Docs_V2").inventory()
    assert "lowercase" in (err.value.hint or "")


# ---- reading and writing ----------------------------------------------------------------------


def test_round_trip_is_bit_exact_with_metadata_and_text(srv: PineconeLocal) -> None:
    p = created(srv, dim=24, text="body")
    try:
        src = make_batch(230, 24)
        src.vectors[0, :3] = [0.1, 1e-30, 123456.78]  # short, tiny and large values travel exactly too
        p.upsert(src)
        got = scan_all(p, 64)
        assert [len(b) for b in got] == [64, 64, 64, 38]
        back = Batch(ids=[i for b in got for i in b.ids], vectors=np.concatenate([b.vectors for b in got]),
                     metadata=[m for b in got for m in b.metadata], texts=[t for b in got for t in b.texts or []])
        assert back.ids == src.ids  # list order is id order
        assert back.vectors.dtype == np.float32
        assert back.vectors.tobytes() == src.vectors.tobytes()
        # Pinecone keeps numbers as doubles and drops nulls; the canonical checksum agrees.
        assert back.metadata[3] == {"year": 2003.0, "score": 3 / 7, "lang": "en", "tags": ["a", "t3"], "ok": True}
        assert back.texts == src.texts
        assert checksum(back).to_json() == checksum(src).to_json()
        # The text travels in the metadata key named by fields.text.
        with Pinecone(api_key=API_KEY, host=srv.url) as pc, pc.Index(host=srv.index_host("docs")) as idx:
            raw = idx.fetch(ids=["doc-00003"]).vectors["doc-00003"].metadata
            assert raw["body"] == "text of record 3" and "gone" not in raw
        inv = p.inventory()
        assert inv.fields == {"lang": "text", "ok": "bool", "score": "float", "tags": "text[]", "year": "float"}
        assert inv.has_text is True and inv.count == 230 and inv.count_exact
        assert p.inventory().fingerprint == inv.fingerprint  # deterministic while data is unchanged
    finally:
        p.close()


def test_scan_resumes_exactly_from_every_cursor_across_pages(srv: PineconeLocal) -> None:
    p = created(srv, dim=4)
    try:
        src = make_batch(537, 4, texts=False)
        p.upsert(src)
        shard = p.shards(p.inventory(), 1000)[0]
        full = list(p.scan(shard, None, 70))  # 70 does not divide the 100-id list pages
        ids = [i for b in full for i in b.ids]
        assert ids == src.ids
        for k, batch in enumerate(full):
            cursor = json.loads(json.dumps(batch.cursor))  # as it is stored in state
            rest = [i for b in p.scan(shard, cursor, 70) for i in b.ids]
            assert rest == ids[(k + 1) * 70 :], f"resume after batch {k}"
        # A token the server refuses (expired, foreign) restarts the listing, skipping by id.
        stale = {**full[3].cursor, "token": "bm90LWEtdG9rZW4"}
        assert [i for b in p.scan(shard, stale, 70) for i in b.ids] == ids[280:]
        # Records added before the cursor on the same page shift offsets: ids decide.
        cursor = full[2].cursor  # after doc-00209, offset 10 in the third page
        p.upsert(make_batch(3, 4, start=200, prefix="doc-00200-extra-", texts=False))
        assert [i for b in p.scan(shard, cursor, 500) for i in b.ids] == ids[210:]
    finally:
        p.close()


def test_several_namespaces(srv: PineconeLocal) -> None:
    writers = {ns: created(srv, dim=8, namespace=ns) for ns in ("__default__", "eu", "us")}
    try:
        for k, (ns, w) in enumerate(writers.items()):
            w.upsert(make_batch(40 + 10 * k, 8, seed=k, prefix=f"{ns}-"))
        assert [w.count() for w in writers.values()] == [40, 50, 60]
        assert writers["__default__"].inventory().extra["namespaces"] == {"": 40, "eu": 50, "us": 60}
        every = provider(srv, namespace="*")
        inv = every.inventory()
        assert inv.count == 150 and every.count() == 150
        shards = every.shards(inv, 10)
        assert shards == [{"namespace": "", "records": 40}, {"namespace": "eu", "records": 50},
                          {"namespace": "us", "records": 60}]
        per_shard = [[i for b in every.scan(s, None, 32) for i in b.ids] for s in shards]
        assert [len(x) for x in per_shard] == [40, 50, 60] and per_shard[1][0] == "eu-00000"
        # Without a shard, "*" walks every namespace; its cursor names the namespace.
        batches = list(every.scan(None, None, 32))
        assert sum(len(b) for b in batches) == 150
        resumed = [i for b in every.scan(None, batches[2].cursor, 32) for i in b.ids]
        assert resumed == [i for b in batches[3:] for i in b.ids]
        assert every.fetch(["us-00001", "eu-00002"]).ids == ["us-00001", "eu-00002"]
        every.close()
    finally:
        for w in writers.values():
            w.close()


def test_fetch_with_int_ids_maps_back_to_the_requested_type(srv: PineconeLocal) -> None:
    p = created(srv, dim=8)
    try:
        src = make_batch(30, 8, int_ids=True)  # what a pgvector source with bigint ids yields
        p.upsert(src)
        got = p.fetch([3, 7, 999, 12, "x" * 600])
        assert got.ids == [3, 7, 12] and all(type(i) is int for i in got.ids)
        assert checksum(got).to_json() == checksum(src.take([3, 7, 12])).to_json()
        whole = p.fetch(src.ids)
        assert checksum(whole).to_json() == checksum(src).to_json()
        # Scanning returns what Pinecone holds: strings.
        assert scan_all(p, 100)[0].ids[:3] == ["0", "1", "10"]
    finally:
        p.close()


def test_upsert_packs_requests_by_measured_size(srv: PineconeLocal) -> None:
    p = created(srv, "big", dim=1536, concurrency=4)
    try:
        rng = np.random.default_rng(1)
        n = 3000
        batch = Batch(ids=[f"doc-{i:05d}" for i in range(n)],
                      vectors=rng.standard_normal((n, 1536)).astype(np.float32),
                      metadata=[{"body": "x" * int(rng.integers(2_000, 20_000)), "n": i} for i in range(n)])
        _, sizes = p._prepare(batch)
        overhead = packing.upsert_overhead("")
        minimum = packing.min_requests(sizes, overhead=overhead)
        srv.reset_stats()
        p.upsert(batch)
        sent = srv.stats()["requests"]["upsert"]
        assert srv.stats()["responses"]["upsert"] == {"200": sent}
        assert p.upsert_stats.max_request_bytes <= packing.MAX_REQUEST_BYTES
        assert p.upsert_stats.max_request_records <= packing.MAX_UPSERT_RECORDS
        assert minimum <= sent <= minimum * 1.05, (sent, minimum)
        assert p.count() == n
    finally:
        p.close()


def test_measured_size_is_what_the_sdk_sends(srv: PineconeLocal) -> None:
    from pinecone._internal.data_plane_helpers import _vector_to_dict
    from pinecone._internal.http_client import _encode_json
    from pinecone._internal.vector_factory import VectorFactory

    p = created(srv, dim=32)
    try:
        batch = make_batch(50, 32)
        batch.extra["sparse"] = [None] * 50
        items, sizes = p._prepare(batch)
        for ns in ("", "eu"):
            body: dict[str, Any] = {"vectors": [_vector_to_dict(VectorFactory.build(i)) for i in items]}
            if ns:
                body["namespace"] = ns
            chunk = packing.pack(sizes, overhead=packing.upsert_overhead(ns))[0]
            assert chunk.nbytes == len(_encode_json(body))
    finally:
        p.close()


def test_a_request_the_server_finds_too_large_is_split(srv: PineconeLocal) -> None:
    p = created(srv, dim=1536)
    try:
        # Pretend our measure let a 5 MB request through: the server's 400 makes us split it.
        p._max_request_bytes = 8 * 1024 * 1024
        srv.reset_stats()
        p.upsert(make_batch(300, 1536))
        assert srv.stats()["responses"]["upsert"]["400"] >= 1
        assert p.upsert_stats.splits >= 1 and p.upsert_stats.max_request_bytes <= packing.MAX_REQUEST_BYTES
        assert p._max_request_bytes < packing.MAX_REQUEST_BYTES  # remembered for the next batch
        assert p.count() == 300
    finally:
        p.close()


def test_concurrent_upserts_land_every_record(srv: PineconeLocal) -> None:
    p = created(srv, dim=256, concurrency=8)
    try:
        batch = make_batch(4000, 256)
        srv.reset_stats()
        p.upsert(batch)
        assert srv.stats()["requests"]["upsert"] >= 4 and p.upsert_stats.requests >= 4
        assert p.count() == 4000
        # Duplicate ids inside one batch: the last occurrence wins, whatever request order.
        dup = make_batch(3, 256, seed=9)
        dup.ids = ["doc-00001", "doc-00002", "doc-00001"]
        p.upsert(dup)
        got = p.fetch(["doc-00001"])
        assert got.vectors.tobytes() == dup.vectors[2].tobytes()
        assert p.count() == 4000
    finally:
        p.close()


def test_sparse_values_round_trip_on_a_hybrid_index(srv: PineconeLocal) -> None:
    create = CreateSpec(dimension=4, metric="dotproduct", sparse=True)
    p = PineconeProvider(replace(store(srv, "hybrid"), create=create))
    try:
        p.create_collection(CollectionSchema(dimension=4, metric="dotproduct", id_type="text"))
        batch = make_batch(3, 4, texts=False)
        batch.extra["sparse"] = [{"indices": [1, 7], "values": [0.5, 0.25]}, None, {"indices": [3], "values": [1.0]}]
        p.upsert(batch)
        got = scan_all(p, 10)[0]
        assert got.extra["sparse"] == batch.extra["sparse"]
        assert p.inventory().sparse is True
    finally:
        p.close()


# ---- rules ------------------------------------------------------------------------------------


def bad_records() -> Batch:
    vectors = np.ones((9, 4), dtype=np.float32)
    vectors[5] = 0.0
    vectors[6, 1] = np.nan
    return Batch(
        ids=["ok", "x" * 513, "naïve", 17, "nested", "zero", "nan", "big", "clash"],
        vectors=vectors,
        metadata=[
            {"a": 1, "b": None},
            {},
            {},
            {"when": object()},
            {"obj": {"k": 1}, "nums": [1, 2]},
            {},
            {"f": float("inf")},
            {"huge": "y" * 41_000, "id64": 2**60},
            {"text": "other"},
        ],
        texts=[None, None, None, None, None, None, None, None, "mine"],
        extra={"sparse": [{"indices": [1], "values": [0.5]}] + [None] * 8},
    )


def test_lint_sample_reports_stable_codes() -> None:
    found = lint_sample(bad_records(), metric="cosine")
    by_id = {(f.record_id, f.code) for f in found}
    assert ("ok", "PC002") in by_id and ("ok", "PC009") in by_id
    assert ("x" * 513, "PC006") in by_id
    assert ("naïve", "PC007") in by_id
    assert (17, "PC015") in by_id and (17, "PC005") in by_id
    assert ("nested", "PC003") in by_id and ("nested", "PC004") in by_id
    assert ("zero", "PC010") in by_id and ("nan", "PC011") in by_id and ("nan", "PC005") in by_id
    assert ("big", "PC001") in by_id and ("big", "PC014") in by_id
    assert ("clash", "PC012") in by_id
    assert {f.code for f in lint_sample(bad_records(), dimension=30_000)} >= {"PC008"}
    summary = {f.code: f for f in summarize(found)}
    assert summary["PC003"].count == 1 and "nested" in summary["PC003"].message
    assert all(f.hint for f in found) and summary["PC010"].severity == "error"
    clean = make_batch(5, 4)
    clean.metadata = [{k: v for k, v in m.items() if v is not None} for m in clean.metadata]
    assert lint_sample(clean, metric="cosine") == []


def test_a_rule_breaking_record_raises_naming_its_id(srv: PineconeLocal) -> None:
    p = created(srv, dim=4)
    try:
        good = make_batch(20, 4)
        bad = make_batch(1, 4, start=99)
        bad.metadata[0]["address"] = {"city": "Berlin"}
        mixed = Batch(ids=good.ids + bad.ids, vectors=np.concatenate([good.vectors, bad.vectors]),
                      metadata=good.metadata + bad.metadata, texts=(good.texts or []) + (bad.texts or []))
        with pytest.raises(TerminalError, match=r"record 'doc-00099'.*'address' is a nested object \[PC003\]") as err:
            p.upsert(mixed)
        assert "nested_metadata: json" in (err.value.hint or "")
        assert p.count() == 0  # checked before anything was sent: never half a batch
        with pytest.raises(TerminalError, match=r"record 'zero'.*all zeros \[PC010\]"):
            p.upsert(Batch(ids=["zero"], vectors=np.zeros((1, 4), np.float32), metadata=[{}]))
        with pytest.raises(TerminalError, match="dimension 4"):
            p.upsert(make_batch(1, 5))
        # Opting in stores nested values as JSON strings.
        lenient = provider(srv, nested_metadata="json")
        lenient.upsert(bad)
        assert lenient.fetch(["doc-00099"]).metadata[0]["address"] == '{"city":"Berlin"}'
        lenient.close()
    finally:
        p.close()


def test_wrong_api_key_is_terminal_and_never_shown(srv: PineconeLocal) -> None:
    secret = "pcsk_SECRET-0123456789"
    p = provider(srv, api_key=secret)
    with pytest.raises(TerminalError) as err:
        p.inventory()
    e = err.value
    assert e.message == "Pinecone rejected the API key while describing index 'docs'"
    assert "api_key" in (e.hint or "")
    rendered = "".join(traceback.format_exception(e)) + repr(e) + e.one_line() + repr(p)
    assert secret not in rendered and secret[-4:] not in repr(p)
    p.close()


# ---- faults -----------------------------------------------------------------------------------


def test_ten_percent_faults_still_give_exact_counts(srv: PineconeLocal) -> None:
    p = created(srv, dim=384, concurrency=4)
    try:
        src = make_batch(5000, 384)
        srv.set_faults(rate_429=0.05, rate_503=0.03, rate_drop=0.02, retry_after=0, retry_after_503=0, seed=11)
        srv.reset_stats()
        for start in range(0, 5000, 1000):
            p.upsert(src.take(range(start, start + 1000)))
        stats = srv.stats()
        assert sum(stats["faults"].values()) > 0
        srv.clear_faults()
        assert p.count() == 5000
        srv.set_faults(rate_429=0.05, rate_503=0.03, rate_drop=0.02, retry_after=0, retry_after_503=0, seed=12)
        back = scan_all(p, 1000)
        assert checksum(*back).to_json() == checksum(src).to_json()
    finally:
        srv.clear_faults()
        p.close()


def test_our_retries_outlast_the_sdks(srv: PineconeLocal) -> None:
    p = created(srv, dim=4)
    try:
        # Five 429s in a row: the SDK gives up after four attempts, vecmig's retry goes on.
        srv.set_faults(script=["429"] * 5, retry_after=0, endpoints=["upsert"])
        srv.reset_stats()
        p.upsert(make_batch(10, 4))
        assert srv.stats()["responses"]["upsert"] == {"429": 5, "200": 1}
        assert p.count() == 10
        # A persistent 503 ends as a TransientError (the executor's retry/resume territory).
        srv.set_faults(rate_503=1.0, retry_after_503=0, endpoints=["describe_index_stats"])
        with pytest.raises(TransientError, match="503"):
            p.count()
    finally:
        srv.clear_faults()
        p.close()


# ---- deleting ---------------------------------------------------------------------------------


def test_delete_by_ids_and_drop_index(srv: PineconeLocal) -> None:
    p = created(srv, dim=4)
    try:
        p.upsert(make_batch(1500, 4, texts=False))
        srv.reset_stats()
        p.delete([*(f"doc-{i:05d}" for i in range(1200)), "missing"])
        assert srv.stats()["requests"]["delete"] == 2  # at most 1000 ids per request
        assert p.count() == 300
        other = provider(srv, namespace="empty")
        other.delete(["doc-01400"])  # 404 for a namespace holding nothing: nothing to delete
        other.close()
        p.drop_collection()
        assert p.inventory().exists is False
        p.drop_collection()  # dropping what is gone is a no-op
    finally:
        p.close()


# ---- pure functions ---------------------------------------------------------------------------


def test_compact_float32_is_exact_and_short() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.standard_normal(20_000).astype(np.float32),
        (rng.standard_normal(5_000) * 1e-3).astype(np.float32),
        np.array([0.0, -0.0, 0.1, 1.5, 1e-30, 3e38, 16777216.0, np.pi, 1e-13, 2.0**20], dtype=np.float32),
    ])
    out = packing.compact_float32(values)
    assert out.astype(np.float32).view(np.uint32).tolist() == values.view(np.uint32).tolist()
    # Parsed straight from the decimal text into float32 (no float64 step): same bits.
    direct = np.array([repr(x) for x in out.tolist()]).astype(np.float32)
    assert direct.view(np.uint32).tolist() == values.view(np.uint32).tolist()
    short = len(json.dumps(out.tolist()))
    assert short < 0.6 * len(json.dumps(values.astype(np.float64).tolist()))
    assert repr(float(out[-8])) == "0.1"


def test_pack_respects_both_limits() -> None:
    sizes = [30_000] * 100 + [10] * 2500
    chunks = packing.pack(sizes, overhead=20)
    assert all(len(c) <= 1000 and c.nbytes <= packing.MAX_REQUEST_BYTES for c in chunks)
    assert sum(len(c) for c in chunks) == 2600 and chunks[0].start == 0 and chunks[-1].stop == 2600
    assert chunks[0].nbytes == 20 + sum(sizes[: chunks[0].stop]) + chunks[0].stop - 1
    with pytest.raises(packing.OversizeRecord):
        packing.pack([3 * 1024 * 1024], overhead=20)


def test_fetch_groups_keep_urls_short() -> None:
    ids = [f"doc#{i:06d}/chunk&{i % 7}" for i in range(3000)]
    groups = packing.fetch_groups(ids, namespace="eu west")
    assert [i for g in groups for i in g] == ids
    for g in groups:
        assert len(g) <= 1000
        target = "/vectors/fetch?" + "&".join(f"ids={quote_plus(i)}" for i in g) + "&namespace=eu+west"
        assert len(target) <= packing.MAX_FETCH_URL
    assert len(packing.fetch_groups([f"{i}" for i in range(2500)], namespace="", max_url=100_000)) == 3  # 1000-id cap


def test_pricing_table_and_estimates() -> None:
    table = pricing.STANDARD
    assert table.as_of and "pinecone.io/pricing" in table.source
    est = pricing.estimate(1_000_000, pricing.record_bytes(1536, metadata_bytes=1000, id_bytes=24), months=1)
    assert est["write_units"] == pytest.approx(1_000_000 * 7_168 / 1024, rel=1e-3)
    assert est["cost_usd"]["pinecone_write_units"] == pytest.approx(est["write_units"] / 1e6 * 4.0, abs=1e-3)
    assert est["storage_gb_month"] == pytest.approx(7.168, rel=1e-3)
    assert est["cost_usd"]["pinecone_storage"] == pytest.approx(7.168 * 0.33, rel=1e-3)
    reads = pricing.estimate(10_000, 1000, write=False, read=True)
    assert reads["read_units"] == 100 + 1000 and "pinecone_write_units" not in reads["cost_usd"]
    tiny = pricing.write_usage(3, 100)  # the 5 WU minimum per request dominates small writes
    assert tiny.write_units == 5
    assert table.override({"write_units_per_million": 5}).write_units_per_million == 5.0
    with pytest.raises(ValueError, match="unknown"):
        table.override({"write_unit": 1})


def test_throughput_model_scales_with_concurrency_and_size() -> None:
    one, four = model_throughput(concurrency=1), model_throughput(concurrency=4)
    assert 0 < one.write_records_per_s < four.write_records_per_s
    small, wide = model_throughput(384, 200), model_throughput(3072, 20_000)
    assert wide.write_records_per_s < small.write_records_per_s
    assert PineconeProvider.throughput.spread == 3.0
