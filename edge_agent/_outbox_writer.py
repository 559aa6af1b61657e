"""The shell around the outbox: writes its file on a thread of its own, at most every FLUSH_S, off the agent's loop.

Measured here: a commit per message (1,000 devices polled out of phase) costs about 280 µs a message, mostly WAL
checkpoints; 100 messages a commit cost about 13 µs each, so 20 ms of coalescing (invisible next to a 1 s poll) pays.
And on a busy disk a write() stalls for hundreds of ms: with the writes on the loop, `lifeline bench edge` beside
other disk users showed p99 poll lateness of 280 ms and more (5 ms with the outbox on tmpfs); off the loop, 4-5 ms.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from edge_agent._outbox_store import OutboxStore, Written
from edge_agent.config import OUTBOX_FILE, EdgeConfig
from edge_agent.health import DEFAULT_MIN_FREE_BYTES, OutboxFault, OutboxFaultLatch, classify, free_bytes
from edge_agent.outbox import Entry, Outbox, Pending
from infra.clock import Clock

log = logging.getLogger("lifeline.edge.outbox")

FLUSH_S = 0.02
WRITE_RETRY_S = 1.0


def new_run_id(now: float) -> str:
    """A new agent run's id: UTC start time (sorts by start) and random bits (two starts in one second)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(4)


def make_outbox(cfg: EdgeConfig) -> Outbox:
    """The site's outbox: a file in ``state_dir``, or memory only without one."""
    path = cfg.state_dir / OUTBOX_FILE if cfg.state_dir is not None else ":memory:"
    p = cfg.publish
    return Outbox(
        OutboxStore(path),
        max_inflight=p.max_inflight,
        max_messages=p.buffer_max_messages,
        max_bytes=p.outbox_max_bytes,
        replay_rate=p.replay_rate,
        ack_timeout_s=p.ack_timeout_s,
        max_unwritten=p.memory_max_messages,
        name=cfg.site,
    )


