"""The bridge: consume telemetry, validate, encode line protocol, write batches to InfluxDB, confirm, acknowledge.

At-least-once end to end: a message is acknowledged to the broker only after InfluxDB accepted every reading in
it (or the message, or the readings InfluxDB refused, were kept in the dead letters with the reason). A crash
before the ack makes the broker send it again; the sample time at the edge makes the second write land on the same
InfluxDB point.

After each batch the bridge tells each site's edge what it stored (``Stored`` on ``lifeline/v1/{site}/agent/
stored``: seq ranges per device and agent run) so that the edge may drop those messages from its disk outbox.
Order: write (and dead-letter) -> hand the Stored messages to their publisher -> acknowledge to the broker. Both
confirmations come only after the data is durable, so no order loses data; the order decides who pays if the
bridge dies between them: here the broker still has the messages and sends them again (a rewrite at the centre,
idempotent), where the other order would leave the edge to resend them over the site's link after its time-out.
A Stored lost on the way costs that resend, nothing more, so its PUBACK is not awaited. The Stored messages have a
connection of their own (client id ``{client_id}-stored``): on the consumer's, the client reads as many packets per read
call as it has publishes awaiting their PUBACK, which broke the consumer's bound on its intake (measured: 1,667
messages held against a bound of 1,000).
Messages that failed only transiently (InfluxDB unavailable, the dead-letter store failing) are neither confirmed
nor acknowledged: the batch is retried, or the broker sends the message again after a reconnect.

A stored reading is never overwritten with another value (``broker_bridge.overwrite``): a line with the time of a
stored reading of the same series and another value is refused before the write and its message dead-lettered
(stage ``overwrite``); the few lines the guard cannot judge from memory are read from InfluxDB, one read a batch.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

from broker_bridge.config import BridgeConfig
from broker_bridge.overwrite import Guard, Verdict
from broker_bridge.stored import stored_messages
from device_profiles import load_catalogue
from device_profiles.validate import Invalid, Origin, Registry, SiteLoader, check
from infra.deadletter import DeadLetterStore
from infra.metrics import Metric, bound_port, counter, gauge, registry, render, serve_metrics, summary
from infra.mqtt import Consumer, Incoming, Publisher
from storage import InfluxQuery, LineEncoder, QueryError, Retry, RetryingWriter, Series, V1Writer, Writer, make_writer
from storage import influxql as ql
from storage.lineproto import series_key
from storage.schema import DEVICE, PROFILE, SITE
from telemetry import encode, topics
from telemetry.wire import TelemetryLike

log = logging.getLogger("lifeline.bridge")


@dataclass(frozen=True, slots=True)
class Target:
    """The series of a message's lines, as InfluxDB names it (measurement and its non-empty tags)."""

    series: str  # the line's measurement and tags, as written
    measurement: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Check:
    """A line the overwrite guard could not judge from memory, and its time: what InfluxDB holds is read first."""

    line: str
    ts: int


@dataclass(slots=True)
class Item:
    incoming: Incoming
    lines: list[str]
    received: float  # monotonic
    newest_ts: int | None = None  # the newest sample time in the message (ms), for the sample-to-stored age
    origin: Origin | None = None  # which edge message (None: not attributable to its topic's device; never confirmed)
    kept: bool = False  # already in the dead letters (refused by validation): nothing to write
    problems: list[str] = field(default_factory=list)
    stage: str = "influx"  # the dead letters' stage of its problems
    target: Target | None = None  # set when some lines are to be checked
    checks: list[Check] | None = None  # the lines to check first (None: none)


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
    keep_failures: int = 0
    stored_published: int = 0
    stored_ranges: int = 0
    stored_unsent: int = 0
    overwrites_refused: int = 0
    overwrite_checks: int = 0
    overwrite_reads: int = 0
    batch_seconds_sum: float = 0.0
    last_batch_seconds: float = 0.0
    last_write_at: float = 0.0  # Unix time InfluxDB last accepted a batch


