"""The dead-letter store: every message the bridge could not store, with topic, payload, error and time.

SQLite (embedded, one file): survives restarts, is read by ``lifeline deadletter list|show|replay``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL,
    stage TEXT NOT NULL,
    replayed_ts_ms INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_ts ON dead_letters (ts_ms);
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    ts_ms: int
    topic: str
    payload: bytes
    error: str
    stage: str  # "validate" (refused by the bridge) or "influx" (refused by InfluxDB)
    replayed_ts_ms: int | None


class DeadLetterStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def add(self, ts_ms: int, topic: str, payload: bytes, error: str, stage: str) -> int:
        cur = self._db.execute(
            "INSERT INTO dead_letters (ts_ms, topic, payload, error, stage) VALUES (?, ?, ?, ?, ?)",
            (ts_ms, topic, payload, error[:4000], stage),
        )
        return int(cur.lastrowid or 0)

    def list(self, limit: int = 50, include_replayed: bool = True) -> list[DeadLetter]:
        where = "" if include_replayed else "WHERE replayed_ts_ms IS NULL"
        rows = self._db.execute(f"SELECT * FROM dead_letters {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [DeadLetter(*row) for row in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        row = self._db.execute("SELECT * FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
        return DeadLetter(*row) if row else None

    def pending(self) -> Iterator[DeadLetter]:
        for row in self._db.execute("SELECT * FROM dead_letters WHERE replayed_ts_ms IS NULL ORDER BY id"):
            yield DeadLetter(*row)

    def mark_replayed(self, letter_id: int, ts_ms: int) -> None:
        self._db.execute("UPDATE dead_letters SET replayed_ts_ms = ? WHERE id = ?", (ts_ms, letter_id))

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def close(self) -> None:
        self._db.close()
