"""StateStore.checkpoint, the per-batch hot path: one upsert, committed when it returns.

On SQLite it goes through a dedicated sqlite3 connection; on PostgreSQL through SQLAlchemy.
Both must insert the first cursor row, accumulate totals after, stay exact under many
threads, survive a SIGKILL right after returning, and report a state that cannot be written
as one clear StateError, like every other state write.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vecmig.errors import StateError
from vecmig.state.store import StateStore

ROUND = 1
ACTIONS = [f"copy.shard[{i}]" for i in range(4)]


def _actions() -> list[dict[str, object]]:
    return [{"id": a, "kind": "copy_shard", "estimate": {"seconds_low": 1.0, "seconds_high": 2.0}} for a in ACTIONS]


def _open(location: str | Path, *, create: bool = True) -> StateStore:
    if isinstance(location, Path):
        store = StateStore.open("ckpt", location, None, create=create)
    else:
        store = StateStore.open("ckpt", None, location, create=create)
    assert store is not None
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    if request.param == "sqlite":
        return tmp_path / "state" / "ckpt.db"
    return str(request.getfixturevalue("pg_db"))


@pytest.fixture
def store(location: str | Path) -> Iterator[StateStore]:
    s = _open(location)
    s.start_round(ROUND, "p" * 64, "s" * 64, "{}", _actions(), "", "")
    try:
        yield s
    finally:
        s.close()


def test_first_checkpoint_inserts_later_ones_accumulate(store: StateStore) -> None:
    a, b = ACTIONS[0], ACTIONS[1]
    assert store.cursor(ROUND, a) is None
    store.checkpoint(ROUND, a, {"after": 100}, 100, 4000, {"xor": "ab"})
    row = store.cursor(ROUND, a)
    assert row is not None
    assert (json.loads(row["cursor_json"]), row["records_done"], row["bytes_done"]) == ({"after": 100}, 100, 4000)
    assert json.loads(row["checksum_json"]) == {"xor": "ab"}
    first_updated = row["updated"]

    store.checkpoint(ROUND, a, {"after": 150}, 50, 2000)
    row = store.cursor(ROUND, a)
    assert row is not None
    # The cursor is replaced, the totals add up, the checksum is the latest one given (none here).
    assert (json.loads(row["cursor_json"]), row["records_done"], row["bytes_done"]) == ({"after": 150}, 150, 6000)
    assert row["checksum_json"] is None
    assert row["updated"] >= first_updated

    # Other actions, and the same action in another round, have rows of their own.
    assert store.cursor(ROUND, b) is None
    store.checkpoint(ROUND + 1, a, "opaque", 7, 70)
    other = store.cursor(ROUND + 1, a)
    assert other is not None and (json.loads(other["cursor_json"]), other["records_done"]) == ("opaque", 7)
    assert store.cursor(ROUND, a)["records_done"] == 150  # type: ignore[index]
    assert len(store.all_cursors()) == 2


def test_concurrent_checkpoints_sum_exactly(store: StateStore) -> None:
    """Eight shard threads (two per cursor row), a reader and an audited writer, all at once."""
    per_thread = 120
    threads = 8
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: dict[str, list[int]] = {a: [] for a in ACTIONS}
    start = threading.Barrier(threads + 2)

    def shard(i: int) -> None:
        try:
            start.wait()
            for k in range(per_thread):
                store.checkpoint(ROUND, ACTIONS[i % 4], {"thread": i, "k": k}, i + 1, 10 * (i + 1))
        except BaseException as e:  # reported below
            errors.append(e)

    def reader() -> None:
        try:
            start.wait()
            while not stop.is_set():
                for r in store.all_cursors():
                    seen[r["action_id"]].append(r["records_done"])
        except BaseException as e:
            errors.append(e)

    def auditor() -> None:
        try:
            start.wait()
            for k in range(20):
                store.audit_event("test_event", {"k": k})
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=shard, args=(i,)) for i in range(threads)]
    others = [threading.Thread(target=reader), threading.Thread(target=auditor)]
    for th in pool + others:
        th.start()
    for th in pool:
        th.join()
    stop.set()
    for th in others:
        th.join()
    assert not errors, errors

    for j, a in enumerate(ACTIONS):
        # Threads j and j + 4 write action j: (j+1) and (j+5) records per checkpoint.
        want = per_thread * ((j + 1) + (j + 5))
        row = store.cursor(ROUND, a)
        assert row is not None
        assert (row["records_done"], row["bytes_done"]) == (want, 10 * want)
        # A reader only ever sees committed totals, so they never go backwards.
        assert seen[a] == sorted(seen[a])
    ok, found = store.verify_chain()
    assert ok, found


def test_two_stores_on_one_file_queue_for_the_write_lock(tmp_path: Path) -> None:
    """Two stores on one SQLite file (as two processes would be): neither fails, nothing is lost."""
    db = tmp_path / "ckpt.db"
    first = _open(db)
    first.start_round(ROUND, "p" * 64, "s" * 64, "{}", _actions(), "", "")
    second = _open(db)
    errors: list[BaseException] = []

    def work(s: StateStore, offset: int) -> None:
        try:
            for k in range(300):
                s.checkpoint(ROUND, ACTIONS[(k + offset) % 2], {"k": k}, 1, 1)
                if k % 50 == 0:
                    s.audit_event("test_event", {"k": k})  # a SQLAlchemy writer in between
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=work, args=(s, i)) for i, s in enumerate([first, second, first, second])]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    try:
        assert not errors, errors
        assert [first.cursor(ROUND, a)["records_done"] for a in ACTIONS[:2]] == [600, 600]  # type: ignore[index]
        assert second.verify_chain()[0]
    finally:
        first.close()
        second.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vecmig.state.store import StateStore
    where = sys.argv[1]
    store = StateStore.open("ckpt", None if "://" in where else Path(where), where if "://" in where else None,
                            create=False)
    for k in range(1, 100_000):
        store.checkpoint(1, "copy.shard[0]", {"after": k}, 1, 3)
        print(k, flush=True)  # only after checkpoint() returned
    time.sleep(60)
""")


