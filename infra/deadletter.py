"""The dead-letter store: every message a service could not use, kept with where it came from and why, never
dropped in silence. One store for the edge agent (sensor messages it cannot decode, refused commands), the HJ 212
ingest (refused packets) and the bridge (messages it or InfluxDB refused); ``lifeline deadletter`` lists, shows and
replays any of them.

SQLite, one file per service (embedded, survives restarts; ``None``: in memory, for an agent configured to keep
none on disk). Each letter records when it was received, the source (the service that kept it), the stage that
refused it, the topic, the payload, the reason, whether publishing it again on its topic is a meaningful retry
(``replayable``), and when it was replayed. The store is bounded: past ``max_letters`` letters or ``max_bytes`` bytes
(payloads and reasons; ``None``: no byte quota) the oldest are pruned (the file rotates: SQLite reuses the freed
pages, so it stops growing at about the quota), and how many letters and bytes were pruned is counted in the file
(``pruned``, ``pruned_bytes``), so a flood of bad input cannot fill the disk, nor go unseen.
"""

from __future__ import annotations

import base64
import builtins
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["MAX_REASON", "DeadLetter", "DeadLetterStore"]

log = logging.getLogger("lifeline.deadletter")

MAX_REASON = 4000  # characters of a reason kept (an InfluxDB error can quote a whole batch)

_TABLE = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    stage TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    replayable INTEGER NOT NULL,
    replayed_ms INTEGER
)"""
_SCHEMA = f"""
{_TABLE};
CREATE INDEX IF NOT EXISTS dead_letters_pending ON dead_letters (replayed_ms, id);
CREATE TABLE IF NOT EXISTS dead_letter_counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COLUMNS = "id, received_ms, source, stage, topic, payload, reason, replayable, replayed_ms"
_SIZE = "length(payload) + length(CAST(reason AS BLOB))"  # a letter's bytes under max_bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_ms: int
    source: str  # the service that kept it: "bridge", "edge/<site>", "hj212"
    stage: str  # what refused it: "validate" or "influx" (bridge), "sensor", "command", "stored" (edge), "hj212"
    topic: str  # the MQTT topic it came on (an HJ 212 packet: "hj212/<MN>")
    payload: bytes
    reason: str
    replayable: bool  # publishing the payload again on its topic is a meaningful retry
    replayed_ms: int | None

    @classmethod
    def _of(cls, row: tuple[int, int, str, str, str, bytes, str, int, int | None]) -> DeadLetter:
        i, received, source, stage, topic, payload, reason, replayable, replayed = row
        return cls(i, received, source, stage, topic, bytes(payload), reason, bool(replayable), replayed)


