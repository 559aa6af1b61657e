"""The HJ 212 TCP server: stations (data loggers) connect and push packets; readings leave as ordinary telemetry.

One asyncio task per connection reads bytes, cuts frames (framing.StreamDecoder) and hands each to the pure
``Ingest``; this module does the I/O of its outcome, in the stream order of the connection: the events line,
the dead letters (edge_agent.deadletter), the telemetry on ``lifeline/v1/{site}/{device}/telemetry`` through the
edge agent's Outbox and the transport's Link (QoS 1, bounded window), the answer (9014 once the broker acknowledged the
telemetry; see ingest.py). A station is ``online`` (retained status) while it has a connection that sent a good
packet, ``offline`` when the last one closes. A station with ``heartbeat_s`` (HJ 212-2025 heartbeat, CN 9015) is
also ``offline`` once nothing good came from it for ``MISSED_HEARTBEATS`` intervals, its connection open or not, and
``online`` again at its next heartbeat or data: its liveness comes from heartbeats, not from gaps in its data (the
rules engine's ``offline`` rules see these statuses; its deadman rules judge the data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import orjson

from edge_agent._outbox_store import OutboxStore
from edge_agent._outbox_writer import OutboxWriter
from edge_agent.config import PublishConfig
from edge_agent.deadletter import DeadLetters
from edge_agent.hj212.config import LoadedConfig, Station
from edge_agent.hj212.framing import StreamDecoder
from edge_agent.hj212.ingest import DeadLetterNote, Ingest, Outcome
from edge_agent.outbox import Entry, Outbox, OutMessage
from infra.clock import SystemClock
from infra.metrics import Metric, bound_port, counter, gauge, registry, render, serve_metrics
from infra.mqtt import Link

log = logging.getLogger("lifeline.hj212")

READ_SIZE = 65536
MISSED_HEARTBEATS = 3  # a station silent this many heartbeat intervals is offline (assumption: the text's rule
# for a missed heartbeat was not at hand)


class _AnsweringOutbox(Outbox):
    """The edge agent's Outbox in memory, telling the server which payload the broker acknowledged (to answer after
    it). Memory is enough: a station keeps its data until it is answered, and sends again when it is not."""

    def __init__(self, publish: PublishConfig, on_acked: Callable[[bytes], None]) -> None:
        super().__init__(
            OutboxStore(":memory:"),
            max_inflight=publish.max_inflight,
            max_messages=publish.buffer_max_messages,
            max_bytes=publish.outbox_max_bytes,
            replay_rate=publish.replay_rate,
            ack_timeout_s=publish.ack_timeout_s,
            name="hj212",
        )
        self._on_acked = on_acked

    def acked(self, token: int) -> bool:
        entry = self._inflight.get(token)
        payload = entry.payload if entry is not None else None
        if not super().acked(token):
            return False
        if payload is not None:
            self._on_acked(payload)
        return True


class EventLog:
    """``--events FILE``: one JSON line per packet, written as it is handled (stream order per connection)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("ab")

    def write(self, event: dict[str, object]) -> None:
        self._file.write(orjson.dumps(event) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Hj212Server:
    def __init__(
        self, loaded: LoadedConfig, *, events_path: Path | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        cfg = loaded.config
        self.loaded = loaded
        self.clock = clock
        self.ingest = Ingest(loaded, packet_events=events_path is not None)
        self.outbox = _AnsweringOutbox(cfg.publish, self._acked)
        self.link: Link[Entry] = Link("hj212", cfg.broker, cfg.client_id, window=self.outbox)
        self.writer = OutboxWriter(self.outbox, self.link.notify, SystemClock(), "hj212")
        self.dead_letters = DeadLetters(cfg.dead_letter_path, source="hj212")
        self.events = EventLog(events_path) if events_path is not None else None
        self.port: int | None = None  # bound port, once listening
        self.metrics_port: int | None = None
        self.connections = 0
        self.counts: Counter[str] = Counter()  # packets_accept, packets_reject, answers, published, ...
        self.rejects: Counter[str] = Counter()  # by reason
        self._waiting: dict[int, tuple[asyncio.StreamWriter, bytes, bytes]] = {}  # id(payload) -> answer
        self._online: Counter[str] = Counter()  # MN -> connections that sent a good packet
        self._heard: dict[str, float] = {}  # MN -> when its last good packet came (self.clock)
        self._silent: set[str] = set()  # connected stations past their heartbeat: published offline
        self._refusing: dict[str, str] = {}  # MN -> the key problem (no_key, bad_key) logged for it
        self._writers: set[asyncio.StreamWriter] = set()
        self._all_closed = asyncio.Event()
        self._stopping = False

    # -- running -------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Listen and forward until ``stop`` is set."""
        cfg = self.loaded.config
        server = await asyncio.start_server(
            self._connection, cfg.listen.host, cfg.listen.port, backlog=cfg.listen.backlog, limit=READ_SIZE
        )
        self.port = bound_port(server)
        link_stop = asyncio.Event()  # its own: the link stays up until the last statuses are sent
        link = asyncio.ensure_future(self.link.run(link_stop))
        expiry = asyncio.ensure_future(self._expire_splits())
        metrics = None
        if cfg.metrics_port is not None:
            metrics = await serve_metrics(registry(self), cfg.metrics_port)
            self.metrics_port = bound_port(metrics)
        log.info(
            "hj212 listening host=%s port=%d stations=%d broker=%s:%d",
            cfg.listen.host,
            self.port,
            len(self.loaded.stations),
            cfg.broker.host,
            cfg.broker.port,
        )
        try:
            await stop.wait()
        finally:
            server.close()
            await self._close_connections(2.0)
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            await self._drain(2.0)
            link_stop.set()
            await link
            if metrics is not None:
                metrics.close()
            if self.events is not None:
                self.events.close()
            log.info("hj212 stopped unsent=%d", len(self.outbox))

    async def _close_connections(self, wait_s: float) -> None:
        """Close every station connection, so that their offline statuses are queued before the link goes."""
        self._stopping = True
        if not self._writers:
            return
        self._all_closed.clear()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), wait_s)

    async def _drain(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while len(self.outbox) and self.link.connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # bounded: acknowledgements arrive from the link's thread

    async def _expire_splits(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for note in self.ingest.expire(self.clock()):
                self._dead_letter(note)
            self.check_liveness(self.clock())

    def check_liveness(self, now: float) -> None:
        """Mark offline the connected stations whose heartbeat is overdue (``MISSED_HEARTBEATS`` intervals)."""
        for mn in list(self._online):
            station = self.loaded.stations[mn]
            every = station.config.heartbeat_s
            if every is None or mn in self._silent or now - self._heard.get(mn, now) <= MISSED_HEARTBEATS * every:
                continue
            self._silent.add(mn)
            reason = f"no heartbeat (CN 9015) nor data for {now - self._heard[mn]:.0f} s (every {every:g} s expected)"
            log.warning(
                "station offline mn=%s site=%s device=%s reason=%r",
                mn,
                station.config.site,
                station.config.device,
                reason,
            )
            self._queue(self.ingest.status(station, False, reason, now))

    # -- one connection --------------------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.loaded.config
        host, port = (writer.get_extra_info("peername") or ("?", 0))[:2]
        peer = f"{host}:{port}"
        if self.connections >= cfg.max_connections:
            self.counts["connections_refused"] += 1
            log.warning("connection refused peer=%s reason=max_connections (%d)", peer, cfg.max_connections)
            writer.close()
            return
        self.connections += 1
        self.counts["connections"] += 1
        self._writers.add(writer)
        decoder = StreamDecoder(cfg.max_segment_bytes)
        seen: set[str] = set()  # MNs this connection made online
        ended = "closed by the station"
        try:
            while True:
                try:
                    async with asyncio.timeout(cfg.idle_timeout_s):  # cheaper than wait_for: no task per read
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    ended = f"silent for {cfg.idle_timeout_s:g} s"
                    break
                if not data:
                    if self._stopping:
                        ended = "ingest server stopped"
                    break
                for item in decoder.feed(data):
                    self._apply(self.ingest.handle(peer, item, self.clock()), writer, seen)
        except ConnectionError as exc:
            ended = f"connection error: {exc.strerror or exc}"
        finally:
            for rejected in decoder.close():
                self._apply(self.ingest.handle(peer, rejected, self.clock()), writer, seen)
            self.connections -= 1
            self._writers.discard(writer)
            writer.close()
            for mn in seen:
                self._online[mn] -= 1
                if self._online[mn] <= 0:
                    del self._online[mn]
                    if mn in self._silent:  # already published offline
                        self._silent.discard(mn)
                        continue
                    station = self.loaded.stations[mn]
                    log.info(
                        "station offline mn=%s site=%s device=%s reason=%r",
                        mn,
                        station.config.site,
                        station.config.device,
                        ended,
                    )
                    self._queue(self.ingest.status(station, False, ended, self.clock()))
            if not self._writers:
                self._all_closed.set()

    def _apply(self, out: Outcome, writer: asyncio.StreamWriter, seen: set[str]) -> None:
        if self.events is not None:
            self.events.write(out.event)
        for note in out.dead_letters:
            self._dead_letter(note)
        if not out.accepted:
            self.counts["packets_reject"] += 1
            reason = out.reason or "?"
            self.rejects[reason] += 1
            if out.station is not None and reason in ("no_key", "bad_key"):
                self._key_problem(out.station, reason, out.event.get("detail"))
            if out.answer is not None:  # a refusal that resending cannot cure: answered, so that it stops
                self.counts["refusals_answered"] += 1
                self._answer(writer, out.answer)
            return
        self.counts["packets_accept"] += 1
        station = out.station
        if station is not None:
            self._heard[station.mn] = self.clock()
            if station.mn not in seen:
                self._came_online(station, seen)
            if station.mn in self._silent:  # heard again, on this connection or another
                self._silent.discard(station.mn)
                log.info("station online mn=%s site=%s device=%s reason=heard again", station.mn, *_where(station))
                self._queue(self.ingest.status(station, True, "", self.clock()))
            if out.decrypted:
                self.counts["decrypted"] += 1
                if self._refusing.pop(station.mn, None) is not None:
                    log.info("station mn=%s encrypted CP read again with its SM4 key", station.mn)
        if out.heartbeat:
            self.counts["heartbeats"] += 1
        for message in out.messages:
            self._queue(message)
            self.counts["published"] += 1
        if out.answer is None:
            return
        if out.answer_on_ack:
            last = out.messages[-1].payload
            self._waiting[id(last)] = (writer, out.answer, last)
        else:
            self._answer(writer, out.answer)

    def _key_problem(self, station: Station, reason: str, detail: object) -> None:
        """Logged once per station and cause (counted every time in ``rejects_total{reason}``)."""
        if self._refusing.get(station.mn) == reason:
            return
        self._refusing[station.mn] = reason
        log.warning(
            "station encrypted CP refused mn=%s site=%s device=%s reason=%s detail=%r",
            station.mn,
            *_where(station),
            reason,
            detail,
        )

    def _came_online(self, station: Station, seen: set[str]) -> None:
        seen.add(station.mn)
        self._online[station.mn] += 1
        if self._online[station.mn] == 1:
            log.info("station online mn=%s site=%s device=%s", station.mn, station.config.site, station.config.device)
            self._queue(self.ingest.status(station, True, "", self.clock()))

    def _answer(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        if writer.is_closing():
            self.counts["answers_lost"] += 1  # the station left; it sends again on its next connection
            return
        writer.write(frame)
        self.counts["answers"] += 1

    def _acked(self, payload: bytes) -> None:
        waiting = self._waiting.pop(id(payload), None)
        if waiting is not None and waiting[2] is payload:
            self._answer(waiting[0], waiting[1])

    def _queue(self, message: OutMessage) -> None:
        # over the outbox's quota the oldest go (counted and logged by the outbox): never answered, so the station
        # sends them again; their answers in _waiting are dropped when their connection closes
        self.outbox.put(message, int(self.clock() * 1000))
        self.writer.schedule()

    def _dead_letter(self, note: DeadLetterNote) -> None:
        self.dead_letters.add(
            int(self.clock() * 1000), note.source, note.raw, f"{note.reason}: {note.detail}", stage="hj212"
        )

    # -- metrics -----------------------------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        return render(self)

    def collect(self) -> Iterator[Metric]:
        o = self.outbox.stats
        yield gauge("lifeline_hj212_connections", "open station connections", self.connections)
        yield gauge(
            "lifeline_hj212_stations_online", "stations heard from lately", len(self._online) - len(self._silent)
        )
        yield gauge("lifeline_hj212_stations_silent", "connected stations past their heartbeat", len(self._silent))
        yield gauge("lifeline_hj212_broker_connected", "1: connected to the broker", int(self.link.connected))
        yield counter("lifeline_hj212_dead_letters_total", "packets kept as dead letters", self.dead_letters.count)
        queued = len(self.outbox) - self.outbox.inflight
        yield gauge("lifeline_hj212_outbox_queued", "messages waiting to be sent", queued)
        yield gauge("lifeline_hj212_outbox_inflight", "messages sent, not yet acknowledged", self.outbox.inflight)
        yield counter("lifeline_hj212_outbox_dropped_total", "messages dropped from a full outbox", o.dropped)
        yield gauge("lifeline_hj212_answers_waiting", "answers waiting to be sent", len(self._waiting))
        for name in (
            "connections",
            "connections_refused",
            "packets_accept",
            "packets_reject",
            "published",
            "answers",
            "answers_lost",
            "heartbeats",
            "decrypted",
            "refusals_answered",
        ):
            yield counter(f"lifeline_hj212_{name}_total", "", self.counts[name])
        yield counter(
            "lifeline_hj212_rejects_total",
            "packets refused, by reason",
            {(r,): n for r, n in self.rejects.items()},
            ("reason",),
        )


def _where(station: Station) -> tuple[str, str]:
    return station.config.site, station.config.device
