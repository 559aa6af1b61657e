"""Modbus polling over worker processes (``workers:`` of the site config): both cores of a small edge box.

The parent keeps everything that must stay single: the outbox, the uplink and its publisher, MQTT sensors, the
command executor, the interlocks and the sluice gates' polling (their state feeds the interlocks; decision 031).
Each worker process polls and decodes its share of the other Modbus devices with the same ``ModbusPoller`` and
sends what it read to the parent in batches over a pipe: samples, online/offline changes, counter deltas and
poll-start lateness. A worker that dies is started again (its devices resume within ``RESTART_S``); a worker
whose parent is gone ends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import operator
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from device_profiles import Profile
from edge_agent.config import DeviceConfig, ModbusDefaults
from edge_agent.modbus_poller import ModbusPoller
from edge_agent.stats import HEALTH_COUNTERS, DeviceStats
from infra.clock import SystemClock
from infra.gc_tuning import tune_for_throughput
from telemetry import Sample

log = logging.getLogger("lifeline.edge.workers")

BATCH_S = 0.02  # a worker sends what it read at most this often (samples wait at most this long)
COUNTERS_S = 1.0  # and its devices' counters and poll lateness this often
RESTART_S = 1.0  # a dead worker is started again after this (doubling to RESTART_MAX_S while it keeps dying)
RESTART_MAX_S = 10.0
# sent as deltas every 0.5 s; readings are counted by the parent as the samples arrive (exact at any moment)
COUNTERS = ("polls", "poll_failures", "requests", "request_errors", "overruns", *HEALTH_COUNTERS)

# what a worker sends: a list of these tuples
#   ("s", device, ts_ms, values, quality)   a sample
#   ("o", device, online, reason)           online/offline change
#   ("c", {device: (counter deltas...)}, {device: [lateness_s...]})


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


AUTO_MIN_DEVICES = 500  # below this, ``auto`` keeps one process: one loop polls 3,500 devices a second


def resolve_workers(setting: int | str, modbus_devices: int) -> int:
    """How many worker processes: ``auto`` is the usable cores (from ``AUTO_MIN_DEVICES`` on); never more than
    devices; 1 is no worker at all (the agent's own loop polls)."""
    auto = usable_cores() if modbus_devices >= AUTO_MIN_DEVICES else 1
    n = auto if setting == "auto" else int(setting)
    return max(1, min(n, modbus_devices))


@dataclass(slots=True)
class Shard:
    """The devices of one worker and what it needs to poll them."""

    index: int
    devices: list[tuple[DeviceConfig, Profile, float]]  # device, profile, phase in s
    defaults: ModbusDefaults
    site: str
    keep_lateness: int
    log_level: str = "INFO"


def shard(
    devices: list[tuple[DeviceConfig, Profile, float]], n: int, defaults: ModbusDefaults, site: str, keep: int
) -> list[Shard]:
    """Round robin: neighbours in the config (often one station's devices) go to different workers."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    return [Shard(i, devices[i::n], defaults, site, keep, str(level)) for i in range(n)]


# -- the worker process -------------------------------------------------------------------------------------------
def worker_main(sh: Shard, conn: Connection, parent_pid: int) -> None:
    """Entry point of a worker process: poll the shard's devices until SIGTERM or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends the workers
    from infra import logs  # the agent's log format and level (a spawned process starts without them)

    logs.setup(sh.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker(sh, conn, parent_pid))


async def _worker(sh: Shard, conn: Connection, parent_pid: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    clock = SystemClock()
    batch: list[tuple[Any, ...]] = []
    stats = {d.id: DeviceStats() for d, _, _ in sh.devices}
    sent = {d: (0,) * len(COUNTERS) for d in stats}

    def sample_sink(device: str) -> Callable[[Sample], None]:
        return lambda s: batch.append(("s", device, s.ts, s.values, s.quality))

    def status_sink(device: str) -> Callable[[bool, str], None]:
        return lambda online, reason: batch.append(("o", device, online, reason))

    pollers = [
        ModbusPoller(
            d,
            p,
            sh.defaults,
            on_sample=sample_sink(d.id),
            on_status=status_sink(d.id),
            clock=clock,
            stats=stats[d.id],
            site=sh.site,
            phase_s=phase,
            keep_lateness=sh.keep_lateness,
        )
        for d, p, phase in sh.devices
    ]
    tasks = [asyncio.ensure_future(p.run()) for p in pollers]
    tune_for_throughput()
    last_counters = clock.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BATCH_S):
                    await stop.wait()
            if os.getppid() != parent_pid:
                break  # orphaned: the parent died without ending us
            now = clock.monotonic()
            if now - last_counters >= COUNTERS_S:
                last_counters = now
                batch.append(_counters(stats, sent))
            if batch:
                out, batch[:] = list(batch), []
                try:
                    conn.send(out)
                except (BrokenPipeError, OSError):
                    break
    finally:
        for p in pollers:
            p.request_stop()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await asyncio.gather(*tasks, return_exceptions=True)


_read_counters = operator.attrgetter(*COUNTERS)  # one C call a device: the loop below runs over every device


def _counters(stats: dict[str, DeviceStats], sent: dict[str, tuple[int, ...]]) -> tuple[Any, ...]:
    deltas: dict[str, tuple[int, ...]] = {}
    lateness: dict[str, list[float]] = {}
    for device, st in stats.items():
        now = _read_counters(st)
        before = sent[device]
        if now != before:
            deltas[device] = tuple(map(operator.sub, now, before))
            sent[device] = now
        if st.lateness_s:
            lateness[device] = st.lateness_s[:]
            st.lateness_s.clear()
    return ("c", deltas, lateness)


# -- the parent's side --------------------------------------------------------------------------------------------
@dataclass
class _Running:
    shard: Shard
    process: BaseProcess | None = None
    conn: Connection | None = None
    restarts: int = 0
    delay_s: float = RESTART_S
    devices: set[str] = field(default_factory=set)


# device, sample time (ms), values, quality: a sample's fields as the worker sent them (no model is built)
SampleHandler = Callable[[str, int, dict[str, Any], dict[str, Any]], None]
StatusHandler = Callable[[str, bool, str], None]


class WorkerPool:
    """Starts the workers, hands what they send to the agent, restarts the dead ones, ends them on ``close``."""

    def __init__(
        self, shards: list[Shard], on_sample: SampleHandler, on_status: StatusHandler, stats: dict[str, DeviceStats]
    ) -> None:
        self._ctx = mp.get_context("spawn")  # no fork: the parent runs the MQTT link's network thread
        self.workers = [_Running(s, devices={d.id for d, _, _ in s.devices}) for s in shards]
        self.on_sample = on_sample
        self.on_status = on_status
        self.stats = stats
        self.restarts = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def device_count(self) -> int:
        return sum(len(w.devices) for w in self.workers)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None and w.process.pid is not None]

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for w in self.workers:
            self._start(w)

    def _start(self, w: _Running) -> None:
        assert self._loop is not None
        receive, send = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=worker_main,
            args=(w.shard, send, os.getpid()),
            name=f"lifeline-edge-worker-{w.shard.index}",
            daemon=True,
        )
        proc.start()
        send.close()  # the child's end: EOF here once the child is gone
        w.process, w.conn = proc, receive
        self._loop.add_reader(receive.fileno(), self._readable, w)
        log.info("edge worker started index=%d pid=%s devices=%d", w.shard.index, proc.pid, len(w.devices))

    def _readable(self, w: _Running) -> None:
        assert w.conn is not None
        try:
            batch = w.conn.recv()
        except (EOFError, OSError):
            self._lost(w)
            return
        w.delay_s = RESTART_S  # it works: the next death restarts at once
        for item in batch:
            kind = item[0]
            if kind == "s":
                _, device, ts, values, quality = item
                self.stats[device].readings += len(values)
                self.on_sample(device, ts, values, quality)
            elif kind == "o":
                st = self.stats[item[1]]  # the device's health (edge_agent.health.modbus_values)
                st.offline_reason = "" if item[2] else item[3]
                st.last_error = item[3] or st.last_error
                self.on_status(item[1], item[2], item[3])
            else:
                self._merge(item[1], item[2])

    def _merge(self, deltas: dict[str, tuple[int, ...]], lateness: dict[str, list[float]]) -> None:
        for device, d in deltas.items():
            st = self.stats[device]
            for name, n in zip(COUNTERS, d, strict=True):
                setattr(st, name, getattr(st, name) + n)
        for device, values in lateness.items():
            st = self.stats[device]
            st.lateness_s.extend(values)

    def _lost(self, w: _Running) -> None:
        assert self._loop is not None
        assert w.conn is not None
        assert w.process is not None
        self._loop.remove_reader(w.conn.fileno())
        w.conn.close()
        w.conn = None
        w.process.join(1.0)
        code = w.process.exitcode
        w.process = None
        if self._closing:
            return
        log.error(
            "edge worker died index=%d exitcode=%s devices=%d restart_in_s=%g",
            w.shard.index,
            code,
            len(w.devices),
            w.delay_s,
        )
        w.restarts += 1
        self.restarts += 1
        delay, w.delay_s = w.delay_s, min(w.delay_s * 2, RESTART_MAX_S)
        self._loop.call_later(delay, self._restart, w)

    def _restart(self, w: _Running) -> None:
        if not self._closing and w.process is None:
            self._start(w)

    def close(self, timeout_s: float = 5.0) -> None:
        """End every worker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        self._closing = True
        for w in self.workers:
            if w.process is not None:
                w.process.terminate()
        for w in self.workers:
            if w.process is not None:
                w.process.join(timeout_s)
                if w.process.exitcode is None:
                    w.process.kill()
                    w.process.join(2.0)
            if w.conn is not None:
                if self._loop is not None:
                    self._loop.remove_reader(w.conn.fileno())
                w.conn.close()
                w.conn = None
            w.process = None