class Bridge:
    def __init__(
        self, config: BridgeConfig, *, writer: Writer | None = None, load_site: SiteLoader | None = None
    ) -> None:
        """``load_site`` reads the site files of ``validation.sites`` (needed when there are any)."""
        self.config = config
        self.registry = Registry.from_sites(load_catalogue(), list(config.validation.sites), load_site)
        self.consumer = Consumer(config.broker, config.subscription)
        self.confirmer = Publisher(config.publisher or config.broker, f"{config.subscription.client_id}-stored")
        self.counters = Counters()
        self.writer: Writer = writer or make_writer(config.influx)
        self.out = RetryingWriter(self.writer, config.retry, stats=self.counters)  # storage's one retry policy
        self.dead = DeadLetterStore(config.dead_letter_path, source="bridge")
        self.encoder = LineEncoder()
        guard = config.overwrite
        self.guard = Guard(guard.per_series, guard.max_series, trust_mark=guard.trust_mark)
        self.reader = InfluxQuery(config.influx)  # the overwrite checks (the bridge's account only reads)
        self.metrics_port: int | None = None
        self._batches: asyncio.Queue[Batch] = asyncio.Queue(maxsize=2)
        # sample-to-stored age of the last messages stored (ms): from the edge's sampling time to InfluxDB's answer
        self.sample_age_ms: deque[float] = deque(maxlen=100_000)

    # -- running -----------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.config.influx.create_database and isinstance(self.writer, V1Writer):
            await self.out.retrying(self.writer.create_database, "create database")
        metrics = None
        if self.config.metrics_port is not None:
            metrics = await serve_metrics(registry(self), self.config.metrics_port)
            self.metrics_port = bound_port(metrics)
        self.confirmer.start()
        self.consumer.start()
        writers = [asyncio.ensure_future(self._write_loop()) for _ in range(self.config.batch.concurrency)]
        try:
            await self._consume_loop(stop)
        finally:
            try:  # finish and acknowledge the batches under way; unacknowledged ones come again after a restart
                await asyncio.wait_for(self._batches.join(), self.config.influx.timeout_s + 5)
            except TimeoutError:
                log.warning("stopping with batches unwritten (InfluxDB unavailable): the broker keeps them")
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
            await self.consumer.stop()
            await self.confirmer.close()
            await self.writer.close()
            await self.reader.aclose()
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
            now, received = time.time(), time.monotonic()  # once a burst (at most max_points lines, well under 1 s)
            while inbox and batch.lines < cfg.max_points:
                item = self._prepare(inbox.popleft(), now, received)
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

    def _prepare(self, incoming: Incoming, now: float, received: float) -> Item | None:
        """Validate and encode one message; a bad one is dead-lettered here (and confirmed with its batch)."""
        self.counters.received += 1
        v = self.config.validation
        origin = None
        try:
            msg = check(
                incoming.topic,
                incoming.payload,
                self.registry,
                int(now * 1000),
                int(v.max_future_s * 1000),
                int(v.max_age_s * 1000),
            )
            origin = Origin(msg.site, msg.device, msg.run, msg.seq)
            lines = self.encoder.encode(msg)
        except (Invalid, ValueError) as exc:
            if isinstance(exc, Invalid):
                origin = exc.origin
            if not self._dead_letter(incoming, str(exc), "validate", now):
                return None  # not kept: neither confirmed nor acknowledged, the broker sends it again
            return Item(incoming, [], received, origin=origin, kept=True)
        samples = msg.samples
        newest = samples[0].ts if len(samples) == 1 else max(sample.ts for sample in samples)
        item = Item(incoming, lines, received, newest, origin)
        if lines:
            self._guard(item, msg)
        return item

    def _guard(self, item: Item, msg: TelemetryLike) -> None:
        """The overwrite guard on the message's lines: accepted, refused (the message's problem), or to check first."""
        lines = item.lines
        first = lines[0]
        space = first.find(" ")  # one message, one series; an escaped space in it is rare
        series = first[:space] if first[space - 1] != "\\" else series_key(first)
        samples = msg.samples
        if len(samples) == 1 and len(lines) == 1:
            times = [samples[0].ts]
        elif len(samples) == len(lines):  # one line a sample (a sample without a field has none)
            times = [sample.ts for sample in samples]
        else:
            times = [int(line[line.rfind(" ") + 1 :]) for line in lines]
        verdicts = self.guard.admit_all(series, lines, times)
        if not verdicts:
            return
        refused: set[int] = set()
        checks: list[Check] = []
        for index, verdict, why in verdicts:
            if verdict is Verdict.REFUSE:
                item.problems.append(why)
                item.stage = "overwrite"
                self.counters.overwrites_refused += 1
                refused.add(index)
            else:
                checks.append(Check(lines[index], times[index]))
        if refused:
            item.lines = [line for index, line in enumerate(lines) if index not in refused]
        if checks:
            item.checks = checks
            tags = {k: v for k, v in msg.tags.items() if k and v and k not in (SITE, DEVICE, PROFILE)}
            tags.update((k, v) for k, v in ((SITE, msg.site), (DEVICE, msg.device), (PROFILE, msg.profile)) if v)
            item.target = Target(series, msg.measurement, tuple(sorted(tags.items())))

    def _dead_letter(self, incoming: Incoming, error: str, stage: str, now: float, points: int = 0) -> bool:
        """Keep the message in the dead letters; False if the store failed (a transient failure: not acked)."""
        try:
            self.dead.add(int(now * 1000), incoming.topic, incoming.payload, error, stage=stage)
        except sqlite3.Error as exc:
            self.counters.keep_failures += 1
            if self.counters.keep_failures in (1, 10, 100, 1000) or self.counters.keep_failures % 10000 == 0:
                log.error(  # noqa: TRY400 - a classified failure with a named action: no traceback
                    "dead-letter store failing path=%s topic=%s reason=%r action=leave unacknowledged total=%d",
                    self.dead.path,
                    incoming.topic,
                    str(exc),
                    self.counters.keep_failures,
                )
            return False
        self.counters.dead_lettered += 1
        self.counters.dead_lettered_points += points
        if self.counters.dead_lettered in (1, 10, 100, 1000) or self.counters.dead_lettered % 10000 == 0:
            log.warning(
                "dead letter topic=%s stage=%s error=%r total=%d",
                incoming.topic,
                stage,
                error[:300],
                self.counters.dead_lettered,
            )
        return True

    def _ack(self, incoming: Incoming) -> None:
        if not self.consumer.ack(incoming):
            self.counters.acks_lost += 1

    # -- writing -----------------------------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            batch = await self._batches.get()
            try:
                started = time.monotonic()
                await self._check(batch)
                await self._write_batch(batch)
                self._settle(batch)
                took = time.monotonic() - started
                self.counters.batches += 1
                self.counters.batch_seconds_sum += took
                self.counters.last_batch_seconds = took
                if batch.lines:
                    self.counters.last_write_at = time.time()
            finally:
                self._batches.task_done()

    def _settle(self, batch: Batch) -> None:
        """After the write: dead-letter what InfluxDB refused, confirm per site what is kept, then acknowledge."""
        now_ms = time.time() * 1000
        done: list[Item] = []
        for item in batch.items:
            if item.kept:
                done.append(item)
                continue
            if item.newest_ts is not None:
                self.sample_age_ms.append(now_ms - item.newest_ts)
            if item.problems:
                if not self._dead_letter(
                    item.incoming, "; ".join(item.problems)[:4000], item.stage, time.time(), len(item.problems)
                ):
                    continue  # not kept: the broker sends it again
            else:
                self.counters.written_messages += 1
            done.append(item)
        self._confirm([item.origin for item in done if item.origin is not None])
        for item in done:
            self._ack(item.incoming)

    def _confirm(self, origins: list[Origin]) -> None:
        """Publish what this bridge stored, one Stored message per site (QoS 1, not retained)."""
        if not origins:
            return
        bridge = self.config.subscription.client_id
        for stored in stored_messages(origins, bridge, int(time.time() * 1000)):
            if self.confirmer.publish_nowait(topics.stored(stored.site), encode(stored), qos=1, retain=False):
                self.counters.stored_published += 1
                self.counters.stored_ranges += len(stored.ranges)
            else:  # no connection (a broker outage): the edge resends after its time-out
                self.counters.stored_unsent += 1
                if self.counters.stored_unsent in (1, 10, 100, 1000) or self.counters.stored_unsent % 10000 == 0:
                    log.warning(
                        "stored confirmation not sent site=%s reason='not connected' total=%d",
                        stored.site,
                        self.counters.stored_unsent,
                    )

    @property
    def influx_ok(self) -> bool:
        """False while InfluxDB writes are failing (and being retried)."""
        return self.out.ok

    async def _write_batch(self, batch: Batch) -> None:
        """Write the batch's lines (storage's ``write_lines``: one body; refused lines found by bisection, the rest
        written); a refused line's message gets InfluxDB's reason and goes to the dead letters in ``_settle``."""
        if not batch.lines:
            return
        lines = list(chain.from_iterable(item.lines for item in batch.items))
        refused = await self.out.write_lines(lines, f"write of {batch.lines} points")
        if refused:  # rare: find each refused line's message
            owners = [item for item in batch.items for _ in item.lines]
            for r in refused:
                owners[r.index].problems.append(f"InfluxDB refused {r.line[:300]!r}: {r.reason}")
                self.guard.forget(series_key(r.line), int(r.line[r.line.rfind(" ") + 1 :]), r.line)
        self.counters.written_points += len(lines) - len(refused)

    # -- the overwrite checks ------------------------------------------------------------------------------------
    async def _check(self, batch: Batch) -> None:
        """Read what InfluxDB holds at the times of the batch's checked lines (one read; one more for the series
        whose mark is still to be learnt) and refuse the lines that would change a stored reading."""
        items = [item for item in batch.items if item.checks is not None and item.target is not None]
        if not items:
            return
        spans: dict[Target, tuple[int, int]] = {}
        for item in items:
            assert item.target is not None
            assert item.checks is not None
            lo, hi = spans.get(item.target, (item.checks[0].ts, item.checks[0].ts))
            for c in item.checks:
                lo, hi = min(lo, c.ts), max(hi, c.ts)
            spans[item.target] = (lo, hi)
        stored = _rows(await self._read([self._statement(t, lo, hi + 1) for t, (lo, hi) in spans.items()]))
        learn = [t for t in spans if self.guard.needs_mark(t.series)]
        if learn:
            newest = _rows(await self._read([self._statement(t) for t in learn]))
            for t in learn:
                self.guard.learn(t.series, max(newest.get(_key(t), {}), default=None))
        for item in items:
            assert item.target is not None
            assert item.checks is not None
            rows = stored.get(_key(item.target))
            if not rows:  # nothing stored at any of these times (the common case after a start)
                self.counters.overwrite_checks += len(item.checks)
                self.guard.verified(item.target.series, [c.ts for c in item.checks])
                item.checks = None
                continue
            refused: set[str] = set()
            for c in item.checks:
                self.counters.overwrite_checks += 1
                why = self.guard.checked(item.target.series, c.line, c.ts, rows.get(c.ts))
                if why:
                    item.problems.append(why)
                    item.stage = "overwrite"
                    self.counters.overwrites_refused += 1
                    refused.add(c.line)
            if refused:
                batch.lines -= len(refused)
                item.lines = [line for line in item.lines if line not in refused]
            item.checks = None

    def _statement(self, target: Target, start_ms: int | None = None, end_ms: int | None = None) -> str:
        """The rows of ``target`` in [start, end) (ms), or without bounds its newest row."""
        terms = [ql.eq(k, v) for k, v in target.tags] + ql.time_range(start_ms, end_ms)
        source = self.reader.source(target.measurement)
        if start_ms is None:
            return ql.select("*", source, terms, group_by="*", newest_first=True, limit=1)
        return ql.select("*", source, terms, group_by="*")

    async def _read(self, statements: list[str]) -> list[Series]:
        """The series of ``statements`` (one request), retried by the writer's policy while InfluxDB cannot answer."""
        out: list[Series] = []

        async def read() -> None:
            try:
                out[:] = await self.reader.query(ql.statements(statements))
            except QueryError as exc:  # unreachable, 5xx, or an account that may not read (it may be fixed)
                raise Retry(f"overwrite check: {exc}", exc.status) from exc

        self.counters.overwrite_reads += 1
        await self.out.retrying(read, "overwrite check")
        return out

    # -- metrics -----------------------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        return render(self)

    def collect(self) -> Iterator[Metric]:
        """The plain counters, read at scrape time (the hot path pays no lock)."""
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
            "keep_failures_total": ("dead letters the store failed to keep (left unacknowledged)", c.keep_failures),
            "stored_published_total": ("Stored confirmations published to the edges", c.stored_published),
            "stored_ranges_total": ("seq ranges in the Stored confirmations", c.stored_ranges),
            "stored_unsent_total": ("Stored confirmations not sent (publish queue full)", c.stored_unsent),
            "overwrites_refused_total": ("readings refused: another value for a stored reading", c.overwrites_refused),
            "overwrite_checks_total": ("readings checked against InfluxDB before the write", c.overwrite_checks),
            "overwrite_reads_total": ("InfluxDB reads of the overwrite checks", c.overwrite_reads),
        }
        for name, (help_text, value) in counters.items():
            yield counter(f"lifeline_bridge_{name}", help_text, value)
        yield summary(
            "lifeline_bridge_batch_seconds", "time spent writing batches", count=c.batches, total=c.batch_seconds_sum
        )
        ages = sorted(self.sample_age_ms)
        quantiles = {
            q: ages[min(len(ages) - 1, int(q * len(ages)))] / 1000 if ages else float("nan") for q in (0.5, 0.99)
        }
        yield summary(
            "lifeline_bridge_sample_age_seconds",
            "edge sampling time to stored, last 100k messages",
            quantiles=quantiles,
        )
        gauges = {
            "inbox_messages": ("messages received and not yet batched", len(self.consumer.inbox)),
            "last_batch_seconds": (
                "time the last batch took (write, dead letters, confirmations, acks)",
                c.last_batch_seconds,
            ),
            "broker_connected": ("1 while connected to the broker", int(self.consumer.connected)),
            "broker_connected_since_seconds": (
                "Unix time the current broker connection began (0: none)",
                self.consumer.connected_since,
            ),
            "last_write_seconds": ("Unix time InfluxDB last accepted a batch (0: none yet)", c.last_write_at),
            "stored_connected": (
                "1 while the Stored confirmations' connection is up",
                int(self.confirmer.connected),
            ),
            "influx_ok": ("1 unless InfluxDB writes are failing", int(self.influx_ok)),
        }
        for name, (help_text, level) in gauges.items():
            yield gauge(f"lifeline_bridge_{name}", help_text, level)


def _key(target: Target) -> tuple[str, tuple[tuple[str, str], ...]]:
    return target.measurement, target.tags


def _rows(series: list[Series]) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, dict[str, object]]]:
    """Per series (measurement and its non-empty tags), its rows by time (ms), each without its time column."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, dict[str, object]]] = {}
    for s in series:
        tags = tuple(sorted((k, v) for k, v in s.tags.items() if v))  # GROUP BY * names every tag key, "" if absent
        rows = out.setdefault((s.name, tags), {})
        for row in s.rows():
            ts = row.pop("time")
            if isinstance(ts, int | float):
                rows[int(ts)] = row
    return out