class DeadLetterStore:
    """``add`` from one thread at a time (a service's loop); readers (``lifeline deadletter``) may open the same
    file from another process meanwhile (WAL)."""

    def __init__(
        self, path: Path | None, *, source: str = "", max_letters: int = 100_000, max_bytes: int | None = None
    ) -> None:
        if max_letters < 1:
            raise ValueError("max_letters must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = path
        self.source = source
        self.max_letters = max_letters
        self.max_bytes = max_bytes
        old_lines: list[bytes] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            old_lines = _take_json_lines(path)
        self._db = sqlite3.connect(":memory:" if path is None else path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash may lose the last letters, never corrupt
        self._upgrade_bridge_table()
        self._db.executescript(_SCHEMA)
        self._kept = self.count()
        self._bytes = self._size()
        for line in old_lines:
            self._add_json_line(line)
        self._kept = self.count()
        self._bytes = self._size()
        if self._over_quota():
            self._prune()

    def _upgrade_bridge_table(self) -> None:
        """A bridge's store from 0.2 (columns ts_ms, error, replayed_ts_ms): its letters moved to this schema."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
        if "ts_ms" not in columns:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE dead_letters RENAME TO dead_letters_0_2")
            self._db.execute("DROP INDEX IF EXISTS dead_letters_ts")
            self._db.execute(_TABLE)
            self._db.execute(
                f"INSERT INTO dead_letters ({_COLUMNS}) SELECT id, ts_ms, 'bridge', stage, topic, payload, error, 1,"
                " replayed_ts_ms FROM dead_letters_0_2"
            )
            self._db.execute("DROP TABLE dead_letters_0_2")
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        log.info("dead letters upgraded path=%s from=bridge-0.2", self.path)

    def _add_json_line(self, line: bytes) -> None:
        """One letter of an edge's JSON-lines file from 0.2 (ts, topic, error, payload or payload_b64)."""
        record = orjson.loads(line)
        text = record.get("payload")
        payload = text.encode() if isinstance(text, str) else base64.b64decode(record.get("payload_b64", ""))
        # which of them were sensor messages (replayable) and which commands is not recorded: none is replayed
        self.add(
            int(record.get("ts", 0)),
            str(record.get("topic", "")),
            payload,
            str(record.get("error", "")),
            stage="imported",
            replayable=False,
        )

    def add(
        self,
        received_ms: int,
        topic: str,
        payload: bytes,
        reason: str,
        *,
        stage: str,
        replayable: bool = True,
        source: str | None = None,
    ) -> int:
        """Keep one letter; returns its id. Raises ``sqlite3.Error`` when the file cannot be written (a full disk):
        the caller decides (the bridge leaves the message unacknowledged, so the broker keeps it)."""
        reason = reason[:MAX_REASON]
        cur = self._db.execute(
            "INSERT INTO dead_letters (received_ms, source, stage, topic, payload, reason, replayable)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (received_ms, source or self.source, stage, topic, payload, reason, int(replayable)),
        )
        self._kept += 1
        self._bytes += len(payload) + len(reason.encode("utf-8", "replace"))
        if self._over_quota():
            self._prune()
        return int(cur.lastrowid or 0)

    def _size(self) -> int:
        row = self._db.execute(f"SELECT coalesce(sum({_SIZE}), 0) FROM dead_letters").fetchone()
        return int(row[0])

    def _over_quota(self) -> bool:
        return self._kept > self.max_letters or (self.max_bytes is not None and self._bytes > self.max_bytes)

    def _prune(self) -> None:
        # down to nine tenths of the quota, so a flood prunes now and then rather than on every letter
        drop = 0
        if self._kept > self.max_letters:
            drop = self._kept - self.max_letters + max(1, self.max_letters // 10)
        if self.max_bytes is not None and self._bytes > self.max_bytes:
            free = self._bytes - self.max_bytes + self.max_bytes // 10
            # the oldest letters until ``free`` bytes: those with less than that before them
            row = self._db.execute(
                f"SELECT count(*) FROM (SELECT sum({_SIZE}) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) - {_SIZE}"
                " AS before FROM dead_letters) WHERE before < ?",
                (free,),
            ).fetchone()
            drop = max(drop, int(row[0]))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            doomed = "SELECT id FROM dead_letters ORDER BY id LIMIT ?"
            row = self._db.execute(
                f"SELECT count(*), coalesce(sum({_SIZE}), 0) FROM dead_letters WHERE id IN ({doomed})", (drop,)
            ).fetchone()
            removed = self._db.execute(f"DELETE FROM dead_letters WHERE id IN ({doomed})", (drop,)).rowcount
            for name, value in (("pruned", removed), ("pruned_bytes", int(row[1]))):
                self._db.execute(
                    "INSERT INTO dead_letter_counts (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (name, value),
                )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        self._kept = self.count()
        self._bytes = self._size()
        log.warning(
            "dead letters pruned path=%s removed=%d kept=%d kept_bytes=%d pruned_total=%d"
            " (max_letters=%d max_bytes=%s)",
            self.path,
            removed,
            self._kept,
            self._bytes,
            self.pruned,
            self.max_letters,
            self.max_bytes,
        )

    def list(self, limit: int = 50, include_replayed: bool = True) -> list[DeadLetter]:
        """Newest first."""
        where = "" if include_replayed else "WHERE replayed_ms IS NULL"
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM dead_letters {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [DeadLetter._of(row) for row in rows]

    def oldest(self, limit: int = 1000) -> builtins.list[DeadLetter]:  # builtins: ``list`` is a method here
        """Oldest first (the order they came in)."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?", (limit,))
        return [DeadLetter._of(row) for row in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
        return DeadLetter._of(row) if row else None

    def pending(self) -> builtins.list[DeadLetter]:
        """The replayable letters not replayed yet, oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM dead_letters WHERE replayed_ms IS NULL AND replayable = 1 ORDER BY id"
        )
        return [DeadLetter._of(row) for row in rows]

    def mark_replayed(self, letter_id: int, ts_ms: int) -> None:
        """Call only once the broker has acknowledged the letter's publish."""
        self._db.execute("UPDATE dead_letters SET replayed_ms = ? WHERE id = ?", (ts_ms, letter_id))

    def count(self) -> int:
        """Letters kept now (pruned ones not included)."""
        return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    @property
    def pruned(self) -> int:
        """Letters pruned from this file since it was made (the oldest, past ``max_letters`` or ``max_bytes``)."""
        return self._counted("pruned")

    @property
    def pruned_bytes(self) -> int:
        """Bytes (payloads and reasons) of the letters pruned from this file since it was made."""
        return self._counted("pruned_bytes")

    @property
    def kept_bytes(self) -> int:
        """Bytes (payloads and reasons) of the letters kept now: what ``max_bytes`` bounds."""
        return self._bytes

    def _counted(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM dead_letter_counts WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()


def _take_json_lines(path: Path) -> list[bytes]:
    """The lines of an edge's dead-letter file from 0.2 (JSON lines) at ``path``, which is moved aside to
    ``<path>.0-2.jsonl`` so that the store can take its place; nothing when ``path`` is not such a file."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return []
    if not head or head.startswith(b"SQLite format 3"):
        return []
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    path.rename(path.with_name(path.name + ".0-2.jsonl"))
    log.info("dead letters imported path=%s from=jsonl letters=%d", path, len(lines))
    return lines
