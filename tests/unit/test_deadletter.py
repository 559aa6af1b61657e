"""The one dead-letter store (``infra.deadletter``): what a letter records, the bound and its pruned counter, the
edge's keeper, and the stores 0.2 left behind (the bridge's SQLite table, the edge's JSON lines)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from edge_agent.deadletter import DeadLetters
from infra.deadletter import DeadLetter, DeadLetterStore


def test_a_letter_keeps_where_it_came_from_and_why(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dead.sqlite", source="edge/s1")
    first = store.add(1000, "vendor/gas/7", b"\xff\x00", "not JSON", stage="sensor")
    store.add(2000, "lifeline/v1/s1/cmd/c1", b"{}", "bad signature", stage="command", replayable=False)
    assert store.get(first) == DeadLetter(
        first, 1000, "edge/s1", "sensor", "vendor/gas/7", b"\xff\x00", "not JSON", replayable=True, replayed_ms=None
    )
    assert [d.stage for d in store.list()] == ["command", "sensor"]  # newest first
    assert [d.stage for d in store.oldest()] == ["sensor", "command"]
    assert [d.id for d in store.pending()] == [first]  # a refused command is never replayed
    store.mark_replayed(first, 3000)
    assert store.pending() == []
    assert [d.replayed_ms for d in store.list(include_replayed=False)] == [None]
    store.close()
    reopened = DeadLetterStore(tmp_path / "dead.sqlite")
    assert (reopened.count(), reopened.get(first).replayed_ms) == (2, 3000)  # type: ignore[union-attr]
    reopened.close()


def test_a_long_reason_is_cut() -> None:
    store = DeadLetterStore(None)
    letter = store.get(store.add(1, "t", b"", "x" * 10_000, stage="influx"))
    assert letter is not None
    assert len(letter.reason) == 4000


@pytest.mark.parametrize(
    ("max_letters", "added", "kept", "pruned"),
    [
        (10, 10, 10, 0),
        (10, 11, 9, 2),  # past the bound: down to 90 %
        (10, 25, 9, 16),
        (1, 3, 1, 2),
    ],
    ids=["at-the-bound", "one-past", "a-flood", "one-kept"],
)
def test_past_its_bound_the_oldest_are_pruned_and_counted(
    tmp_path: Path, max_letters: int, added: int, kept: int, pruned: int
) -> None:
    path = tmp_path / "dead.sqlite"
    store = DeadLetterStore(path, max_letters=max_letters)
    for i in range(added):
        store.add(i, "t", str(i).encode(), "bad", stage="validate")
    assert (store.count(), store.pruned) == (kept, pruned)
    assert [d.payload for d in store.oldest()] == [str(i).encode() for i in range(added - kept, added)]
    store.close()
    assert DeadLetterStore(path).pruned == pruned  # the counter is in the file


def test_the_edge_counts_and_survives_a_store_that_cannot_write(tmp_path: Path) -> None:
    letters = DeadLetters(tmp_path / "dead.sqlite", source="edge/s1")
    letters.add(1, "vendor/gas/7", b"x", "not JSON", stage="sensor", replayable=True)
    letters.store.close()  # as a full disk would fail
    letters.add(2, "vendor/gas/7", b"y", "not JSON", stage="sensor", replayable=True)
    assert (letters.count, letters.keep_failures) == (1, 1)
    kept = DeadLetterStore(tmp_path / "dead.sqlite").list()
    assert [(d.source, d.payload, d.replayable) for d in kept] == [("edge/s1", b"x", True)]


def test_without_a_file_the_edge_keeps_the_last_thousand_in_memory() -> None:
    letters = DeadLetters(None)
    for i in range(1005):
        letters.add(i, "t", b"", "bad", stage="sensor")
    assert letters.count == 1005
    assert letters.store.count() <= 1000
    assert letters.store.pruned + letters.store.count() == 1005


def test_a_bridge_store_from_0_2_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "deadletter.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, topic TEXT NOT NULL,
            payload BLOB NOT NULL, error TEXT NOT NULL, stage TEXT NOT NULL, replayed_ts_ms INTEGER);
        CREATE INDEX dead_letters_ts ON dead_letters (ts_ms);
        INSERT INTO dead_letters (ts_ms, topic, payload, error, stage, replayed_ts_ms)
            VALUES (1000, 'lifeline/v1/s1/wq/telemetry', x'7b7d', 'in the future', 'validate', NULL),
                   (2000, 'lifeline/v1/s1/wq/telemetry', x'7b7d', 'field type conflict', 'influx', 2500);
    """)
    db.close()
    store = DeadLetterStore(path, source="bridge")
    assert [(d.id, d.received_ms, d.source, d.stage, d.reason, d.replayed_ms) for d in store.oldest()] == [
        (1, 1000, "bridge", "validate", "in the future", None),
        (2, 2000, "bridge", "influx", "field type conflict", 2500),
    ]
    assert store.add(3000, "t", b"", "bad", stage="validate") == 3
    store.close()


def test_an_edge_json_lines_file_from_0_2_is_taken_in(tmp_path: Path) -> None:
    path = tmp_path / "deadletter.jsonl"
    old = [
        {"ts": 1000, "topic": "vendor/gas/7", "error": "not JSON", "payload": "{oops"},
        {"ts": 2000, "topic": "hj212/ST1", "error": "bad_crc: x", "payload_b64": "//8="},
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in old))
    store = DeadLetterStore(path, source="edge/s1")
    letters = store.oldest()
    assert [(d.received_ms, d.topic, d.payload, d.reason, d.replayable) for d in letters] == [
        (1000, "vendor/gas/7", b"{oops", "not JSON", False),
        (2000, "hj212/ST1", b"\xff\xff", "bad_crc: x", False),
    ]
    assert (tmp_path / "deadletter.jsonl.0-2.jsonl").exists()  # the old file is kept beside it
    store.close()
    assert len(DeadLetterStore(path).oldest()) == 2  # taken in once