def test_checkpoint_survives_sigkill(location: str | Path) -> None:
    s = _open(location)
    s.close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(location)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = 0
    try:
        for line in child.stdout:
            last = int(line)
            if last >= 150:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert last >= 150, f"the child stopped after {last} checkpoints"
    s = _open(location, create=False)
    try:
        row = s.cursor(1, "copy.shard[0]")
    finally:
        s.close()
    assert row is not None
    # Every checkpoint that returned is there, and cursor and totals moved together.
    assert row["records_done"] >= last
    assert json.loads(row["cursor_json"]) == {"after": row["records_done"]}
    assert row["bytes_done"] == 3 * row["records_done"]


def test_close_closes_the_checkpoint_connection(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.db"
    s = _open(db)
    s.checkpoint(ROUND, ACTIONS[0], 1, 1, 1)
    s.close()
    # SQLite removes the WAL when its last connection closes: a checkpoint connection left
    # open would keep it.
    assert not Path(f"{db}-wal").exists()
    s = _open(db, create=False)  # and a closed store reopens to where it was
    try:
        s.checkpoint(ROUND, ACTIONS[0], 2, 1, 1)
        assert s.cursor(ROUND, ACTIONS[0])["records_done"] == 2  # type: ignore[index]
    finally:
        s.close()


@contextlib.contextmanager
def _immutable(*paths: Path) -> Iterator[None]:
    # As in tests/chaos/test_state_disk.py: chmod does not stop root, chattr +i does. The
    # test command runs as root (CI does); elsewhere this fails rather than skip unseen.
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=False)


def test_read_only_state_is_one_clear_state_error(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    db = state_dir / "ckpt.db"
    s = _open(db)
    s.checkpoint(ROUND, ACTIONS[0], 1, 5, 5)
    s.close()
    keep = sqlite3.connect(db)  # keeps the WAL and its index in place, so the store still opens for reading
    keep.execute("SELECT count(*) FROM meta").fetchall()
    try:
        with _immutable(state_dir, *state_dir.iterdir()):
            s = _open(db, create=False)
            try:
                with pytest.raises(StateError) as err:
                    s.checkpoint(ROUND, ACTIONS[0], 2, 5, 5)
                line = err.value.one_line()
                assert line.startswith(f"cannot write the state store {db}: ")
                assert "readonly database" in line and "writable" in line and "\n" not in line
                # Same words as every other state write (SQLAlchemy's path).
                with pytest.raises(StateError) as other:
                    s.audit_event("test_event", {})
                assert other.value.one_line() == line
            finally:
                s.close()
        s = _open(db, create=False)
        try:
            s.checkpoint(ROUND, ACTIONS[0], 3, 5, 5)  # writable again: the refused batch was not counted
            assert s.cursor(ROUND, ACTIONS[0])["records_done"] == 10  # type: ignore[index]
        finally:
            s.close()
    finally:
        keep.close()


@contextlib.contextmanager
def _tiny_disk(path: Path) -> Iterator[Path]:
    # Needs root, as tests/chaos/test_state_disk.py does: fails rather than skip unseen.
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_is_one_clear_state_error_and_recovers(tmp_path: Path) -> None:
    with _tiny_disk(tmp_path / "disk") as disk:
        db = disk / "ckpt.db"
        s = _open(db)
        try:
            s.checkpoint(ROUND, ACTIONS[0], {"k": 0}, 1, 1)
            filler = disk / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            done = 1
            pad = "x" * 50_000  # a cursor big enough that the WAL must grow
            with pytest.raises(StateError) as err:
                for k in range(1, 200):
                    s.checkpoint(ROUND, ACTIONS[0], {"k": k, "pad": pad}, 1, 1)
                    done += 1
            line = err.value.one_line()
            assert line.startswith(f"cannot write the state store {db}: database or disk is full — ")
            assert "\n" not in line
            filler.unlink()
            s.checkpoint(ROUND, ACTIONS[0], {"k": "after"}, 1, 1)  # space again: the same store carries on
            row = s.cursor(ROUND, ACTIONS[0])
            assert row is not None
            assert (row["records_done"], json.loads(row["cursor_json"])) == (done + 1, {"k": "after"})
        finally:
            s.close()
