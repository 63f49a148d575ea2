"""vecmig.embed_change: which settings count as another way of making the vectors, and the
"everything changed" diff the planner then uses."""

from __future__ import annotations

from dataclasses import replace

from vecmig.actions.params import EmbedParams
from vecmig.diff import RecordDiff, ShardDelta
from vecmig.diff.model import RecordCounts
from vecmig.embed_change import Written, changed, everything_changed

MINI = EmbedParams(model="all-MiniLM-L6-v2", text="text", identity="local:all-MiniLM-L6-v2@aaaa", dimension=384)


def test_only_what_changes_the_written_vectors_or_fields_is_a_change() -> None:
    was = Written(2, MINI)
    assert changed(was, MINI) is None
    assert changed(was, replace(MINI, batch_size=8, device="cpu", truncate=True)) is None  # same vectors
    assert changed(None, MINI) is None and changed(was, None) is None
    weights = changed(was, replace(MINI, identity="local:all-MiniLM-L6-v2@bbbb"))
    assert weights == ("the embedding model changed from local:all-MiniLM-L6-v2@aaaa to local:all-MiniLM-L6-v2@bbbb "
                       "since round 2: every record is embedded again")
    api = changed(was, replace(MINI, model="m", identity="api:http://h/v1|m", dimension=256))
    assert api is not None and "to api:http://h/v1|m" in api and "dimension changed from 384 to 256" in api
    assert "keep_old changed from None to old" in (changed(was, replace(MINI, keep_old="old")) or "")
    assert "copied the source's vectors" in (changed(Written(1, None), MINI) or "")


def test_everything_changed_moves_every_held_record_and_copies_shards_whole() -> None:
    diff = RecordDiff(method="scan", shards=(
        ShardDelta(0, RecordCounts(add=1, change=2, unchanged=7), ids=("a", "b", "c")),
        ShardDelta(1, RecordCounts(unchanged=5), ids=())), delete_ids=("z",), delete_count=1,
        source_records=15, target_records=15)
    out = everything_changed(diff)
    assert [s.counts for s in out.shards] == [RecordCounts(add=1, change=9), RecordCounts(change=5)]
    assert all(s.ids is None for s in out.shards)
    assert out.counts == RecordCounts(add=1, change=14, delete=1) and out.delete_ids == ("z",)
