"""One MQTT connection kept up from asyncio: subscriptions, an awaitable publish, and the windowed QoS 1 publish of
a window owner (the edge's Outbox).

paho-mqtt runs its network loop in its own thread; every callback is handed to the asyncio loop. A new paho
client is made for every connection, so that paho never re-sends messages of its own after a reconnect: the
window owner keeps every message until it is confirmed and re-sends what was not (docs/decisions/002, 010). A link
with ``session_expiry_s`` keeps a persistent session (MQTT 5, clean start false, a fixed client id): the broker
queues what its QoS 1 subscriptions match while the link is away, and sends it when the link comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from infra.clock import Clock, SystemClock
from infra.mqtt._paho import MQTT_ERR_SUCCESS, LeanClient, connect_properties, error_string, new_client
from infra.mqtt.reconnect import keep_connected
from infra.mqtt.settings import BrokerConfig

log = logging.getLogger("lifeline.mqtt.link")

MessageHandler = Callable[[str, bytes], None]


SESSION_TAKEN_OVER = 0x8E  # MQTT 5 §3.14.2.1: another client connected with this one's client id


class PublishError(Exception):
    """The broker did not take a message: not connected in time, refused, or no PUBACK in time."""


class Sendable(Protocol):
    """A message as a window owner hands it to the link."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes | None: ...
    @property
    def retain(self) -> bool: ...


E = TypeVar("E", bound=Sendable)


class Window(Protocol[E]):
    """What the link asks of the owner of a QoS 1 window (``edge_agent.outbox.Outbox``): the owner decides what
    to send and when, keeps every message until it is acknowledged, and takes back what a lost connection did not
    acknowledge."""

    def next_to_send(self, now: float) -> E | None: ...
    def send_delay(self, now: float) -> float | None: ...  # wait this long for a change (None: until notified)
    def sent(self, token: int, entry: E, now: float) -> None: ...
    def unsent(self, entry: E) -> None: ...
    def acked(self, token: int) -> bool: ...  # True: there may be room to send more
    def connection_lost(self) -> int: ...


