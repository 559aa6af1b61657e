"""Store-and-forward on disk, kept until the centre says *stored* (docs/decisions/010), sent through a bounded QoS 1
window (docs/decisions/002). The MQTT link drives it; time is a parameter.

Every message is written to the outbox file before it may be sent: ``flush`` is one transaction for whatever came
since the last (the agent runs its steps ``prepare``, ``store.write`` on a writer thread, ``apply``). A telemetry
message (one with a ``key``: device, run, seq) stays until a ``Stored`` acknowledgement covers its key; any other
message (retained status, command results) goes at its PUBACK. What is not confirmed is sent again: after a
reconnect (what was in flight, then everything PUBACKed but not stored) and ``ack_timeout_s`` after it was last
sent.

Two lanes leave the outbox, oldest first in each: *live* (messages just queued, in memory with their payload, at
most ``LIVE_MAX``) goes first, as fast as the window allows; *backlog* (everything else: what waited through an
outage, what is due again, what the file held at start) follows at ``replay_rate`` messages per second, read from
the file in pages. Memory holds only what is in motion (live, in flight, waiting for ``Stored``) and the ids of
messages due again; the file holds the rest.

When the file passes its quota (bytes or messages) the oldest messages go, counted (``stats.dropped``, kept in the
file across restarts) and logged once per episode. When the file cannot be written at all (a full disk, I/O errors)
what waits for it stays in memory, at most ``max_unwritten`` messages (the oldest beyond go, counted in
``stats.memory_dropped``), and is written once the file takes writes again.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from edge_agent._outbox_policy import DropEpisodes, TokenBucket
from edge_agent._outbox_store import DROPPED, Batch, Key, OutboxStore, Row, Written

LIVE_MAX = 10_000  # newest messages kept in memory with their payload; older ones wait in the file
_PAGE = 256  # backlog rows read from the file at a time


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    payload: bytes
    retain: bool = False
    key: Key | None = None  # (device, run, seq) of telemetry: kept until the centre has stored it


@dataclass(slots=True)
class OutboxStats:
    queued: int = 0
    sent: int = 0
    acked: int = 0  # PUBACKs
    stored: int = 0  # telemetry confirmed by a Stored acknowledgement
    resent: int = 0  # sends again: after a reconnect or a time-out
    dropped: int = 0  # over the quota, since the file was made
    dropped_bytes: int = 0
    memory_dropped: int = 0  # never written (the file failed) and over ``max_unwritten``: the oldest went (this run)


class _State(IntEnum):
    QUEUED = 0
    INFLIGHT = 1
    AWAITING = 2  # PUBACKed, waiting for Stored
    OUT = 3  # no longer in memory: confirmed, dropped, or back in the file


@dataclass(slots=True, eq=False)
class Pending:
    """A batch handed to the writer, and the entries it makes sendable."""

    batch: Batch
    entries: list[Entry]
    put_ms: list[int]


@dataclass(slots=True, eq=False)
class Entry:
    """A message in motion."""

    id: int
    topic: str
    payload: bytes | None
    retain: bool
    key: Key | None
    size: int
    state: _State = _State.QUEUED
    sent_at: float = 0.0


class Outbox:
    """The disk outbox of one agent, feeding a window of at most ``max_inflight`` unacknowledged sends."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        max_inflight: int,
        max_messages: int,
        max_bytes: int,
        replay_rate: float,
        ack_timeout_s: float,
        max_unwritten: int = 50_000,
        name: str = "",
    ) -> None:
        self.store = store
        self.max_unwritten = max_unwritten  # messages memory holds while the file cannot be written
        self.max_inflight = max_inflight
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.replay_rate = replay_rate
        self.ack_timeout_s = ack_timeout_s
        self.name = name  # the site, for the log
        self._count, self._bytes, self._last_id = store.summary()
        self.stats = OutboxStats(dropped=store.counter(DROPPED))
        self.recovered = self._count  # held in the file at start: sent as backlog
        self._unwritten: list[Entry] = []
        self._unwritten_put_ms: list[int] = []
        self._delete: list[int] = []
        self._deleting: set[int] = set()  # confirmed in memory, still in the file until their delete commits
        self._ranges: list[tuple[str, str, int, int]] = []
        self._known: dict[int, Entry] = {}
        self._by_key: dict[tuple[str, str], dict[int, Entry]] = {}
        self._live: deque[Entry] = deque()
        self._inflight: dict[int, Entry] = {}
        self._awaiting: deque[tuple[float, Entry]] = deque()
        self._awaiting_count = 0
        self._ready: list[tuple[int, Entry]] = []  # backlog read from the file, a heap by id
        self._retry: list[int] = []  # ids at or below the cursor that are due again, a heap
        self._cursor = 0  # the file has been read up to here
        self._file_done = False  # nothing beyond the cursor that memory does not hold
        self._rate = TokenBucket(replay_rate)
        self._episodes = DropEpisodes(name, max_messages, max_bytes)
        self._closed = False

    # -- queueing and writing -----------------------------------------------------------------------------------
    def put(self, message: OutMessage, now_ms: int) -> None:
        """Queue ``message``; it is written at the next ``flush`` and may be sent after it."""
        self._last_id += 1
        size = len(message.topic) + len(message.payload)
        entry = Entry(self._last_id, message.topic, message.payload, message.retain, message.key, size)
        self._unwritten.append(entry)
        self._unwritten_put_ms.append(now_ms)
        self._count += 1
        self._bytes += size
        self.stats.queued += 1
        if len(self._unwritten) > self.max_unwritten:  # only while writes fail: a write takes them every 20 ms
            self._bound_unwritten()

    @property
    def dirty(self) -> bool:
        """Something waits for ``flush``."""
        return bool(self._unwritten or self._delete or self._ranges or self._over_quota())

    def _over_quota(self) -> bool:
        return self._count > self.max_messages or self._bytes > self.max_bytes

    def flush(self) -> int:
        """Write what was queued and forget what was confirmed, then keep the quota, in one transaction, here and
        now. Returns how many messages the quota dropped. (The agent runs the same three steps with the write on a
        thread of its own: ``prepare``, ``store.write``, ``apply``.)"""
        if self._closed:  # a flush scheduled before the agent closed its outbox
            return 0
        work = self.prepare()
        return self.apply(work, self.store.write(work.batch))

    def prepare(self) -> Pending:
        """Take what waits to be written; its entries may be sent once ``apply`` has seen it written."""
        rows = [
            Row(e.id, e.topic, e.payload or b"", e.retain, e.key, e.size, ms)
            for e, ms in zip(self._unwritten, self._unwritten_put_ms, strict=True)
        ]
        batch = Batch(
            rows,
            self._delete,
            self._ranges,
            free_messages=max(0, self._count - self.max_messages),
            free_bytes=max(0, self._bytes - self.max_bytes),
            dropped_total=self.stats.dropped,
        )
        work = Pending(batch, self._unwritten, self._unwritten_put_ms)
        self._unwritten, self._unwritten_put_ms, self._delete, self._ranges = [], [], [], []
        return work

    def apply(self, work: Pending, written: Written) -> int:
        """``work`` is in the file: its new entries may go; forget what it deleted. How many the quota dropped."""
        for entry in work.entries:
            if entry.state is _State.QUEUED:
                self._remember(entry)
                self._live.append(entry)
        self._deleting.difference_update(work.batch.delete_ids)
        for row_id, size in written.deleted:
            if self._gone(row_id, size):
                self.stats.stored += 1
        dropped = freed = 0
        for row_id, size in written.dropped:
            # one the centre confirmed while the write was under way is not lost (the file's counter may count it
            # until the next drop writes this count again)
            if self._gone(row_id, size):
                dropped += 1
                freed += size
        while len(self._live) > LIVE_MAX:  # the oldest live ones wait in the file (their payload leaves memory)
            entry = self._live.popleft()
            if entry.state is _State.QUEUED:
                self._forget(entry)
        return self._count_drops(dropped, freed)

    def restore(self, work: Pending) -> None:
        """The write of ``work`` failed (nothing of it was committed): it waits for the next flush."""
        self._unwritten[:0], self._unwritten_put_ms[:0] = work.entries, work.put_ms
        self._delete[:0] = work.batch.delete_ids
        self._ranges[:0] = work.batch.ranges
        self._bound_unwritten()

    @property
    def unwritten(self) -> int:
        """Messages held in memory only, waiting to be written (many only while the file cannot be written)."""
        return len(self._unwritten)

    @property
    def quota_full(self) -> bool:
        """A quota episode is under way: the oldest messages are being dropped (until back under 90 %)."""
        return self._episodes.current is not None

    def _bound_unwritten(self) -> int:
        """Keep at most ``max_unwritten`` messages waiting for the file: the oldest go, counted. How many went."""
        excess = len(self._unwritten) - self.max_unwritten
        if excess <= 0:
            return 0
        gone = self._unwritten[:excess]
        del self._unwritten[:excess], self._unwritten_put_ms[:excess]
        for entry in gone:
            entry.state = _State.OUT
            entry.payload = None
            self._count -= 1
            self._bytes -= entry.size
        self.stats.memory_dropped += excess
        return excess

    def _count_drops(self, dropped: int, freed: int) -> int:
        if dropped:
            self.stats.dropped += dropped
            self.stats.dropped_bytes += freed
            self._episodes.dropped(dropped, freed, self.stats.dropped)
        else:
            self._episodes.held(self._count, self._bytes, self.stats.dropped)
        return dropped

    # -- sending ------------------------------------------------------------------------------------------------
    @property
    def room(self) -> int:
        """How many more messages the window takes now."""
        return max(0, self.max_inflight - len(self._inflight))

    def next_to_send(self, now: float) -> Entry | None:
        """The next message to hand to the client: live first, then backlog within the replay rate."""
        if self.room == 0:
            return None
        while self._live:
            entry = self._live.popleft()
            if entry.state is _State.QUEUED:
                return entry
        if not self._rate.ready(now):
            return None
        backlog = self._next_backlog()
        if backlog is not None:
            self._rate.take()
        return backlog

    def send_delay(self, now: float) -> float | None:
        """Seconds until backlog may go again (the rate), or None: nothing waits but for a change."""
        if self.room == 0 or (not self._ready and not self._retry and self._file_done):
            return None
        return self._rate.wait_s(now)

    def _next_backlog(self) -> Entry | None:
        while True:
            if self._retry and (not self._ready or self._retry[0] < self._ready[0][0]):
                self._load(heapq.heappop(self._retry) for _ in range(min(_PAGE, len(self._retry))))
                continue
            if not self._ready:
                if self._file_done or not self._read_page():
                    return None
                continue
            _, entry = heapq.heappop(self._ready)
            if entry.state is _State.QUEUED:
                return entry

    def _load(self, ids: Iterable[int]) -> None:
        self._take(self.store.fetch(list(ids)))

    def _read_page(self) -> bool:
        rows = self.store.page(self._cursor, _PAGE)
        if len(rows) < _PAGE:
            self._file_done = True
        if not rows:
            return False
        self._cursor = rows[-1].id
        self._take(rows)
        return True

    def _take(self, rows: list[Row]) -> None:
        for row in rows:
            if row.id not in self._known and row.id not in self._deleting:
                self._ready_row(row)

    def _ready_row(self, row: Row) -> None:
        entry = Entry(row.id, row.topic, row.payload, row.retain, row.key, row.size)
        self._remember(entry)
        heapq.heappush(self._ready, (entry.id, entry))

    def sent(self, token: int, entry: Entry, now: float) -> None:
        """Record that ``entry`` went out under ``token`` (the MQTT message id)."""
        entry.state = _State.INFLIGHT
        entry.sent_at = now
        self._inflight[token] = entry
        self.stats.sent += 1

    def unsent(self, entry: Entry) -> None:
        """Put back a message that could not be handed to the client."""
        entry.state = _State.QUEUED
        self._live.appendleft(entry)

    def acked(self, token: int) -> bool:
        """The broker acknowledged ``token``; False if it was not in flight (a late ack from an old connection)."""
        entry = self._inflight.pop(token, None)
        if entry is None:
            return False
        self.stats.acked += 1
        if entry.state is not _State.INFLIGHT:  # confirmed or dropped meanwhile
            return True
        if entry.key is None:  # confirmed at PUBACK (retained state, command results)
            self._confirm(entry)
            return True
        entry.state = _State.AWAITING
        entry.payload = None  # read again from the file if it must be resent
        self._awaiting.append((entry.sent_at, entry))
        self._awaiting_count += 1
        return True

    def connection_lost(self) -> int:
        """Send again what was in flight (first, oldest first) and what waits for Stored (backlog)."""
        back = sorted((e for e in self._inflight.values() if e.state is _State.INFLIGHT), key=lambda e: e.id)
        self._inflight.clear()
        for entry in back:
            entry.state = _State.QUEUED
        self._live.extendleft(reversed(back))
        again = 0
        while self._awaiting:
            _, entry = self._awaiting.popleft()
            if entry.state is _State.AWAITING:
                self._forget(entry)
                again += 1
        self.stats.resent += len(back) + again
        return len(back) + again

    def tick(self, now: float) -> int:
        """Messages that waited ``ack_timeout_s`` for Stored since last sent become due again; how many."""
        due = 0
        while self._awaiting:
            sent_at, entry = self._awaiting[0]
            waiting = entry.state is _State.AWAITING and entry.sent_at == sent_at
            if waiting and now - sent_at < self.ack_timeout_s:
                break
            self._awaiting.popleft()
            if waiting:
                self._forget(entry)
                due += 1
        self.stats.resent += due
        return due

    # -- confirmation -------------------------------------------------------------------------------------------
    def stored(self, ranges: Iterable[tuple[str, str, int, int]]) -> int:
        """The centre stored (device, run, first..last): forget those messages. How many memory held."""
        hits = 0
        for device, run, first, last in ranges:
            span = last - first + 1
            seqs = self._by_key.get((device, run))
            found: list[Entry] = []
            if seqs:
                if span <= len(seqs):
                    found = [e for s in range(first, last + 1) if (e := seqs.get(s)) is not None]
                else:
                    found = [e for s, e in seqs.items() if first <= s <= last]
            for entry in found:
                self._confirm(entry)
                self.stats.stored += 1
            hits += len(found)
            if len(found) < span:  # the rest may be in the file only (sent before a restart), or confirmed before
                self._ranges.append((device, run, first, last))
        return hits

    def _confirm(self, entry: Entry) -> None:
        self._gone(entry.id, entry.size)
        self._delete.append(entry.id)
        self._deleting.add(entry.id)

    # -- memory bookkeeping -------------------------------------------------------------------------------------
    def _remember(self, entry: Entry) -> None:
        self._known[entry.id] = entry
        if entry.key is not None:
            self._by_key.setdefault((entry.key[0], entry.key[1]), {})[entry.key[2]] = entry

    def _unindex(self, entry: Entry) -> None:
        if self._known.pop(entry.id, None) is None:
            return
        if entry.state is _State.AWAITING:
            self._awaiting_count -= 1
        entry.state = _State.OUT
        entry.payload = None
        if entry.key is not None:
            device_run = (entry.key[0], entry.key[1])
            seqs = self._by_key.get(device_run)
            if seqs is not None:
                seqs.pop(entry.key[2], None)
                if not seqs:
                    del self._by_key[device_run]

    def _gone(self, row_id: int, size: int) -> bool:
        """A message left the file (confirmed or dropped); False if it was counted gone already."""
        if row_id in self._deleting:  # confirmed in memory while a delete or drop of it was under way
            return False
        entry = self._known.get(row_id)
        if entry is not None:
            self._unindex(entry)
        self._count -= 1
        self._bytes -= size
        return True

    def _forget(self, entry: Entry) -> None:
        """``entry`` is due again but leaves memory: the file has it, the cursor or the retry heap finds it."""
        self._unindex(entry)
        if entry.id <= self._cursor:
            heapq.heappush(self._retry, entry.id)
        else:
            self._file_done = False

    # -- what is held -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Messages held until confirmed (queued, in flight, or sent and waiting for Stored)."""
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def unacked(self) -> int:
        """Messages not yet acknowledged by the broker on this connection (queued or in flight)."""
        return self._count - self._awaiting_count

    def oldest_age_s(self, now_ms: int) -> float:
        """Age of the oldest message not yet confirmed (0 when none)."""
        oldest = self.store.oldest_put_ms()
        if oldest is None and self._unwritten_put_ms:
            oldest = self._unwritten_put_ms[0]
        return 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)

    def close(self, write: bool = True) -> None:
        """Write what is pending (unless ``write`` is false: the file just failed) and close the file; later flushes
        do nothing."""
        if write and self.dirty:
            self.flush()
        self._closed = True
        self.store.close()
