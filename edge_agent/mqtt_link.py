"""One MQTT connection, kept up with backoff, driven from asyncio.

paho-mqtt runs its network loop in its own thread; every callback is handed to the asyncio loop. A new paho
client is made for every connection, so that paho never re-sends messages of its own after a reconnect: the
Outbox owns every message until it is confirmed and re-sends what was not (see outbox.py, docs/decisions/002, 010).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.outbox import Outbox, OutMessage
from infra.clock import Clock, SystemClock
from infra.mqtt_config import BrokerConfig, configure_client
from infra.mqtt_lean import LeanClient

log = logging.getLogger("lifeline.edge.mqtt")

MessageHandler = Callable[[str, bytes], None]


class MqttLink:
    """Connects, subscribes (again after every reconnect), sends the outbox through a bounded QoS 1 window."""

    def __init__(
        self,
        name: str,
        broker: BrokerConfig,
        client_id: str,
        *,
        outbox: Outbox | None = None,
        subscriptions: list[str] | None = None,
        on_message: MessageHandler | None = None,
        will: OutMessage | None = None,
        birth: Callable[[], OutMessage] | None = None,
        goodbye: Callable[[], OutMessage] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.broker = broker
        self.client_id = client_id
        self.outbox = outbox
        self.subscriptions = list(subscriptions or [])
        self.on_message = on_message
        self.will = will
        self.birth = birth
        self.goodbye = goodbye
        self.clock: Clock = clock or SystemClock()
        self.connected = False
        self.connections = 0
        self._generation = 0
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # acknowledgements from paho's thread, handed to the loop in batches: one wake-up for many, not one each
        self._acks: deque[tuple[int, int]] = deque()
        self._acks_scheduled = False
        self._client: LeanClient | None = None
        self._down_reason = ""

    def notify(self) -> None:
        """Wake the sender: there is something new in the outbox."""
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set; back off between failed attempts."""
        self._loop = asyncio.get_running_loop()
        backoff = self.broker.reconnect_initial_s
        was_up = True  # log the first failure
        while not stop.is_set():
            client = self._start_client()
            up = await self._wait_first(self._up, self._down, stop)
            if up is self._up:
                self.connected = True
                self.connections += 1
                backoff = self.broker.reconnect_initial_s
                log.info("broker connected link=%s broker=%s:%d", self.name, self.broker.host, self.broker.port)
                was_up = True
                await self._serve(client, stop)
                if stop.is_set():
                    await self._say_goodbye(client)
                self.connected = False
                if not stop.is_set():
                    log.warning("broker connection lost link=%s reason=%r", self.name, self._down_reason)
            elif up is self._down and was_up:
                log.warning(
                    "broker unreachable link=%s broker=%s:%d reason=%r (retrying with backoff, logged once)",
                    self.name, self.broker.host, self.broker.port, self._down_reason,
                )  # fmt: skip
                was_up = False
            await self._drop_client(client)
            if self.outbox is not None:
                self.outbox.connection_lost()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, self.broker.reconnect_max_s)

    @staticmethod
    async def _wait_first(*events: asyncio.Event) -> asyncio.Event:
        waiters = {asyncio.ensure_future(e.wait()): e for e in events}
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waiters[next(iter(done))]

    def _start_client(self) -> LeanClient:
        self._generation += 1
        generation = self._generation
        self._up.clear()
        self._down.clear()
        client = LeanClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.drain_read_ahead = True  # paho's own loop thread runs it
        configure_client(client, self.broker)
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=1, retain=self.will.retain)
        # the outbox keeps its window itself; paho's own bound would scan its whole table of messages at every
        # PUBACK (Client._update_inflight), so it is off (0) where the outbox bounds
        client.max_inflight_messages_set(0 if self.outbox else 20)
        client.max_queued_messages_set(0)
        client.on_connect = lambda c, u, f, rc, p: self._from_thread(self._on_connect, generation, rc)
        client.on_connect_fail = lambda c, u: self._from_thread(self._on_down, generation, "connect failed")
        client.on_disconnect = lambda c, u, f, rc, p: self._from_thread(self._on_down, generation, str(rc))
        client.on_publish = lambda c, u, mid, rc, p: self._ack_from_thread(generation, mid)
        if self.on_message is not None:
            client.on_message = lambda c, u, msg: self._from_thread(self._on_msg, generation, msg.topic, msg.payload)
        self._client = client
        try:
            client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
            client.loop_start()
        except OSError as exc:
            self._on_down(generation, f"{exc.strerror or exc}")
        return client

    def _from_thread(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing: nothing is left to tell
                loop.call_soon_threadsafe(fn, *args)

    def _ack_from_thread(self, generation: int, mid: int) -> None:
        self._acks.append((generation, mid))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            self._from_thread(self._on_acks)

    def _on_acks(self) -> None:
        self._acks_scheduled = False  # before draining: an ack appended from now on schedules another drain
        acks = self._acks
        while acks:
            generation, mid = acks.popleft()
            self._on_ack(generation, mid)

    async def _serve(self, client: LeanClient, stop: asyncio.Event) -> None:
        if self.birth is not None:
            msg = self.birth()
            client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        sender = asyncio.ensure_future(self._send(client))
        try:
            await self._wait_first(self._down, stop)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send(self, client: LeanClient) -> None:
        outbox = self.outbox
        if outbox is None:
            return
        while True:
            now = self.clock.monotonic()
            entry = outbox.next_to_send(now)
            if entry is None:
                delay = outbox.send_delay(now)  # the backlog's rate, or None: wait for a change
                self._wake.clear()
                if delay is None:
                    await self._wake.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                continue
            rc, mid = client.publish_qos1(entry.topic, entry.payload or b"", retain=entry.retain)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                outbox.unsent(entry)
                self._on_down(self._generation, f"publish failed: {mqtt.error_string(rc)}")
                return
            outbox.sent(mid, entry, now)

    async def _say_goodbye(self, client: mqtt.Client) -> None:
        if self.goodbye is not None:
            msg = self.goodbye()
            info = client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            with contextlib.suppress(ValueError, RuntimeError):
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        client.disconnect()

    async def _drop_client(self, client: mqtt.Client) -> None:
        self._generation += 1  # callbacks of the old client are ignored from now on
        with contextlib.suppress(OSError):
            client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None

    # -- callbacks (on the asyncio loop) ---------------------------------------------------------------------
    def _on_connect(self, generation: int, rc: Any) -> None:
        if generation != self._generation:
            return
        if getattr(rc, "is_failure", False):
            self._on_down(generation, f"refused: {rc}")
            return
        self._up.set()

    def _on_down(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        self._down_reason = reason
        self._down.set()

    def _on_ack(self, generation: int, mid: int) -> None:
        if generation != self._generation or self.outbox is None:
            return
        if self.outbox.acked(mid):
            self._wake.set()

    def _on_msg(self, generation: int, topic: str, payload: bytes) -> None:
        if generation == self._generation and self.on_message is not None:
            self.on_message(topic, payload)