class Link(Generic[E]):
    """Connects, subscribes (again after every reconnect), sends a window owner's messages at QoS 1, publishes
    on demand (:meth:`publish`, awaitable, raises :class:`PublishError`), and reconnects with the broker's
    backoff (exponential, full jitter) through :func:`infra.mqtt.keep_connected`."""

    def __init__(
        self,
        name: str,
        broker: BrokerConfig,
        client_id: str,
        *,
        window: Window[E] | None = None,
        subscriptions: list[str] | None = None,
        on_message: MessageHandler | None = None,
        will: Sendable | None = None,
        birth: Callable[[], Sendable] | None = None,
        goodbye: Callable[[], Sendable] | None = None,
        session_expiry_s: int | None = None,
        on_state: Callable[[bool], None] | None = None,
        clock: Clock | None = None,
        v5: bool = False,
    ) -> None:
        """``on_state(connected)`` is called (on the loop) when a connection comes up and when it goes; when it goes,
        ``down_code`` holds the broker's MQTT 5 reason, if it gave one (e.g. :data:`SESSION_TAKEN_OVER`). ``v5``: MQTT 5
        with a clean start even without a persistent session (a link with ``session_expiry_s`` is MQTT 5 anyway)."""
        self.name = name
        self.broker = broker
        self.client_id = client_id
        self.window = window
        self.subscriptions = list(subscriptions or [])
        self.on_message = on_message
        self.will = will
        self.birth = birth
        self.goodbye = goodbye
        self.session_expiry_s = session_expiry_s
        self.on_state = on_state
        self.clock: Clock = clock or SystemClock()
        self.connected = False
        self.connections = 0
        self.session_present = False  # the broker still had this link's session at the last CONNACK
        self.v5 = v5
        self.down_code: int | None = None  # the MQTT 5 reason code of the broker's DISCONNECT that ended the last one
        self.down_by_broker = False  # the broker ended the last connection (a DISCONNECT, or it closed the stream)
        self._generation = 0
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._ready = asyncio.Event()  # set while connected: awaitable publishes wait on it
        self._loop: asyncio.AbstractEventLoop | None = None
        # acknowledgements from paho's thread, handed to the loop in batches: one wake-up for many, not one each
        self._acks: deque[tuple[int, int, bool]] = deque()  # generation, packet id, refused
        self._acks_scheduled = False
        self._waiters: dict[int, asyncio.Future[None]] = {}  # packet id -> an awaitable publish's PUBACK
        self._client: LeanClient | None = None
        self._down_reason = ""
        self._was_up = True  # log the first failure

    def notify(self) -> None:
        """Wake the sender: there is something new in the window."""
        self._wake.set()

    # -- publishing on demand ------------------------------------------------------------------------------------
    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, timeout_s: float = 10.0
    ) -> None:
        """Publish and return once the broker has it (QoS 1: its PUBACK). Raises :class:`PublishError` when the
        link is not connected within ``timeout_s``, paho refuses the message, the connection goes before the
        PUBACK, or no PUBACK comes within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        where = f"broker {self.broker.where}"
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                raise PublishError(f"{where} not connected within {timeout_s:g} s: cannot publish {topic}") from None
        client = self._client
        if client is None:
            raise PublishError(f"{where} not connected: cannot publish {topic}")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTT_ERR_SUCCESS:
            raise PublishError(f"{where} did not take {topic}: {error_string(info.rc)}")
        if qos == 0:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[info.mid] = waiter  # the PUBACK comes through the loop, after this turn
        try:
            await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise PublishError(f"no acknowledgement from {where} for {topic} within {timeout_s:g} s") from None
        finally:
            if self._waiters.get(info.mid) is waiter:
                del self._waiters[info.mid]

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to the current connection without waiting: False (for the caller to count) when there is
        no connection or paho refused it. For events a later message or a resend makes good (a Stored
        confirmation, an alert event); what must arrive goes through :meth:`publish` or a window."""
        client = self._client
        if client is None or not self.connected:
            return False
        return client.publish(topic, payload, qos=qos, retain=retain).rc == MQTT_ERR_SUCCESS

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set; back off (jittered) between failed attempts."""
        self._loop = asyncio.get_running_loop()
        await keep_connected(lambda: self._session(stop), self.broker.backoff(), stop)

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection: connect, serve until it is lost or ``stop``; whether the broker accepted it."""
        client = self._start_client()
        up = await self._wait_first(self._up, self._down, stop)
        if up is self._up:
            self.connected = True
            self.connections += 1
            self._ready.set()
            if self.on_state is not None:
                self.on_state(True)
            log.info(
                "broker connected link=%s broker=%s session_present=%s",
                self.name,
                self.broker.where,
                self.session_present,
            )
            self._was_up = True
            await self._serve(client, stop)
            if stop.is_set():
                await self._say_goodbye(client)
            self.connected = False
            self._ready.clear()
            if self.on_state is not None:
                self.on_state(False)
            if not stop.is_set():
                log.warning("broker connection lost link=%s reason=%r", self.name, self._down_reason)
        elif up is self._down and self._was_up:
            log.warning(
                "broker unreachable link=%s broker=%s reason=%r (retrying with backoff, logged once)",
                self.name,
                self.broker.where,
                self._down_reason,
            )
            self._was_up = False
        await self._drop_client(client)
        if self.window is not None:
            self.window.connection_lost()
        return up is self._up

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
        persistent = self.session_expiry_s is not None
        client = new_client(self.broker, self.client_id, v5=persistent or self.v5, lean=True)
        assert isinstance(client, LeanClient)
        client.drain_read_ahead = True  # paho's own loop thread runs it
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=1, retain=self.will.retain)
        # the window owner keeps its window itself; paho's own bound would scan its whole table of messages at every
        # PUBACK (its in-flight update), so it is off (0) where a window bounds
        client.max_inflight_messages_set(0 if self.window else 20)
        client.max_queued_messages_set(0)
        client.on_connect = lambda c, u, f, rc, p: self._from_thread(self._on_connect, generation, rc, f)
        client.on_connect_fail = lambda c, u: self._from_thread(self._on_down, generation, "connect failed")
        client.on_disconnect = lambda c, u, f, rc, p: self._from_thread(
            self._on_down,
            generation,
            str(rc),
            getattr(rc, "value", None) if f.is_disconnect_packet_from_server else None,
            f.is_disconnect_packet_from_server or c.closed_by_peer,
        )
        client.on_publish = lambda c, u, mid, rc, p: self._ack_from_thread(generation, mid, rc)
        if self.on_message is not None:
            client.on_message = lambda c, u, msg: self._from_thread(self._on_msg, generation, msg.topic, msg.payload)
        self._client = client
        try:
            if persistent:  # MQTT 5: clean start false, the session kept for session_expiry_s while away
                props = connect_properties(self.session_expiry_s or 0)
                client.connect_async(
                    self.broker.host,
                    self.broker.port,
                    keepalive=self.broker.keepalive_s,
                    clean_start=False,
                    properties=props,
                )
            elif self.v5:
                client.connect_async(
                    self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, clean_start=True
                )
            else:
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

    def _ack_from_thread(self, generation: int, mid: int, rc: Any) -> None:
        self._acks.append((generation, mid, bool(getattr(rc, "is_failure", False))))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            self._from_thread(self._on_acks)

    def _on_acks(self) -> None:
        self._acks_scheduled = False  # before draining: an ack appended from now on schedules another drain
        acks = self._acks
        while acks:
            generation, mid, refused = acks.popleft()
            self._on_ack(generation, mid, refused)

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
        window = self.window
        if window is None:
            return
        while True:
            now = self.clock.monotonic()
            entry = window.next_to_send(now)
            if entry is None:
                delay = window.send_delay(now)  # the backlog's rate, or None: wait for a change
                self._wake.clear()
                if delay is None:
                    await self._wake.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                continue
            rc, mid = client.publish_qos1(entry.topic, entry.payload or b"", retain=entry.retain)
            if rc != MQTT_ERR_SUCCESS:
                window.unsent(entry)
                self._on_down(self._generation, f"publish failed: {error_string(rc)}")
                return
            window.sent(mid, entry, now)

    async def _say_goodbye(self, client: LeanClient) -> None:
        if self.goodbye is not None:
            msg = self.goodbye()
            info = client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            with contextlib.suppress(ValueError, RuntimeError):  # best effort: the will says it otherwise
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        client.disconnect()

    async def _drop_client(self, client: LeanClient) -> None:
        self._generation += 1  # callbacks of the old client are ignored from now on
        self._ready.clear()
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(PublishError(f"connection to {self.broker.where} lost before the PUBACK"))
        with contextlib.suppress(OSError):
            client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None

    # -- callbacks (on the asyncio loop) ---------------------------------------------------------------------
    def _on_connect(self, generation: int, rc: Any, flags: Any) -> None:
        if generation != self._generation:
            return
        if getattr(rc, "is_failure", False):
            self._on_down(generation, f"refused: {rc}")
            return
        self.session_present = bool(getattr(flags, "session_present", False))
        self._up.set()

    def _on_down(self, generation: int, reason: str, code: int | None = None, by_broker: bool = False) -> None:
        if generation != self._generation:
            return
        self._down_reason = reason
        self.down_code = code
        self.down_by_broker = by_broker
        self._down.set()

    def _on_ack(self, generation: int, mid: int, refused: bool = False) -> None:
        if generation != self._generation:
            return
        waiter = self._waiters.pop(mid, None)
        if waiter is not None:
            if waiter.done():
                return
            if refused:  # MQTT 5: a PUBACK may carry a refusal (not authorised, quota exceeded)
                waiter.set_exception(PublishError(f"broker {self.broker.where} refused the message (PUBACK)"))
            else:
                waiter.set_result(None)
            return
        if self.window is not None and self.window.acked(mid):
            self._wake.set()

    def _on_msg(self, generation: int, topic: str, payload: bytes) -> None:
        if generation == self._generation and self.on_message is not None:
            self.on_message(topic, payload)
