"""The provider contract: every store in ``tests/contract/stores/`` passes every case against the
real store (see ``conftest.py`` for discovery, ``kit.py`` for a store's module).

Each case is one test per store (``test_scan_resumes_from_any_cursor[pgvector]``). What a store
declares it lacks (``StoreUnderTest.lacks``) is not asked of it as an exact round trip; instead the
case checks that the store refuses such a value naming the record, or keeps it under the
normalisation it declares (never a silent change), and the terminal summary lists it.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from tests.contract.conftest import needs
from tests.contract.harness import (
    IDS,
    LACK_KEYS,
    TEXTS,
    VALUES,
    Store,
    assert_same,
    concat,
    ids_of,
    json_round_trip,
    records,
    refused_or_normalised,
    same_value,
    store_block,
    ulps_apart,
    vectors,
)
from tests.contract.kit import Faults
from vecmig.errors import TerminalError, VecmigError
from vecmig.executor import apply_plan
from vecmig.planner import make_plan
from vecmig.providers.memory import store as memory
from vecmig.records import Batch
from vecmig.refresh import refresh
from vecmig.spec_loader import load_spec_text
from vecmig.state.store import StateStore


def test_declared_lacks_are_known_keys_with_reasons(store: Store) -> None:
    unknown = sorted(set(store.sut.lacks) - LACK_KEYS)
    assert not unknown, f"unknown lacks keys {unknown}; known: {sorted(LACK_KEYS)}"
    assert all(why.strip() for why in store.sut.lacks.values()), "every lacks entry says why"
    if store.caps.exact_numbers:
        said = sorted(k for k in ("metadata:int", "metadata:float") if store.lacks(k))
        assert not said, f"Capabilities.exact_numbers says numbers keep their type, yet the store lacks {said}"
    for key, why in sorted(store.sut.lacks.items()):
        store.leave_out(key, why)
    assert store.sut.max_batch >= 1


# ---- scan ---------------------------------------------------------------------------------------


def test_scan_resumes_from_any_cursor(store: Store) -> None:
    want = records(store, 37, seed=1)
    name = store.seeded("scan", want)
    try:
        with store.open(name, "source") as p:
            batches = list(p.scan(None, None, 5))
            again = [rid for b in p.scan(None, None, 5) for rid in b.ids]
            order = [rid for b in batches for rid in b.ids]
            assert again == order, "two scans give the same order"
            assert all(len(b) <= 5 for b in batches), f"no batch over batch_size: {[len(b) for b in batches]}"
            store.same(concat(batches), want, "a full scan")
            done = 0
            for k, batch in enumerate(batches):
                done += len(batch)
                cursor = json_round_trip(batch.cursor)  # as the state keeps it
                rest = [rid for b in p.scan(None, cursor, 5) for rid in b.ids]
                assert rest == order[done:], f"resumed after batch {k + 1}: exactly the records after it"
    finally:
        store.drop(name)


def test_shards_cover_every_record_once(store: Store) -> None:
    want = records(store, 41, seed=2)
    name = store.seeded("shards", want)
    try:
        with store.open(name, "source") as p:
            shards = [json_round_trip(s) for s in p.shards(p.inventory(), 10)]
            got: list[Batch] = []
            for shard in shards:
                batches = list(p.scan(shard, None, 4))
                got.extend(batches)
                order = [rid for b in batches for rid in b.ids]
                done = 0
                for k, batch in enumerate(batches):
                    done += len(batch)
                    rest = [rid for b in p.scan(shard, json_round_trip(batch.cursor), 4) for rid in b.ids]
                    assert rest == order[done:], f"shard {shard}: resumed after batch {k + 1}"
            store.same(concat(got), want, f"{len(shards)} shard(s) together")
    finally:
        store.drop(name)


def test_an_empty_collection_reads_as_empty(store: Store) -> None:
    shape = records(store, 3, seed=16)
    name = store.fresh("empty")
    store.create(name, shape)
    try:
        if not store.lacks("delete"):  # emptied by deletes; else as created
            store.write(name, shape)
            store.delete(name, shape.ids)
        with store.open(name, "source") as p:
            assert p.count() == 0
            assert p.inventory().exists, "emptied is not dropped"
            assert sum(len(b) for b in p.scan(None, None, 10)) == 0
            shards = p.shards(p.inventory(), 10)
            assert sum(len(b) for s in shards for b in p.scan(json_round_trip(s), None, 10)) == 0
            assert len(p.fetch(shape.ids)) == 0
    finally:
        store.drop(name)


# ---- writes -------------------------------------------------------------------------------------


def test_upsert_is_idempotent(store: Store) -> None:
    want = records(store, 30, seed=3)
    name = store.fresh("idem")
    store.create(name, want)
    try:
        store.write(name, want)
        store.write(name, want)  # the batch replayed after a kill
        store.write(name, want.take(range(10, 20)))
        with store.open(name, "source") as p:
            assert p.count() == 30
        store.same(store.read(name), want, "after replays")
    finally:
        store.drop(name)


def test_upsert_overwrites_an_existing_id(store: Store) -> None:
    first = records(store, 20, seed=4)
    name = store.fresh("overwrite")
    store.create(name, first)
    try:
        store.write(name, first)
        second = records(store, 6, start=7, seed=99)
        for meta in second.metadata:
            meta["lang"] = "changed"
        store.write(name, second)
        want = concat([first.take([*range(0, 7), *range(13, 20)]), second])
        store.same(store.read(name), want, "after overwriting 6 ids")
        with store.open(name, "source") as p:
            assert p.count() == 20
    finally:
        store.drop(name)


def test_delete_removes_exactly_the_ids_given(store: Store) -> None:
    want = records(store, 25, seed=5)
    name = store.fresh("delete")
    store.create(name, want)
    try:
        store.write(name, want)
        gone = [want.ids[i] for i in (0, 3, 4, 17, 24)]
        missing = ids_of(store.id_kind, 2, start=900)
        if store.lacks("delete"):
            store.leave_out("delete", store.lacks("delete") or "")
            with pytest.raises((TerminalError, NotImplementedError)):
                store.delete(name, gone)  # refused, never a delete that does nothing
            return
        store.delete(name, [*gone, *missing])
        store.delete(name, gone)  # deleting again is harmless
        keep = [i for i, rid in enumerate(want.ids) if rid not in gone]
        store.same(store.read(name), want.take(keep), "after deleting 5 ids and 2 missing ones")
        with store.open(name, "source") as p:
            assert p.count() == 20
    finally:
        store.drop(name)


def test_fetch_returns_exactly_the_existing_ids(store: Store) -> None:
    want = records(store, 15, seed=6)
    name = store.seeded("fetch", want)
    try:
        asked = [want.ids[i] for i in (14, 2, 9)] + ids_of(store.id_kind, 3, start=500)
        with store.open(name, "source") as p:
            got = p.fetch(asked)
            assert sorted(map(str, got.ids)) == sorted(str(want.ids[i]) for i in (14, 2, 9))
            store.same(got, want.take([14, 2, 9]), "fetched")
            assert len(p.fetch(ids_of(store.id_kind, 2, start=700))) == 0, "no record for ids that do not exist"
    finally:
        store.drop(name)


def test_large_batch_at_the_store_limit(store: Store) -> None:
    n = store.sut.max_batch
    want = records(store, n, seed=7)
    name = store.fresh("large")
    store.create(name, want)
    try:
        store.write(name, want)  # one upsert call of max_batch records
        with store.open(name, "source") as p:
            assert p.count() == n
        store.same(store.read(name), want, f"one batch of {n}")
    finally:
        store.drop(name)


# ---- namespaces ---------------------------------------------------------------------------------


@needs("namespaces")
def test_namespaces_are_kept_apart(store: Store) -> None:
    a, b = records(store, 12, seed=8), records(store, 12, seed=9)  # the same ids, other vectors
    name = store.fresh("namespaces")
    store.create(name, a)
    if store.lacks("namespaces"):
        # Namespaces that place records without scoping their ids (Milvus partitions): a namesake
        # in a second namespace must be refused, never moved there or merged.
        try:
            store.write(name, a, namespace="left")
            with pytest.raises(VecmigError):
                store.write(name, b, namespace="right")
            store.same(store.read(name, namespace="left"), a, "namespace left")
            store.leave_out("namespaces", store.lacks("namespaces") or "")
        finally:
            store.drop(name)
        return
    try:
        store.write(name, a, namespace="left")
        store.write(name, b, namespace="right")
        store.same(store.read(name, namespace="left"), a, "namespace left")
        store.same(store.read(name, namespace="right"), b, "namespace right")
        with store.open(name, "target", namespace="left") as p:
            p.delete([a.ids[0]])
            assert len(p.fetch([a.ids[0]])) == 0
        assert len(store.read(name, namespace="right")) == 12, "a delete in one namespace leaves the other"
    finally:
        store.drop(name)


def test_vectors_keep_their_float32_bits(store: Store) -> None:
    vecs = vectors(6, seed=10)
    edge = np.float32
    vecs[0, 1:4] = (edge(-0.0), edge(1e-45), np.finfo(np.float32).max)
    vecs[1, 1:4] = (np.finfo(np.float32).min, np.finfo(np.float32).tiny, edge(-1e-45))
    vecs[2, 1:4] = (edge(1.0000001), edge(3.4028235e38) / 3, edge(-0.0))
    want = Batch(ids=ids_of(store.id_kind, 6), vectors=vecs, metadata=[{"k": "v"} for _ in range(6)])
    name = store.fresh("bits")
    store.create(name, want)
    try:
        store.write(name, want)
        got = store.read(name)
        by_id = {str(rid): got.vectors[i] for i, rid in enumerate(got.ids)}
        ulps = store.caps.vector_ulps
        for i, rid in enumerate(want.ids):
            back = by_id[str(rid)]
            if ulps == 0:
                assert back.astype("<f4").tobytes() == vecs[i].astype("<f4").tobytes(), \
                    f"record {rid!r}: vector bits changed: {back.tolist()} != {vecs[i].tolist()}"
            else:
                apart = int(ulps_apart(back, vecs[i]).max())
                assert apart <= ulps, f"record {rid!r}: {apart} ulp apart, the store declares {ulps}"
    finally:
        store.drop(name)


# ---- exact round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["int", "str"])
def test_ids_round_trip(store: Store, kind: str) -> None:
    ids = IDS[kind]
    batch = Batch(ids=list(ids), vectors=vectors(len(ids), seed=11), metadata=[{"k": "v"} for _ in ids])
    name = store.fresh(f"ids{kind}")
    store.create(name, batch)
    try:
        if store.lacks(f"ids:{kind}"):
            refused_or_normalised(store, name, batch, f"ids:{kind}")
            return
        store.write(name, batch)
        got = store.read(name)
        assert sorted(map(repr, got.ids)) == sorted(map(repr, ids)), "every id back with its type"
        assert_same(got, batch, "ids", strict=store.caps.exact_numbers)
        with store.open(name, "source") as p:
            fetched = p.fetch(list(reversed(ids)))
        assert sorted(map(repr, fetched.ids)) == sorted(map(repr, ids)), "fetch gives every id back with its type"
    finally:
        store.drop(name)


@pytest.mark.parametrize("kind", list(VALUES))
def test_metadata_round_trip(store: Store, kind: str) -> None:
    values = VALUES[kind]
    batch = Batch(ids=ids_of(store.id_kind, len(values)), vectors=vectors(len(values), seed=12),
                  metadata=[{"v": v, "other": "x"} for v in values])
    name = store.fresh(f"meta{kind}")
    store.create(name, batch)
    try:
        if store.lacks(f"metadata:{kind}"):
            refused_or_normalised(store, name, batch, f"metadata:{kind}")
            return
        store.write(name, batch)
        got = store.read(name)
        by_id = {str(rid): meta for rid, meta in zip(got.ids, got.metadata, strict=True)}
        for rid, want in zip(batch.ids, values, strict=True):
            back = by_id[str(rid)].get("v")
            if want is None:
                assert back is None, f"record {rid!r}: null came back as {back!r}"
            else:
                assert same_value(back, want), f"record {rid!r}: {want!r} ({type(want).__name__}) came back " \
                                               f"as {back!r} ({type(back).__name__})"
    finally:
        store.drop(name)


def test_text_round_trip(store: Store) -> None:
    batch = Batch(ids=ids_of(store.id_kind, len(TEXTS)), vectors=vectors(len(TEXTS), seed=13),
                  metadata=[{"k": "v"} for _ in TEXTS], texts=list(TEXTS))
    name = store.fresh("text")
    store.create(name, batch)
    try:
        if store.lacks("text"):
            refused_or_normalised(store, name, batch, "text")
            return
        store.write(name, batch)
        got = store.read(name)
        back = {str(rid): t for rid, t in zip(got.ids, got.texts or [None] * len(got), strict=True)}
        for rid, want in zip(batch.ids, TEXTS, strict=True):
            # A store may give no text back for an empty one: vecmig's canonical form holds both as "".
            assert (back[str(rid)] or "") == (want or ""), f"record {rid!r}: text {want!r} came back as " \
                                                           f"{back[str(rid)]!r}"
    finally:
        store.drop(name)


@needs("sparse")
def test_sparse_values_round_trip(store: Store) -> None:
    batch = records(store, 6, seed=14)
    batch.extra["sparse"] = [{"indices": [0, 7, 1000], "values": [0.5, -1.25, 3.0]}, None,
                             {"indices": [2**31 - 2], "values": [np.float32(1e-45).item()]},
                             {"indices": [5, 3], "values": [1.0, 2.0]}, None,
                             {"indices": [1], "values": [-0.0]}]
    name = store.fresh("sparse")
    store.create(name, batch, metric="dotproduct")  # sparse values need dotproduct (Pinecone)
    try:
        if store.lacks("sparse"):
            refused_or_normalised(store, name, batch, "sparse")
            return
        store.write(name, batch)
        store.same(store.read(name), batch, "sparse values")
    finally:
        store.drop(name)


@needs("sparse", False)
def test_sparse_values_are_refused_where_not_kept(store: Store) -> None:
    """A store without sparse values refuses a record carrying them, naming it, and writes nothing
    of the batch: every path that writes (a copy, a catch-up, a restore) gets the same answer."""
    batch = records(store, 4, seed=17)
    batch.extra["sparse"] = [None, None, {"indices": [3], "values": [0.5]}, None]
    name = store.fresh("nosparse")
    store.create(name, batch)
    try:
        with pytest.raises(TerminalError) as refused:
            store.write(name, batch)
        assert str(batch.ids[2]) in refused.value.one_line(), refused.value.one_line()
        with store.open(name, "source") as p:
            assert p.count() == 0, "a refused batch leaves nothing behind"
    finally:
        store.drop(name)


# ---- transient faults, through the engine ---------------------------------------------------------


def test_transient_faults_are_retried(store: Store, tmp_path: Path) -> None:
    """An apply (memory source → this store) under the store's own transient faults: the engine's
    copy retries from its last checkpoint and every record arrives once, exactly. A store with no
    faults to arm still gets the apply, unarmed (and the report says so)."""
    if store.sut.faults is None:
        store.leave_out("transient faults", "the store module arms none (StoreUnderTest.faults is None): "
                                            "the apply ran without faults")
    want = records(store, 60, seed=15)
    source = f"contract-src-{uuid.uuid4().hex[:8]}"
    name = store.fresh("faults")
    # The source is indexed for the metric the module's spec asks the target to be created with
    # (its target block carries that spec's create): the plan keeps it, as the other cases do.
    memory.get(source).seed("docs", want, metric=store.metric(name))
    try:
        arm = store.sut.faults or (lambda spec: nullcontext(Faults(spec, lambda: 0)))
        with arm(store.spec(name)) as faults:
            env: dict[str, str] = {}
            text = json.dumps({
                "version": 1, "name": "contract", "state": {"path": "state.db"},
                "source": {"provider": "memory", "connection": {"name": source}, "collection": "docs"},
                "target": store_block(faults.spec, env),
                "strategy": {"type": "big-bang", "batch_size": 10, "concurrency": 1},
            })
            spec = load_spec_text(text, file="spec.yaml", base_dir=tmp_path, env={**os.environ, **env})
            state = StateStore.open(spec.name, spec.state_path, spec.state_url, create=True, redactor=spec.redactor)
            assert state is not None
            try:
                apply_plan(spec, make_plan(spec, state, refresh(spec)), state, approval="auto-approve")
            finally:
                state.close()
            if store.sut.faults is not None:
                assert faults.injected() > 0, "the store injected no fault: the case proved nothing"
        with store.open(name, "source") as p:
            assert p.count() == 60
        store.same(store.read(name), want, "after an apply under transient faults", name=name)
    finally:
        store.drop(name)
        memory.get(source).collections.clear()


def test_report_of_what_was_left_out(store: Store) -> None:
    """Last for each store (its cases run together): what the store was not asked, and why. The
    same lines end the run's terminal summary; ``-s`` shows them here too."""
    print(f"\n{store.sut.provider}: {len(store.left_out)} case(s) left out")
    for note in store.left_out:
        case, _, why = note.partition(": ")
        assert why.strip(), f"{store.sut.provider}: {case} was left out without a reason"
        print(f"  {note}")