class SampleJournal:
    """``sample_journal``: one JSON line per telemetry message once it is in the outbox file (device, run, seq and
    its samples' times), appended and flushed (it survives a kill of the agent), so that a test or an operator can
    compare what the edge took with what InfluxDB holds."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("ab")
        self.failures = 0  # appends that failed (a full disk): those lines may be late or missing; the outbox has them

    def __call__(self, entries: list[Entry]) -> None:
        lines = []
        for e in entries:
            if e.key is None or e.payload is None:
                continue
            ts = [s["ts"] for s in orjson.loads(e.payload)["samples"]]
            lines.append(orjson.dumps({"device": e.key[0], "run": e.key[1], "seq": e.key[2], "ts": ts}))
        if not lines:
            return
        try:
            self._file.write(b"\n".join(lines) + b"\n")
            self._file.flush()
        except OSError as exc:  # a full disk: the messages are in the outbox; only this record of them is short
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:
                log.error(  # noqa: TRY400 (classified: a full disk, no traceback)
                    "sample journal append failed file=%s error=%r failures=%d", self.path, str(exc), self.failures
                )

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:  # the last lines could not be flushed (a full disk)
            log.error("sample journal close failed file=%s error=%r", self.path, str(exc))  # noqa: TRY400


class OutboxWriter:
    """Writes ``outbox`` (one write at a time) and calls ``written`` (wake the sender) once a write is in."""

    def __init__(
        self,
        outbox: Outbox,
        written: Callable[[], None],
        clock: Clock,
        site: str,
        on_written: Callable[[list[Entry]], None] | None = None,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        health_interval_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self.written = written
        self.on_written = on_written  # told which messages a write put in the file (the sample journal)
        self.clock = clock
        self.site = site
        self._pool = ThreadPoolExecutor(1, "outbox-writer") if outbox.store.threaded else None
        self._pending = False
        self._writing = False
        self.fault: OutboxFault | None = None  # why the last write failed; None once a write succeeds
        self.error = ""  # that write's error, as SQLite or the OS said it
        self.failures: dict[OutboxFault, int] = dict.fromkeys(OutboxFault, 0)  # failed writes by fault, this run
        # the fault as the health reports it: latched from one report to the next, held while the disk stays short
        self.health = OutboxFaultLatch(min_free_bytes=min_free_bytes, hold_s=health_interval_s)

    @property
    def failing(self) -> bool:
        """The last write failed: what is queued waits in memory (bounded) and is retried every WRITE_RETRY_S."""
        return self.fault is not None

    def schedule(self) -> None:
        """Write within FLUSH_S, however many messages come meanwhile (one transaction)."""
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not running (a caller outside the agent's loop): write now
            self.flush()
            return
        self._pending = True
        loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Start writing what waits (in memory, or outside a loop: write it here and now)."""
        self._pending = False
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._pool is None or loop is None:
            self._write_here()
            self.written()
            return
        if self._writing or not self.outbox.dirty:  # the write under way schedules the next
            return
        work = self.outbox.prepare()
        self._writing = True
        future = self._pool.submit(self.outbox.store.write, work.batch)
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._done, work, f))

    def _write_here(self) -> None:
        """Write what waits on this thread (in memory, outside a loop, or at the close)."""
        work = self.outbox.prepare()
        self.outbox.apply(work, self.outbox.store.write(work.batch))
        self._succeeded()
        if self.on_written is not None:
            self.on_written(work.entries)

    def _done(self, work: Pending, future: Future[Written]) -> None:
        self._writing = False
        exc = future.exception()
        if exc is not None:
            self.outbox.restore(work)  # nothing of it was committed: it goes with the next write
            fault = classify(exc)
            if fault is None:  # not a storage error: a bug, which must not pass for a full disk
                raise exc
            self._failed(fault, exc)
            # the next attempt in WRITE_RETRY_S, not at every message meanwhile (schedule waits for this one)
            self._pending = True
            asyncio.get_running_loop().call_later(WRITE_RETRY_S, self.flush)
            return
        self._succeeded()
        self.outbox.apply(work, future.result())
        if self.on_written is not None:
            self.on_written(work.entries)
        self.written()
        if self.outbox.dirty:
            self.schedule()

    def _succeeded(self) -> None:
        """A write went in: the writer is no longer failing (the health's fault may hold: OutboxFaultLatch)."""
        if self.fault is not None:
            log.warning(
                "outbox writes again site=%s after=%s failed_writes=%d memory_dropped=%d",
                self.site,
                self.fault.value,
                sum(self.failures.values()),
                self.outbox.stats.memory_dropped,
            )
            self.fault, self.error = None, ""
        self.health.written()

    def _failed(self, fault: OutboxFault, exc: BaseException) -> None:
        """Count a failed write; log the first of an episode and a change of fault (not every retry)."""
        self.failures[fault] += 1
        changed = fault is not self.fault
        self.fault, self.error = fault, str(exc)
        self.health.failed(fault, self.error, self.clock.monotonic())
        if changed:
            folder = self.outbox.store.folder
            log.error(
                "outbox write failed site=%s fault=%s error=%r folder=%s free_bytes=%s in_memory=%d "
                "memory_max=%d action=keep in memory, retry every %g s (logged once; health point outbox_fault)",
                self.site,
                fault.value,
                self.error,
                folder,
                free_bytes(folder),
                self.outbox.unwritten,
                self.outbox.max_unwritten,
                WRITE_RETRY_S,
            )

    async def close(self, timeout_s: float = 10.0) -> None:
        """Wait for the write under way (bounded), write the rest here, close the file."""
        deadline = self.clock.monotonic() + timeout_s
        while self._writing and self.clock.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the writer thread reports through call_soon_threadsafe
        written = True
        if self.outbox.dirty and not self._writing:
            work = self.outbox.prepare()
            try:
                self.outbox.apply(work, self.outbox.store.write(work.batch))
            except (sqlite3.Error, OSError) as exc:  # classified: the file still fails (a full disk)
                self.outbox.restore(work)
                written = False
                log.error(  # noqa: TRY400 (a classified failure, not a bug: no traceback)
                    "outbox could not write at stop site=%s fault=%s error=%r lost_messages=%d (never written)",
                    self.site,
                    classify(exc),
                    str(exc),
                    self.outbox.unwritten,
                )
            else:
                if self.on_written is not None:
                    self.on_written(work.entries)
        self.outbox.close(write=written)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
