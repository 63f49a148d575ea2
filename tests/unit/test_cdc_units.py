"""CDC pieces that need no server: the pgoutput decoder on bytes captured from PostgreSQL 16,
feed names, and the spec keys of strategy cdc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecmig.errors import SpecError
from vecmig.providers.pgvector import pgoutput
from vecmig.providers.pgvector.changefeed import MAX_NAME, feed_name
from vecmig.spec_loader import load_spec_text

# Captured from pg_logical_slot_peek_binary_changes(slot, NULL, NULL, 'proto_version', '1',
# 'publication_names', pub) on pgserver's PostgreSQL 16 after, on table docs(id bigint primary
# key, embedding vector(3), body text, lang text): INSERT (1), (2, 10 kB body); UPDATE 2;
# UPDATE id 1 -> 3; DELETE 2; TRUNCATE.
MESSAGES = [bytes.fromhex(h) for h in json.loads(
    (Path(__file__).parents[1] / "fixtures" / "pgoutput_v1_messages.json").read_text())]


def test_each_message_kind_decodes() -> None:
    decoded = [pgoutput.decode(m) for m in MESSAGES]
    kinds = [type(m).__name__ for m in decoded]
    assert kinds == ["Begin", "Other", "Relation", "Insert", "Insert", "Commit",
                     "Begin", "Update", "Commit", "Begin", "Update", "Commit", "Begin", "Delete", "Commit",
                     "Begin", "Other", "Relation", "Truncate", "Commit"]
    rel = decoded[2]
    assert isinstance(rel, pgoutput.Relation)
    assert (rel.namespace, rel.name, rel.replica_identity) == ("public", "docs", "d")
    assert [(c.name, c.type_oid, c.key) for c in rel.columns] == [
        ("id", 20, True), ("embedding", rel.columns[1].type_oid, False), ("body", 25, False), ("lang", 25, False)]
    ins = decoded[3]
    assert isinstance(ins, pgoutput.Insert) and ins.new == ("1", "[1,2,3]", "a", "en")
    big = decoded[4]
    assert isinstance(big, pgoutput.Insert) and big.new[2] == "x" * 10000
    moved = decoded[10]
    assert isinstance(moved, pgoutput.Update)
    assert moved.old_kind == "K" and moved.old == ("1", None, None, None) and moved.new[0] == "3"
    gone = decoded[13]
    assert isinstance(gone, pgoutput.Delete) and gone.old == ("2", None, None, None)
    trunc = decoded[18]
    assert isinstance(trunc, pgoutput.Truncate) and trunc.relids == (rel.relid,)
    begin, commit = decoded[0], decoded[5]
    assert isinstance(begin, pgoutput.Begin) and isinstance(commit, pgoutput.Commit)
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
    assert begin.commit_time == commit.commit_time


def test_transactions_group_changes_in_commit_order() -> None:
    txs = pgoutput.transactions(MESSAGES)
    assert [[(op, v[0]) for op, _, v, _ in t.changes] for t in txs] == [
        [("I", "1"), ("I", "2")], [("U", "2")], [("U", "3")], [("D", "2")], []]
    assert [r.name for r in txs[-1].truncated] == ["docs"]
    ends = [t.end_lsn for t in txs]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)
    # An update that changed the key carries the old key: both ids were touched.
    _, _, new, old = txs[2].changes[0]
    assert old is not None and (old[0], new[0]) == ("1", "3")


def test_unchanged_toast_and_nulls_in_tuples() -> None:
    # relid 7, new tuple: id "5", NULL, unchanged TOAST value
    msg = b"U" + (7).to_bytes(4, "big") + b"N" + (3).to_bytes(2, "big") + b"t" + (1).to_bytes(4, "big") + b"5nu"
    decoded = pgoutput.decode(msg)
    assert isinstance(decoded, pgoutput.Update)
    assert decoded.new == ("5", None, pgoutput.UNCHANGED) and decoded.old is None


@pytest.mark.parametrize("bad", [b"", b"Z", b"I\x00\x00\x00\x07X", b"B\x00\x00"])
def test_malformed_messages_are_refused(bad: bytes) -> None:
    with pytest.raises(pgoutput.DecodeError):
        pgoutput.decode(bad)


def test_lsn_text_round_trip() -> None:
    for text in ("0/0", "0/151F7A8", "16/B374D848", "FFFFFFFF/FFFFFFFF"):
        assert pgoutput.format_lsn(pgoutput.parse_lsn(text)) == text
    assert pgoutput.parse_lsn("1/0") > pgoutput.parse_lsn("0/FFFFFFFF")


def test_feed_names_are_deterministic_short_and_per_database() -> None:
    a = feed_name("docs-upgrade", "app")
    assert a == feed_name("docs-upgrade", "app") and a.startswith("vecmig_docs_upgrade_")
    assert a != feed_name("docs-upgrade", "other")
    long = feed_name("m" * 63, "app")
    assert len(long) <= MAX_NAME and long != feed_name("m" * 62 + "n", "app")


SPEC = """
version: 1
name: live
source: {provider: pgvector, connection: {dsn: "postgresql://h/db"}, collection: docs}
target: {provider: pgvector, connection: {dsn: "postgresql://h/db"}, collection: docs_v2}
strategy: {type: STRATEGY}
"""


def load(strategy: str):  # type: ignore[no-untyped-def]
    return load_spec_text(SPEC.replace("{type: STRATEGY}", strategy), file="s.yaml", base_dir=Path("/tmp"), env={})


def test_max_lag_takes_records_or_seconds() -> None:
    s = load("{type: cdc, max_lag: 250, freeze_writes: true}").strategy
    assert (s.type, s.max_lag, s.max_lag_seconds, s.freeze_writes) == ("cdc", 250, None, True)
    s = load("{type: cdc, max_lag: 5s}").strategy
    assert s.max_lag_seconds == 5.0
    assert load("{type: cdc}").strategy.max_lag == 100


@pytest.mark.parametrize(("strategy", "says"), [
    ("{type: cdc, max_lag: 5m}", "'5m' is not a lag: write a number of records (100) or of seconds"),
    ("{type: cdc, max_lag: -1}", "/strategy/max_lag"),
    ("{type: cdc, max_lag: [1]}", "e.g. `max_lag: 100` (records) or `max_lag: 5s` (seconds)"),
    ("{type: big-bang, max_lag: 5}", "applies only to cdc"),
    ("{type: big-bang, freeze_writes: true}", "strategy.freeze_writes applies only to cdc"),
])
def test_bad_lag_settings_are_one_clear_error(strategy: str, says: str) -> None:
    with pytest.raises(SpecError) as info:
        load(strategy)
    line = info.value.one_line()
    assert says in line and "\n" not in line
