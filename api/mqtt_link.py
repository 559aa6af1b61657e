"""The API's MQTT connection: subscribes to status, telemetry, command results and alert events, and publishes
commands. paho runs its own network thread; messages are handed to ``on_message(topic, payload)`` there."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.mqtt_config import BrokerConfig, configure_client
from telemetry import topics

log = logging.getLogger("lifeline.api.mqtt")

Handler = Callable[[str, bytes], None]


def subscriptions() -> list[str]:
    return [
        topics.status_filter(),
        topics.telemetry_filter(),
        topics.command_result_filter(),
        topics.alert_events_filter(),
    ]


class MqttLink:
    def __init__(self, broker: BrokerConfig, client_id: str, on_message: Handler) -> None:
        self.broker = broker
        self.on_message = on_message
        self.connected = threading.Event()
        self.received = 0
        self.handler_errors = 0
        self._logged_down = False
        self._stopping = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        configure_client(self._client, broker)
        self._client.reconnect_delay_set(
            max(1, int(broker.reconnect_initial_s)), max(1, int(broker.reconnect_max_s))
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background (retried by paho until ``stop``); never blocks on the broker."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> str | None:
        """Publish at QoS 1 and wait for the broker's acknowledgement; None when done, else why not.
        Blocks: call from a worker thread."""
        if not self.connected.is_set():
            return "broker not connected"
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return f"publish failed: {mqtt.error_string(info.rc)}"
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:  # paho: the connection went, or its queue is full
            return f"publish failed: {exc}"
        return None if info.is_published() else f"broker did not acknowledge within {timeout_s} s"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("api broker refused the connection broker=%s:%d reason=%s", self.broker.host,
                        self.broker.port, rc)  # fmt: skip
            return
        client.subscribe([(f, 1) for f in subscriptions()])
        self.connected.set()
        log.info("api connected to the broker broker=%s:%d", self.broker.host, self.broker.port)
        self._logged_down = False

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()
        if not self._logged_down and not self._stopping:
            log.warning("api lost the broker broker=%s:%d reason=%s (reconnecting, logged once)", self.broker.host,
                        self.broker.port, rc)  # fmt: skip
            self._logged_down = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:  # one bad message must not kill paho's thread; the handler's own errors are counted
            self.handler_errors += 1
            log.exception("api could not handle a message topic=%s", msg.topic)
