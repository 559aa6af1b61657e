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
from typing import IO, Protocol

import orjson

from edge_agent.deadletter import DeadLetters
from edge_agent.hj212._window import AnsweringWindow
from edge_agent.hj212.config import LoadedConfig, Station
from edge_agent.hj212.framing import StreamDecoder
from edge_agent.hj212.ingest import DeadLetterNote, Ingest, Outcome
from edge_agent.outbox import OutMessage
from infra.metrics import Metric, bound_port, counter, gauge, registry, render, serve_metrics
from infra.mqtt import Link

log = logging.getLogger("lifeline.hj212")

MISSED_HEARTBEATS = 3  # a station silent this many heartbeat intervals is offline (assumption: the text's rule
# for a missed heartbeat was not at hand)


class _Writer(Protocol):
    """What the server needs of a connection's transport to answer on it."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class _Connection(asyncio.Protocol):
    """One station connection: bytes cut into frames (framing.StreamDecoder) and handed to the server as they come;
    closed after ``idle_timeout_s`` of silence (one timer a connection, moved on lazily, not one per read)."""

    def __init__(self, server: Hj212Server) -> None:
        self.server = server
        self.decoder = StreamDecoder(server.loaded.config.max_segment_bytes)
        self.seen: set[str] = set()  # MNs this connection made online
        self.bad_frames = 0  # frames in a row that were garbage (no authenticated station)
        self.ended = ""  # why the server closed it, when it did
        self.peer = "?:0"
        self.transport: asyncio.Transport
        self._accepted = False
        self._last = 0.0  # loop time of the last bytes
        self._idle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = (transport.get_extra_info("peername") or ("?", 0))[:2]
        self.peer = f"{host}:{port}"
        if not self.server._connection_made(self):
            transport.close()
            return
        self._accepted = True
        loop = self._loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._idle = loop.call_at(self._last + self.server.loaded.config.idle_timeout_s, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if not self._accepted:
            return
        self._last = self._loop.time()
        self.server._received(self, data)

    def _check_idle(self) -> None:
        loop = self._loop
        limit = self.server.loaded.config.idle_timeout_s
        if loop.time() - self._last >= limit:
            self._idle = None
            self.ended = f"silent for {limit:g} s"
            self.transport.close()
            return
        self._idle = loop.call_at(self._last + limit, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._accepted:
            self._accepted = False
            self.server._connection_lost(self, exc)


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
        self.outbox = AnsweringWindow(cfg.publish, self._acked, self._dropped)
        self.link: Link[OutMessage] = Link("hj212", cfg.broker, cfg.client_id, window=self.outbox)
        # bounded (issue 24): garbage needs no credentials, so its letters must not fill the disk
        self.dead_letters = DeadLetters(
            cfg.dead_letter_path,
            source="hj212",
            max_letters=cfg.dead_letter_max_letters,
            max_bytes=cfg.dead_letter_max_bytes,
        )
        self.events = EventLog(events_path) if events_path is not None else None
        self.port: int | None = None  # bound port, once listening
        self.metrics_port: int | None = None
        self.connections = 0
        self.counts: Counter[str] = Counter()  # packets_accept, packets_reject, answers, published, ...
        self.rejects: Counter[str] = Counter()  # by reason
        self._waiting: dict[int, tuple[_Writer, bytes, bytes]] = {}  # id(payload) -> answer
        self._online: Counter[str] = Counter()  # MN -> connections that sent a good packet
        self._heard: dict[str, float] = {}  # MN -> when its last good packet came (self.clock)
        self._silent: set[str] = set()  # connected stations past their heartbeat: published offline
        self._refusing: dict[str, str] = {}  # MN -> the key problem (no_key, bad_key) logged for it
        self._writers: set[_Writer] = set()
        self._garbage_hosts: set[str] = set()  # hosts logged for garbage (bounded)
        self._all_closed = asyncio.Event()
        self._stopping = False

    # -- running -------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Listen and forward until ``stop`` is set."""
        cfg = self.loaded.config
        loop = asyncio.get_running_loop()
        # a protocol, not streams: a packet costs one callback, no task wake-up and no timer (measured: the stream
        # reader with a timeout per read took about a fifth of the server's CPU at 5,000 packets/s)
        server = await loop.create_server(
            lambda: _Connection(self), cfg.listen.host, cfg.listen.port, backlog=cfg.listen.backlog
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
    def _connection_made(self, conn: _Connection) -> bool:
        """A station connected: False when it is one too many (closed at once)."""
        cfg = self.loaded.config
        if self.connections >= cfg.max_connections:
            self.counts["connections_refused"] += 1
            log.warning("connection refused peer=%s reason=max_connections (%d)", conn.peer, cfg.max_connections)
            return False
        self.connections += 1
        self.counts["connections"] += 1
        self._writers.add(conn.transport)
        return True

    def _received(self, conn: _Connection, data: bytes) -> None:
        now = self.clock()
        handle, apply, peer, transport, seen = self.ingest.handle, self._apply, conn.peer, conn.transport, conn.seen
        for item in conn.decoder.feed(data):
            if apply(handle(peer, item, now), transport, seen):
                conn.bad_frames = 0
            else:
                conn.bad_frames += 1
                if conn.bad_frames >= self.loaded.config.max_bad_frames:
                    self._close_garbage(conn)
                    return

    def _close_garbage(self, conn: _Connection) -> None:
        """A connection that sent ``max_bad_frames`` frames in a row and nothing good: closed (counted, logged once
        per peer host), so that garbage costs its sender a reconnect, not the server a dead letter per frame."""
        self.counts["connections_closed_bad_frames"] += 1
        host = conn.peer.rpartition(":")[0]
        if host not in self._garbage_hosts:
            if len(self._garbage_hosts) < 10_000:
                self._garbage_hosts.add(host)
            log.warning(
                "connection closed peer=%s reason=%d bad frames in a row (max_bad_frames; further ones from this host"
                " are counted)",
                conn.peer,
                conn.bad_frames,
            )
        conn.ended = f"{conn.bad_frames} bad frames in a row"
        conn.transport.abort()

    def _connection_lost(self, conn: _Connection, exc: Exception | None) -> None:
        for rejected in conn.decoder.close():
            self._apply(self.ingest.handle(conn.peer, rejected, self.clock()), conn.transport, conn.seen)
        if conn.ended:
            ended = conn.ended
        elif self._stopping:
            ended = "ingest server stopped"
        elif isinstance(exc, OSError):
            ended = f"connection error: {exc.strerror or exc}"
        else:
            ended = "closed by the station"
        self.connections -= 1
        self._writers.discard(conn.transport)
        for mn in conn.seen:
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

    def _apply(self, out: Outcome, writer: _Writer, seen: set[str]) -> bool:
        """Do the outcome's I/O; True: the frame was accepted, or refused for its content only (its station
        authenticated): not garbage."""
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
            return out.station is not None
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
            return True
        if out.answer_on_ack:
            last = out.messages[-1].payload
            self._waiting[id(last)] = (writer, out.answer, last)
        else:
            self._answer(writer, out.answer)
        return True

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

    def _answer(self, writer: _Writer, frame: bytes) -> None:
        if writer.is_closing():
            self.counts["answers_lost"] += 1  # the station left; it sends again on its next connection
            return
        writer.write(frame)
        self.counts["answers"] += 1

    def _dropped(self, payload: bytes) -> None:
        self._waiting.pop(id(payload), None)  # never answered: the station sends it again

    def _acked(self, payload: bytes) -> None:
        waiting = self._waiting.pop(id(payload), None)
        if waiting is not None and waiting[2] is payload:
            self._answer(waiting[0], waiting[1])

    def _queue(self, message: OutMessage) -> None:
        # over the window's quota the oldest go (counted and logged by the window): never answered, so the station
        # sends them again
        self.outbox.put(message)
        self.link.notify()

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
        store = self.dead_letters.store
        yield gauge("lifeline_hj212_dead_letters_kept", "dead letters in the store now", store.count())
        yield gauge(
            "lifeline_hj212_dead_letters_kept_bytes", "bytes of the dead letters kept (quota)", store.kept_bytes
        )
        yield counter("lifeline_hj212_dead_letters_dropped_total", "oldest dead letters pruned (quota)", store.pruned)
        yield counter(
            "lifeline_hj212_dead_letters_dropped_bytes_total", "bytes of the dead letters pruned", store.pruned_bytes
        )
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
            "connections_closed_bad_frames",
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
