"""The bridge: consume telemetry, validate, encode line protocol, write batches to InfluxDB, then acknowledge.

At-least-once end to end: a message is acknowledged to the broker only after InfluxDB accepted every reading in
it (or the reading was kept in the dead letters with InfluxDB's reason). A crash before the ack makes the broker
send it again; the sample time at the edge makes the second write land on the same InfluxDB point.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from broker_bridge.config import BridgeConfig
from broker_bridge.deadletter import DeadLetterStore
from broker_bridge.lineproto import LineEncoder
from broker_bridge.validate import Invalid, Registry, check
from broker_bridge.writer import Rejected, Retry, TooLarge, V1Writer, Writer, make_writer
from device_profiles import load_catalogue
from telemetry.metrics import bound_port, serve_metrics
from telemetry.mqtt_consumer import Consumer, Incoming

log = logging.getLogger("lifeline.bridge")


@dataclass(slots=True)
class Item:
    incoming: Incoming
    lines: list[str]
    received: float  # monotonic
    newest_ts: int | None = None  # the newest sample time in the message (ms), for the sample-to-stored age
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    items: list[Item] = field(default_factory=list)
    lines: int = 0
    started: float = 0.0


@dataclass(slots=True)
class Counters:
    received: int = 0
    written_messages: int = 0
    written_points: int = 0
    dead_lettered: int = 0
    dead_lettered_points: int = 0
    retries: int = 0
    batches: int = 0
    splits: int = 0
    acks_lost: int = 0
    batch_seconds_sum: float = 0.0
    last_batch_seconds: float = 0.0


class Bridge:
    def __init__(self, config: BridgeConfig, *, writer: Writer | None = None) -> None:
        self.config = config
        self.registry = Registry.from_sites(load_catalogue(), list(config.validation.sites))
        self.consumer = Consumer(config.broker, config.subscription)
        self.writer: Writer = writer or make_writer(config.influx)
        self.dead = DeadLetterStore(config.dead_letter_path)
        self.encoder = LineEncoder()
        self.counters = Counters()
        self.metrics_port: int | None = None
        self.influx_ok = True
        self._batches: asyncio.Queue[Batch] = asyncio.Queue(maxsize=2)
        # sample-to-stored age of the last messages stored (ms): from the edge's sampling time to InfluxDB's answer
        self.sample_age_ms: deque[float] = deque(maxlen=100_000)

    # -- running -----------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.config.influx.create_database and isinstance(self.writer, V1Writer):
            await self._retrying(self.writer.create_database, "create database")
        metrics = None
        if self.config.metrics_port is not None:
            metrics = await serve_metrics(self.metrics_text, self.config.metrics_port)
            self.metrics_port = bound_port(metrics)
        self.consumer.start()
        writer_task = asyncio.ensure_future(self._write_loop())
        try:
            await self._consume_loop(stop)
        finally:
            try:  # finish and acknowledge the batches under way; unacknowledged ones come again after a restart
                await asyncio.wait_for(self._batches.join(), self.config.influx.timeout_s + 5)
            except TimeoutError:
                log.warning("stopping with batches unwritten (InfluxDB unavailable): the broker keeps them")
            writer_task.cancel()
            await asyncio.gather(writer_task, return_exceptions=True)
            await self.consumer.stop()
            await self.writer.close()
            self.dead.close()
            if metrics is not None:
                metrics.close()

    async def _consume_loop(self, stop: asyncio.Event) -> None:
        cfg = self.config.batch
        batch = Batch()
        inbox = self.consumer.inbox
        while not stop.is_set():
            wait = cfg.max_delay_s if not batch.items else max(0.0, batch.started + cfg.max_delay_s - time.monotonic())
            await self.consumer.wait(min(wait, 0.2))
            while inbox and batch.lines < cfg.max_points:
                item = self._prepare(inbox.popleft())
                if item is None:
                    continue
                if not batch.items:
                    batch.started = item.received
                batch.items.append(item)
                batch.lines += len(item.lines)
            full = batch.lines >= cfg.max_points
            due = batch.items and time.monotonic() - batch.started >= cfg.max_delay_s
            if full or due:
                await self._batches.put(batch)  # waits while two batches are ahead: backpressure
                batch = Batch()
        if batch.items:
            await self._batches.put(batch)

    def _prepare(self, incoming: Incoming) -> Item | None:
        """Validate and encode one message; a bad one is dead-lettered and acknowledged here."""
        self.counters.received += 1
        now = time.time()
        v = self.config.validation
        try:
            msg = check(incoming.topic, incoming.payload, self.registry, int(now * 1000),
                        int(v.max_future_s * 1000), int(v.max_age_s * 1000))  # fmt: skip
            lines = self.encoder.encode(msg)
        except (Invalid, ValueError) as exc:
            self._dead_letter(incoming, str(exc), "validate", now)
            self._ack(incoming)
            return None
        return Item(incoming, lines, time.monotonic(), max(sample.ts for sample in msg.samples))

    def _dead_letter(self, incoming: Incoming, error: str, stage: str, now: float, points: int = 0) -> None:
        self.dead.add(int(now * 1000), incoming.topic, incoming.payload, error, stage)
        self.counters.dead_lettered += 1
        self.counters.dead_lettered_points += points
        if self.counters.dead_lettered in (1, 10, 100, 1000) or self.counters.dead_lettered % 10000 == 0:
            log.warning("dead letter topic=%s stage=%s error=%r total=%d", incoming.topic, stage, error[:300],
                        self.counters.dead_lettered)  # fmt: skip

    def _ack(self, incoming: Incoming) -> None:
        if not self.consumer.ack(incoming):
            self.counters.acks_lost += 1

    # -- writing -----------------------------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            batch = await self._batches.get()
            try:
                started = time.monotonic()
                pairs = [(line, item) for item in batch.items for line in item.lines]
                await self._write_pairs(pairs)
                now_ms = time.time() * 1000
                for item in batch.items:
                    if item.newest_ts is not None:
                        self.sample_age_ms.append(now_ms - item.newest_ts)
                    if item.problems:
                        self._dead_letter(item.incoming, "; ".join(item.problems)[:4000], "influx", time.time(),
                                          len(item.problems))  # fmt: skip
                    else:
                        self.counters.written_messages += 1
                    self._ack(item.incoming)
                took = time.monotonic() - started
                self.counters.batches += 1
                self.counters.batch_seconds_sum += took
                self.counters.last_batch_seconds = took
            finally:
                self._batches.task_done()

    async def _write_pairs(self, pairs: list[tuple[str, Item]]) -> None:
        """Write these lines; find and set aside the ones InfluxDB refuses for good (bisection)."""
        if not pairs:
            return
        body = "\n".join(line for line, _ in pairs).encode()
        try:
            await self._retrying(lambda: self.writer.write(body), f"write of {len(pairs)} points")
        except (Rejected, TooLarge) as exc:  # refused points (or too large a body): halve until found
            if len(pairs) == 1:
                line, item = pairs[0]
                item.problems.append(f"InfluxDB refused {line[:300]!r}: {exc.reason}")
                return
            self.counters.splits += 1
            await self._write_pairs(pairs[: len(pairs) // 2])
            await self._write_pairs(pairs[len(pairs) // 2 :])
            return
        self.counters.written_points += len(pairs)

    async def _retrying(self, call: object, what: str) -> None:
        """Run ``call`` until it stops raising ``Retry``, with exponential backoff (``Retry-After`` wins)."""
        backoff = self.config.retry.initial_s
        while True:
            try:
                await call()  # type: ignore[operator]
            except Retry as exc:
                self.counters.retries += 1
                if self.influx_ok:
                    log.error(  # noqa: TRY400 - an expected, classified failure: no traceback
                        "InfluxDB write failing what=%s reason=%r action=retry with backoff (logged once)",
                        what,
                        exc.reason,
                    )
                    self.influx_ok = False
                await asyncio.sleep(exc.retry_after_s if exc.retry_after_s is not None else backoff)
                backoff = min(backoff * 2, self.config.retry.max_s)
                continue
            if not self.influx_ok:
                log.info("InfluxDB writes succeed again what=%s", what)
                self.influx_ok = True
            return

    # -- metrics -----------------------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        c = self.counters
        counters = {
            "received_total": ("messages received", c.received),
            "written_messages_total": ("messages stored in full", c.written_messages),
            "written_points_total": ("points InfluxDB accepted", c.written_points),
            "dead_lettered_total": ("messages kept in the dead letters", c.dead_lettered),
            "dead_lettered_points_total": ("points InfluxDB refused (dead-lettered)", c.dead_lettered_points),
            "retries_total": ("write attempts that will be tried again", c.retries),
            "batches_total": ("batches written", c.batches),
            "batch_splits_total": ("batches split to find refused points", c.splits),
            "acks_lost_total": ("acknowledgements for a lost connection (the broker sends again)", c.acks_lost),
            "batch_seconds_sum": ("time spent writing batches", c.batch_seconds_sum),
        }
        lines: list[str] = [
            "# HELP lifeline_bridge_sample_age_seconds edge sampling time to stored, last 100k messages",
            "# TYPE lifeline_bridge_sample_age_seconds summary",
        ]
        for name, (help_text, value) in counters.items():
            lines += [f"# HELP lifeline_bridge_{name} {help_text}", f"# TYPE lifeline_bridge_{name} counter",
                      f"lifeline_bridge_{name} {value}"]  # fmt: skip
        ages = sorted(self.sample_age_ms)
        for q in (0.5, 0.99):
            value = ages[min(len(ages) - 1, int(q * len(ages)))] / 1000 if ages else float("nan")
            lines.append(f'lifeline_bridge_sample_age_seconds{{quantile="{q}"}} {value:.4f}')
        gauges = {
            "inbox_messages": len(self.consumer.inbox),
            "last_batch_seconds": c.last_batch_seconds,
            "broker_connected": int(self.consumer.connected),
            "influx_ok": int(self.influx_ok),
        }
        for name, value in gauges.items():
            lines += [f"# TYPE lifeline_bridge_{name} gauge", f"lifeline_bridge_{name} {value}"]
        return "\n".join(lines) + "\n"
