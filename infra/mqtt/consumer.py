"""MQTT 5 consumer: shared subscription, persistent session, manual acknowledgement, bounded intake.

Used by the bridge (ack after InfluxDB accepted) and the rules engine (ack after its state is saved). The text
below tells the bridge's case.

Messages are acknowledged only when the bridge says so (after InfluxDB accepted them). The broker should send at
most ``receive_maximum`` unacknowledged messages (MQTT 5 Receive Maximum), which bounds what the bridge holds
while InfluxDB is down. Mosquitto 2.0.11 keeps that bound while nothing is acknowledged, but once acknowledgements
flow it releases far more of a backlog than the window (measured: 5 acknowledgements released 25 messages with a
window of 5). So the bridge bounds its intake itself: paho runs on the bridge's own asyncio loop (its socket
callbacks), and the consumer stops reading the socket while it holds twice the window, until it is back under the
window. TCP then holds the rest at the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from infra.mqtt._paho import Client, LeanClient, MQTTMessage, Properties, connect_properties, new_client
from infra.mqtt.reconnect import keep_connected
from infra.mqtt.settings import BrokerConfig, SubscriptionConfig

log = logging.getLogger("lifeline.mqtt.consumer")

READS_PER_WAKEUP = 256  # packets read in one go while the socket has data


@dataclass(frozen=True, slots=True)
class Incoming:
    generation: int  # connection the message came on; an ack on a later connection would be wrong
    mid: int
    topic: str
    payload: bytes
    qos: int


class Consumer:
    """Hands received messages to its service through ``inbox``; ``ack`` acknowledges them.

    ``topics`` are subscribed in the shared group ``sub.group`` (default: ``sub.topic`` alone); ``name`` is the
    service's name in log lines.
    """

    def __init__(
        self, broker: BrokerConfig, sub: SubscriptionConfig, topics: list[str] | None = None, name: str = "bridge"
    ) -> None:
        self.broker = broker
        self.sub = sub
        self.topics = topics or [sub.topic]
        self.name = name
        self.inbox: deque[Incoming] = deque()
        self.generation = 0
        self.connected = False
        self.connected_since = 0.0  # Unix time of the current connection's CONNACK (0: not connected)
        self.connections = 0
        self.held = 0  # received on this connection and not acknowledged yet
        self.pauses = 0
        self.pause_at = 2 * sub.receive_maximum
        self.resume_at = sub.receive_maximum
        self._paused = False
        self._received = 0
        self._sock: socket.socket | None = None
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._logged_unreachable = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._acks: list[int] = []  # PUBACKs to send at the end of this turn of the loop (one write)
        self._acks_generation = 0
        client = new_client(broker, sub.client_id, v5=True, lean=True, manual_ack=True)
        assert isinstance(client, LeanClient)
        self._client = client
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_lean_message = self._on_lean_message
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write

    @property
    def filter(self) -> str:
        return ", ".join(self.filters)

    @property
    def filters(self) -> list[str]:
        return [f"$share/{self.sub.group}/{t}" for t in self.topics]

    # -- life cycle (on the bridge's loop) -----------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._tasks = [asyncio.ensure_future(self._keep_connected()), asyncio.ensure_future(self._misc())]

    async def stop(self) -> None:
        self._stopping = True
        self._stop.set()
        if self.connected:
            self._client.disconnect()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._on_socket_close(self._client, None, self._sock)

    async def _keep_connected(self) -> None:
        await keep_connected(self._session, self.broker.backoff(), self._stop)

    async def _session(self) -> bool:
        """One connection (clean start false, the session kept ``session_expiry_s``): until it is lost."""
        assert self._loop is not None
        self._lost.clear()
        props = connect_properties(self.sub.session_expiry_s, self.sub.receive_maximum)
        try:  # the blocking TCP connect runs in a worker thread; socket callbacks come back to this loop
            await self._loop.run_in_executor(None, self._connect, props)
        except OSError as exc:
            if not self._logged_unreachable:
                log.warning(
                    "%s cannot reach the broker broker=%s reason=%r (retrying, logged once)",
                    self.name,
                    self.broker.where,
                    str(exc),
                )
                self._logged_unreachable = True
            return False
        self._logged_unreachable = False
        await self._lost.wait()
        return True

    def _connect(self, props: Properties) -> None:
        self._client.connect(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, clean_start=False, properties=props
        )

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._sock is not None:
                self._client.loop_misc()  # keepalive pings, time-outs

    # -- intake --------------------------------------------------------------------------------------------
    async def wait(self, timeout_s: float) -> None:
        """Wait until something arrives (or ``timeout_s`` passes)."""
        if self.inbox:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)

    def ack(self, item: Incoming) -> bool:
        """Acknowledge ``item``; False if its connection is gone (the broker will send it again).

        The PUBACKs of one turn of the event loop go out in one write, after the caller's turn."""
        if item.qos == 0:
            return True
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self.ack, item)  # from another thread: the loop does it
            return True
        if item.generation != self.generation or not self.connected:
            return False
        self.held -= 1
        if self._paused and self.held <= self.resume_at:
            self._resume()
        if not self._acks and self._loop is not None:
            self._acks_generation = self.generation
            self._loop.call_soon(self._send_acks)
        self._acks.append(item.mid)
        return True

    def _send_acks(self) -> None:
        acks, self._acks = self._acks, []
        if self._acks_generation == self.generation and self.connected:  # else: the broker sends them again
            self._client.ack_many(acks)

    def _read(self) -> None:
        client = self._client
        for _ in range(READS_PER_WAKEUP):
            before = self._received
            client.loop_read()
            if (self._received == before and not client.pending) or self._sock is None:
                break
        if self.held >= self.pause_at and self._sock is not None and not self._paused:
            self._paused = True
            self.pauses += 1
            self._call(self._remove_reader, self._sock)
            if self.pauses in (1, 10, 100) or self.pauses % 1000 == 0:
                log.info(
                    "%s pauses reading: holding %d unacknowledged messages (window %d) pauses=%d",
                    self.name,
                    self.held,
                    self.sub.receive_maximum,
                    self.pauses,
                )
        elif client.pending and self._loop is not None:  # read ahead, not yet parsed: the socket will not say so
            self._loop.call_soon(self._read_pending)

    def _read_pending(self) -> None:
        if not self._paused and self._sock is not None and self._client.pending:
            self._read()

    def _resume(self) -> None:
        self._paused = False
        if self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock, self._read)
            if self._client.pending:
                self._loop.call_soon(self._read_pending)

    def _remove_reader(self, sock: socket.socket) -> None:
        if self._loop is not None:
            self._loop.remove_reader(sock)

    # -- paho callbacks: on the loop, except socket-open during connect (a worker thread) -------------------
    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is None:
            return
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: Client, userdata: Any, sock: Any) -> None:
        def opened() -> None:
            assert self._loop is not None
            self._sock = sock
            self._paused = False
            self._loop.add_reader(sock, self._read)

        self._call(opened)

    def _on_socket_close(self, client: Client, userdata: Any, sock: Any) -> None:
        def closed() -> None:
            if self._loop is not None:
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            self._sock = None

        self._call(closed)

    def _on_register_write(self, client: Client, userdata: Any, sock: Any) -> None:
        self._call(lambda: self._loop.add_writer(sock, client.loop_write) if self._loop else None)

    def _on_unregister_write(self, client: Client, userdata: Any, sock: Any) -> None:
        self._call(lambda: self._loop.remove_writer(sock) if self._loop else None)

    def _on_connect(self, client: Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.warning("broker refused the %s reason=%s", self.name, rc)
            return
        self.generation += 1
        self.connections += 1
        self.connected = True
        self.connected_since = time.time()
        self.held = 0
        client.subscribe([(f, 1) for f in self.filters])
        log.info(
            "%s connected broker=%s:%d filter=%s session_present=%s",
            self.name,
            self.broker.host,
            self.broker.port,
            self.filter,
            getattr(flags, "session_present", None),
        )

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected and not self._stopping:
            log.warning(
                "%s lost the broker reason=%s (reconnecting; unacknowledged messages come again)", self.name, rc
            )
        self.connected = False
        self.connected_since = 0.0
        self.generation += 1
        self.held = 0
        self._call(self._lost.set)

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        """A PUBLISH that paho decoded itself (it had properties): as any other."""
        self._on_lean_message(msg.mid, msg.topic, bytes(msg.payload), msg.qos)

    def _on_lean_message(self, mid: int, topic: str, payload: bytes, qos: int) -> None:
        self._received += 1
        if qos:
            self.held += 1
        self.inbox.append(Incoming(self.generation, mid, topic, payload, qos))
        self._wake.set()
