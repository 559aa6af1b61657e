"""The dead-letter store's byte quota: past ``max_bytes`` (payloads and reasons) the oldest letters go, counted in
the file (``pruned``, ``pruned_bytes``), and the file stops growing (SQLite reuses the freed pages): garbage sent
without credentials (an HJ 212 port) cannot fill the disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.deadletter import DeadLetterStore


def _fill(store: DeadLetterStore, letters: int, size: int) -> None:
    for i in range(letters):
        store.add(i, "hj212/10.0.0.9", bytes([i % 256]) * size, "bad_header", stage="hj212", replayable=False)


def test_byte_quota_keeps_the_newest_and_counts_what_went(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", source="hj212", max_bytes=100_000)
    _fill(store, 1000, 990)  # 1,000 letters of 1,000 bytes (990 payload + 10 reason): ten times the quota
    assert store.kept_bytes <= 100_000
    kept = store.count()
    assert kept * 1000 == store.kept_bytes
    assert store.pruned == 1000 - kept
    assert store.pruned_bytes == store.pruned * 1000
    newest = store.list(limit=1)[0]
    assert newest.received_ms == 999  # the newest is kept, the oldest went
    assert store.oldest(limit=1)[0].received_ms == 1000 - kept


def test_file_stops_growing_under_a_flood(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetterStore(path, source="hj212", max_bytes=200_000)
    _fill(store, 400, 990)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_then = path.stat().st_size
    _fill(store, 4000, 990)  # ten times as much again
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert path.stat().st_size <= size_then * 1.5
    assert store.kept_bytes <= 200_000


def test_counts_survive_a_reopen_and_a_smaller_quota_prunes_at_open(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetterStore(path, source="hj212", max_bytes=50_000)
    _fill(store, 100, 990)
    pruned = store.pruned
    store.close()
    again = DeadLetterStore(path, source="hj212", max_bytes=20_000)
    assert again.kept_bytes <= 20_000
    assert again.pruned > pruned


def test_letter_quota_still_applies_without_a_byte_quota(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", max_letters=50)
    _fill(store, 120, 10)
    assert store.count() <= 50
    assert store.pruned == 120 - store.count()


def test_quota_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        DeadLetterStore(tmp_path / "dl.sqlite", max_bytes=0)
