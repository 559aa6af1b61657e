"""The API's MQTT: what it subscribes to (status, telemetry, command results, alert events), handler errors
counted, and a blocking publish for its request handlers (worker threads), all on the transport's one
:class:`infra.mqtt.Link` (reconnect with jittered backoff, PUBACK awaited)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable

from infra.mqtt import BrokerConfig, Link, PublishError, Sendable
from telemetry import topics

log = logging.getLogger("lifeline.api.mqtt")

Handler = Callable[[str, bytes], None]


def subscriptions() -> list[str]:
    return [
        topics.status_filter(),
        topics.agent_state("+"),
        topics.telemetry_filter(),
        topics.command_result_filter(),
        topics.alert_events_filter(),
    ]


class MqttLink:
    """The API's link: ``start()`` on the API's loop, ``await close()`` at the end; messages reach
    ``on_message(topic, payload)`` on the loop."""

    def __init__(self, broker: BrokerConfig, client_id: str, on_message: Handler) -> None:
        self.broker = broker
        self.on_message = on_message
        self.connected = threading.Event()  # read by request handlers in worker threads
        self.received = 0
        self.handler_errors = 0
        self.link: Link[Sendable] = Link(
            "api",
            broker,
            client_id,
            subscriptions=subscriptions(),
            on_message=self._on_message,
            on_state=self._on_state,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def start(self) -> None:
        """Connect in the background (and again after every loss); never blocks on the broker."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.ensure_future(self.link.run(self._stop))

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> str | None:
        """Publish at QoS 1 and wait for the broker's acknowledgement; None when done, else why not (the caller
        records it: a command marked failed, an alert event handed to this instance's clients). Blocks: call from
        a worker thread, never from the loop."""
        loop = self._loop
        if not self.connected.is_set() or loop is None:
            return "broker not connected"
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("MqttLink.publish blocks: call it from a worker thread")
        done = asyncio.run_coroutine_threadsafe(self.link.publish(topic, payload, timeout_s=timeout_s), loop)
        try:
            done.result(timeout_s + 1.0)
        except PublishError as exc:
            return f"publish failed: {exc}"
        except concurrent.futures.TimeoutError:
            done.cancel()
            return f"broker did not acknowledge within {timeout_s:g} s"
        return None

    def _on_state(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.received += 1
        try:
            self.on_message(topic, payload)
        except Exception:  # one bad message must not end the link; the handler's own errors are counted
            self.handler_errors += 1
            log.exception("api could not handle a message topic=%s", topic)
