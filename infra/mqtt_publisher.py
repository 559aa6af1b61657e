"""A small MQTT publisher for services that publish now and then (alert events, notifications, commands).

paho runs its network loop in its own thread and reconnects by itself; ``publish`` waits for the broker's PUBACK
(QoS 1) in a worker thread, bounded by ``timeout_s``, and raises :class:`PublishError` when it does not come. The
edge agent's high-rate path has its own windowed outbox (edge_agent/outbox.py); this one is for low rates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.mqtt_config import BrokerConfig, configure_client

log = logging.getLogger("lifeline.mqtt.publisher")

# What a component that publishes is given (a ``Publisher``'s methods, or a fake in tests): topic, payload.
Publish = Callable[[str, bytes], Awaitable[None]]  # ``Publisher.publish``: returns once the broker has it
PublishNowait = Callable[[str, bytes], object]  # ``Publisher.publish_nowait``: queued, or refused (falsy)


class PublishError(Exception):
    """The broker did not take a message (not connected, queue full, or no PUBACK in time)."""


class Publisher:
    def __init__(self, broker: BrokerConfig, client_id: str, max_queued: int = 10_000) -> None:
        self.broker = broker
        self.client_id = client_id
        self.connected = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        configure_client(self._client, broker)
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(int(max(1, broker.reconnect_initial_s)), int(broker.reconnect_max_s))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._was_connected = False

    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self.connected.clear()  # a stop is not a lost broker: no warning
        self._client.disconnect()
        self._client.loop_stop()

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue a message; False when paho refused it (queue full). Use for events that may be lost on a crash."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)  # NO_CONN: queued for the reconnect

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout_s: float = 10.0) -> None:  # fmt: skip
        """Publish and wait until the broker has it (QoS 1: its PUBACK)."""
        where = f"broker {self.broker.host}:{self.broker.port}"
        if not self.connected.is_set() and not await asyncio.to_thread(self.connected.wait, timeout_s):
            raise PublishError(f"{where} not connected: cannot publish {topic}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            await asyncio.to_thread(info.wait_for_publish, timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"{where} did not take {topic}: {exc}") from exc
        if not info.is_published():
            raise PublishError(f"no acknowledgement from {where} for {topic} within {timeout_s:g} s")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("broker refused publisher client=%s reason=%s", self.client_id, rc)
            return
        self.connected.set()
        self._was_connected = True
        log.info("publisher connected client=%s broker=%s:%d", self.client_id, self.broker.host, self.broker.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if self.connected.is_set():
            log.warning("publisher lost the broker client=%s reason=%s (reconnecting)", self.client_id, rc)
        self.connected.clear()
