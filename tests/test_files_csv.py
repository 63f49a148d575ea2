"""The CSV store end to end through the CLI: jsonl → csv → jsonl bit for bit, a foreign CSV (BOM,
CRLF, quoted newlines, plain cells), SIGKILL mid-apply then resume, rollback, hostile input."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.roundtrip import exact, records, write_jsonl
from tests.support.cli import spawn, vecmig
from vecmig.errors import TerminalError
from vecmig.providers import provider_class
from vecmig.spec import StoreSpec


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spec(tmp: Path, name: str, source: str, target: str, extra: str = "") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"version: 1\nname: {name}\nsource: {source}\ntarget: {target}\n{extra}")
    return path


def ok(*args: str) -> None:
    r = vecmig(*args)
    assert r.returncode == 0, r.stdout + r.stderr


def tricky(ids: str) -> list[dict[str, Any]]:
    """Records with every value kind a cell must keep apart, and the strings that look like others."""
    recs = records(range(1, 31), 2)
    looks = ["5", "", "true", "null", "[1]", '"q"', "NaN", " 5", "a,b", "line\nbreak\r\n", 'say "hi"', "é✓"]
    for i, rec in enumerate(recs):
        rec["metadata"]["tag"] = looks[i % len(looks)]
        rec["metadata"]["neg"] = -0.0 if i % 2 else 0
        if i % 5 == 0:
            rec["metadata"].pop("x")  # a key some records lack: an empty cell, not a null
    recs[1]["text"] = ""
    recs[2]["text"] = '"starts with a quote'
    recs[3]["text"] = "multi\nline,\"text\""
    if ids == "str":
        names = ["5", "abc", '"q"', " 7", "-0", "doc 1"]
        for i, rec in enumerate(recs):
            rec["id"] = names[i] if i < len(names) else f"id-{i}"
    return recs


@pytest.mark.parametrize(("ids", "metadata"), [("int", "typed"), ("str", "typed"), ("int", "json")])
def test_jsonl_csv_jsonl_round_trip_is_exact(tmp_path: Path, ids: str, metadata: str) -> None:
    src = tricky(ids)
    write_jsonl(tmp_path / "src.jsonl", src)
    fields = ", fields: {metadata: meta}" if metadata == "json" else ""
    there = spec(tmp_path, "there", "{provider: jsonl, connection: {path: src.jsonl}}",
                 f"{{provider: csv, connection: {{path: mid.csv}}{fields}}}", "strategy: {batch_size: 7}\n")
    back = spec(tmp_path, "back", f"{{provider: csv, connection: {{path: mid.csv}}{fields}}}",
                "{provider: jsonl, connection: {path: out.jsonl}}", "strategy: {batch_size: 4}\n")
    ok("apply", str(there), "--auto-approve")
    ok("apply", str(back), "--auto-approve")
    assert exact(read_jsonl(tmp_path / "out.jsonl")) == exact(src)
    header = (tmp_path / "mid.csv").read_text().splitlines()[0]
    assert header == ("id,vector,text,meta" if metadata == "json" else "id,vector,text,f,n,neg,none,ok,tag,tags,x")
    # The copy is complete by the record-level diff too: nothing left to do.
    r = vecmig("plan", str(there), "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr


def test_foreign_csv_bom_crlf_quoted_newlines_and_plain_cells(tmp_path: Path) -> None:
    rows = [
        "id,vector,text,title,year,score,tags,flag",
        'a1,"[0.5,-1.25]","two\r\nlines, with ""quotes""",Hello world,2024,0.5,"[""x"",""y""]",true',
        'a2,"[1e-3,3]",,"5 inches",1999,-0.0,[],',
        '"""3""","[2.5e0,0]",plain,"""5""",0,1.0,"[""""]",null',
    ]
    (tmp_path / "in.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    s = spec(tmp_path, "foreign", "{provider: csv, connection: {path: in.csv}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    ok("apply", str(s), "--auto-approve")
    got = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert list(got) == ["a1", "a2", "3"]
    assert got["a1"]["text"] == 'two\r\nlines, with "quotes"'
    assert got["a1"]["metadata"] == {"title": "Hello world", "year": 2024, "score": 0.5, "tags": ["x", "y"],
                                     "flag": True}
    assert got["a2"]["metadata"] == {"title": "5 inches", "year": 1999, "score": -0.0, "tags": []}
    assert "text" not in got["a2"] or got["a2"]["text"] is None
    assert got["3"]["metadata"] == {"title": "5", "year": 0, "score": 1.0, "tags": [""], "flag": None}
    assert exact([got["3"]]) == exact([{"id": "3", "vector": [2.5, 0.0], "text": "plain",
                                        "metadata": {"title": "5", "year": 0, "score": 1.0, "tags": [""],
                                                     "flag": None}}])


def test_rollback_removes_the_csv_it_wrote(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "src.jsonl", records(range(20), 1))
    s = spec(tmp_path, "rb", "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: csv, connection: {path: out.csv}}")
    ok("apply", str(s), "--auto-approve")
    assert (tmp_path / "out.csv").exists()
    ok("rollback", str(s), "--auto-approve")
    assert not (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob("out.csv*"))  # no staging directory or temporary left either


HOSTILE = {
    "ragged": ('id,vector,text\n1,"[1,2]",a\n2,"[1,2]",b,extra\n', [":3", "4 fields, the header has 3"]),
    "short row": ('id,vector,text\n1,"[1,2]",a\n2,"[1,2]"\n', [":3", "2 fields, the header has 3"]),
    "bad vector JSON": ('id,vector\n1,"[1,2]"\n2,"[1,,2]"\n', [":3", "column 'vector' is not a JSON array"]),
    "vector of strings": ('id,vector\n1,"[""a"",""b""]"\n', [":2", "non-empty JSON array of numbers"]),
    "NaN in vector": ('id,vector\n1,"[NaN,1]"\n', [":2", "NaN, Infinity or a value beyond float32's range"]),
    "ragged vector": ('id,vector\n1,"[1,2]"\n2,"[1,2,3]"\n', [":3", "3-dimensional"]),
    "duplicate header": ('id,vector,tag,tag\n1,"[1]",a,b\n', [":1", "column 'tag' twice"]),
    "empty header name": ('id,vector,\n1,"[1]",a\n', [":1", "empty column name"]),
    "no id column": ('key,vector\n1,"[1]"\n', [":1", "no id column 'id'"]),
    "empty id": ('id,vector\n,"[1]"\n', [":2", "no id"]),
    "broken JSON cell": ('id,vector,tags\n1,"[1]","[""a"""\n', [":2", "column 'tags' starts like JSON"]),
    "unclosed quote": ('id,vector,text\n1,"[1]","never closed\n2,"[1]",x\n', [":2", "CSV"]),
    "not UTF-8": (b'id,vector,text\n1,"[1]",caf\xe9\n', [":2", "UTF-8"]),
    "no header": ("", ["no header row"]),
}


def hostile_error(tmp_path: Path, content: str | bytes) -> str:
    """What reading ``content`` as a CSV source refuses with, as the CLI prints it (one line)."""
    (tmp_path / "bad.csv").write_bytes(content if isinstance(content, bytes) else content.encode())
    store = StoreSpec(provider="csv", connection={"path": "bad.csv"}, base_dir=tmp_path, pointer="/source")
    with pytest.raises(TerminalError) as caught:
        p = provider_class("csv")(store)
        inv = p.inventory()
        for shard in p.shards(inv, 1000):
            for _ in p.scan(shard, None, 2):
                pass
    return caught.value.one_line()


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_csv_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    content, expected = HOSTILE[case]
    line = hostile_error(tmp_path, content)
    assert "\n" not in line and "bad.csv" in line, line
    for text in expected:
        assert text in line, line


@pytest.mark.parametrize("case", ["ragged", "not UTF-8", "duplicate header"])
def test_hostile_csv_through_the_cli(tmp_path: Path, case: str) -> None:
    """The same refusals reach the user as one line on stderr, a non-zero exit, no traceback."""
    content, expected = HOSTILE[case]
    (tmp_path / "bad.csv").write_bytes(content if isinstance(content, bytes) else content.encode())
    s = spec(tmp_path, "hostile", "{provider: csv, connection: {path: bad.csv}}",
             "{provider: jsonl, connection: {path: out.jsonl}}")
    r = vecmig("plan", str(s))
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.csv" in lines[0], r.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_unknown_metadata_key_is_refused_naming_the_record(tmp_path: Path) -> None:
    recs = records(range(10), 3)
    recs[7]["metadata"]["late"] = 1
    write_jsonl(tmp_path / "src.jsonl", recs)
    s = spec(tmp_path, "late", "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: csv, connection: {path: out.csv}, fields: {metadata: [n, f, x, ok, tag, none, tags]}}")
    r = vecmig("apply", str(s), "--auto-approve")
    assert r.returncode != 0
    assert "record 7" in r.stderr and "'late'" in r.stderr, r.stderr


# ---- SIGKILL mid-apply, then resume -------------------------------------------------------------

RECORDS = 4000
BATCH = 40


def checkpointed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return int(c.execute("SELECT coalesce(sum(records_done), 0) FROM cursors").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_mid_apply_then_resume_is_exact(tmp_path: Path) -> None:
    src = records(range(RECORDS), 9)
    write_jsonl(tmp_path / "src.jsonl", src)
    s = spec(tmp_path, "kill", "{provider: jsonl, connection: {path: src.jsonl}}",
             "{provider: csv, connection: {path: out.csv}}",
             f"strategy: {{type: big-bang, batch_size: {BATCH}, concurrency: 2, shard_size: 1000}}\n")
    db = tmp_path / ".vecmig" / "kill.db"
    rng = random.Random(11)
    kills = 0
    for threshold in sorted(rng.sample(range(BATCH, RECORDS - 10 * BATCH), 3)):
        proc = spawn("apply", str(s), "--auto-approve")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and checkpointed(db) < threshold:
            time.sleep(0.005)
        if proc.poll() is None:
            time.sleep(rng.uniform(0, 0.02))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            proc.communicate(timeout=30)
    assert kills >= 2, f"only {kills} kills landed"
    ok("apply", str(s), "--auto-approve")
    back = spec(tmp_path, "back", "{provider: csv, connection: {path: out.csv}}",
                "{provider: jsonl, connection: {path: back.jsonl}}")
    ok("apply", str(back), "--auto-approve")
    out = read_jsonl(tmp_path / "back.jsonl")
    assert len(out) == RECORDS, "nothing lost, nothing doubled"
    assert exact(out) == exact(src)
