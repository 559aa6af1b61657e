"""The outbox's file: one SQLite table of messages, written in one transaction every few milliseconds.

SQLite in WAL mode with ``synchronous=NORMAL`` (SQLite docs, "Write-Ahead Logging" and "PRAGMA synchronous"): a
commit is a write to the WAL without fsync, so it survives the process being killed (the data is in the OS) but the
last commits before a power loss may be lost; the file stays consistent either way. The checkpoints (copying the
WAL into the file, with the only fsync) run on a thread of their own, off the agent's loop: measured here, an
automatic checkpoint stalled a commit for 20-50 ms. ``":memory:"`` keeps the same code path without a file (an agent
without ``state_dir``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id      INTEGER PRIMARY KEY,  -- the order messages leave in (oldest first)
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    retain  INTEGER NOT NULL,
    device  TEXT,                 -- telemetry: kept until the centre reports (device, run, seq) stored
    run     TEXT,
    seq     INTEGER,
    size    INTEGER NOT NULL,     -- bytes of topic and payload, what the quota counts
    put_ms  INTEGER NOT NULL      -- wall time it was queued
);
CREATE INDEX IF NOT EXISTS message_key ON message (device, run, seq) WHERE device IS NOT NULL;
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COLUMNS = "id, topic, payload, retain, device, run, seq, size, put_ms"
CHECKPOINT_S = 1.0
log = logging.getLogger("lifeline.edge.outbox")

Key = tuple[str, str, int]  # (device, run, seq) of a telemetry message


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    topic: str
    payload: bytes
    retain: bool
    key: Key | None
    size: int
    put_ms: int


def _row(r: tuple[int, str, bytes, int, str | None, str | None, int | None, int, int]) -> Row:
    key = (r[4], r[5] or "", r[6] or 0) if r[4] is not None else None
    return Row(r[0], r[1], r[2], bool(r[3]), key, r[7], r[8])


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one flush changes, written in one transaction."""

    rows: Sequence[Row] = ()
    delete_ids: Sequence[int] = ()
    ranges: Sequence[tuple[str, str, int, int]] = ()  # (device, run, first, last) to delete by key
    free_messages: int = 0  # the quota: drop the oldest until this many messages and bytes are gone
    free_bytes: int = 0
    dropped_total: int = 0  # the counter kept in the file, before this batch's drops


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch deleted by key (``ranges``) and dropped over the quota: (id, size) each."""

    deleted: list[tuple[int, int]]
    dropped: list[tuple[int, int]]


DROPPED = "dropped_total"


def _rollback(db: sqlite3.Connection, failed: BaseException) -> None:
    """Undo a failed transaction, keeping ``failed`` the error that rises. On a full disk (SQLITE_FULL) and some I/O
    errors SQLite has rolled the transaction back itself (sqlite.org/lang_transaction.html, "Response To Errors
    Within A Transaction"): a ROLLBACK then fails with "cannot rollback - no transaction is active", which used to
    hide the real error. A rollback that fails on its own is noted on ``failed``."""
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        failed.add_note(f"and the rollback failed: {exc}")


class OutboxStore:
    """The SQLite file of one outbox (``path`` or ``":memory:"``).

    A file has two connections: ``write`` may run on a writer thread while the agent's loop reads (WAL readers see
    the last commit and never wait for the writer). In memory there is one, and everything runs on the loop.
    """

    def __init__(self, path: Path | str) -> None:
        self.threaded = isinstance(path, Path)
        self.folder: Path | None = path.parent if isinstance(path, Path) else None  # where a full disk is measured
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        # each connection is used by one thread at a time, but opened before the loop and the writer start
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._read = self._db
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if isinstance(path, Path):
            self._read = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoints, args=(path,), daemon=True, name="outbox-checkpoint"
            )
            self._checkpointer.start()

    def _checkpoints(self, path: Path) -> None:
        """Every CHECKPOINT_S, copy the WAL into the file (PASSIVE: never waits for, nor blocks, the writer)."""
        db = sqlite3.connect(str(path), isolation_level=None)
        failing = False
        try:
            while not self._stop.wait(CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError as exc:  # busy, disk full, ...: the WAL grows; try again next time
                    if not failing:
                        log.warning(
                            "outbox checkpoint failed file=%s error=%r (retrying every %g s, logged once)",
                            path,
                            str(exc),
                            CHECKPOINT_S,
                        )
                    failing = True
                    continue
                if failing:
                    log.info("outbox checkpoint works again file=%s", path)
                failing = False
        finally:
            db.close()

    def summary(self) -> tuple[int, int, int]:
        """(messages, bytes, highest id) held in the file."""
        count, size, top = self._read.execute(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(max(id), 0) FROM message"
        ).fetchone()
        return int(count), int(size), int(top)

    def counter(self, name: str) -> int:
        found = self._read.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(found[0]) if found else 0

    def write(self, batch: Batch) -> Written:
        """Apply ``batch`` in one transaction (on any one thread at a time): inserts, deletes, then the quota."""
        db = self._db
        deleted: list[tuple[int, int]] = []
        dropped: list[tuple[int, int]] = []
        db.execute("BEGIN")
        try:
            if batch.rows:
                db.executemany(
                    f"INSERT INTO message ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.id, r.topic, r.payload, int(r.retain), *(r.key or (None, None, None)), r.size, r.put_ms)
                        for r in batch.rows
                    ],
                )
            if batch.delete_ids:
                db.executemany("DELETE FROM message WHERE id = ?", [(i,) for i in batch.delete_ids])
            for device, run, first, last in batch.ranges:
                deleted += db.execute(
                    "DELETE FROM message WHERE device = ? AND run = ? AND seq BETWEEN ? AND ? RETURNING id, size",
                    (device, run, first, last),
                ).fetchall()
            dropped = self._drop_oldest(batch.free_messages, batch.free_bytes)
            if dropped:
                total = batch.dropped_total + len(dropped)
                db.execute("INSERT OR REPLACE INTO counter (name, value) VALUES (?, ?)", (DROPPED, total))
            db.execute("COMMIT")
        except BaseException as exc:
            _rollback(db, exc)
            raise
        return Written(deleted, dropped)

    def _drop_oldest(self, messages: int, size: int) -> list[tuple[int, int]]:
        dropped: list[tuple[int, int]] = []
        freed = 0
        while len(dropped) < messages or freed < size:
            rows: list[tuple[int, int]] = self._db.execute(
                "DELETE FROM message WHERE id IN (SELECT id FROM message ORDER BY id LIMIT 1) RETURNING id, size"
            ).fetchall()
            if not rows:
                break
            dropped += rows
            freed += rows[0][1]
        return dropped

    def page(self, after_id: int, limit: int) -> list[Row]:
        """The next ``limit`` messages after ``after_id``, oldest first."""
        rows = self._read.execute(
            f"SELECT {_COLUMNS} FROM message WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [_row(r) for r in rows]

    def fetch(self, ids: Iterable[int]) -> list[Row]:
        """The messages of ``ids`` that are still held, oldest first."""
        wanted = list(ids)
        out: list[Row] = []
        for i in range(0, len(wanted), 500):  # SQLite's default limit of bound parameters is 999 (3.32+: 32766)
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read.execute(f"SELECT {_COLUMNS} FROM message WHERE id IN ({marks})", chunk).fetchall()
            out += [_row(r) for r in rows]
        return sorted(out, key=lambda r: r.id)

    def oldest_put_ms(self) -> int | None:
        found = self._read.execute("SELECT put_ms FROM message ORDER BY id LIMIT 1").fetchone()
        return int(found[0]) if found else None

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(10)
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as exc:  # a full disk: the WAL keeps what it holds, read at the next start
                log.warning("outbox checkpoint at close failed error=%r (the WAL keeps the data)", str(exc))
            self._read.close()
        self._db.close()
