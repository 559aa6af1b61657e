"""MQTT 5 consumer: shared subscription, persistent session, manual acknowledgement.

Messages are acknowledged only when the bridge says so (after InfluxDB accepted them). The broker sends at most
``receive_maximum`` unacknowledged messages (MQTT 5 Receive Maximum), which bounds what the bridge holds in
memory while InfluxDB is down: the rest waits in the broker's session queue, and before it at the edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker_bridge.config import SubscriptionConfig
from edge_agent.config import BrokerConfig

log = logging.getLogger("lifeline.bridge.mqtt")


@dataclass(frozen=True, slots=True)
class Incoming:
    generation: int  # connection the message came on; an ack on a later connection would be wrong
    mid: int
    topic: str
    payload: bytes
    qos: int


class Consumer:
    """Hands received messages to the asyncio loop through ``inbox``; ``ack`` acknowledges them."""

    def __init__(self, broker: BrokerConfig, sub: SubscriptionConfig) -> None:
        self.broker = broker
        self.sub = sub
        self.inbox: deque[Incoming] = deque()
        self.generation = 0
        self.connected = False
        self.connections = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=sub.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        self._client.reconnect_delay_set(int(max(1, broker.reconnect_initial_s)), int(max(1, broker.reconnect_max_s)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def filter(self) -> str:
        return f"$share/{self.sub.group}/{self.sub.topic}"

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.sub.session_expiry_s
        props.ReceiveMaximum = self.sub.receive_maximum
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def wait(self, timeout_s: float) -> None:
        """Wait until something arrives (or ``timeout_s`` passes)."""
        if self.inbox:
            return
        self._wake.clear()
        if self.inbox:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            return

    def ack(self, item: Incoming) -> bool:
        """Acknowledge ``item``; False if its connection is gone (the broker will send it again)."""
        if item.qos == 0:
            return True
        if item.generation != self.generation or not self.connected:
            return False
        return self._client.ack(item.mid, item.qos) == mqtt.MQTT_ERR_SUCCESS

    # -- paho's thread -----------------------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.warning("broker refused the bridge reason=%s", rc)
            return
        self.generation += 1
        self.connections += 1
        self.connected = True
        client.subscribe(self.filter, qos=1)
        log.info("bridge connected broker=%s:%d filter=%s session_present=%s", self.broker.host,
                 self.broker.port, self.filter, getattr(flags, "session_present", None))  # fmt: skip

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected:
            log.warning("bridge lost the broker reason=%s (reconnecting; unacknowledged messages come again)", rc)
        self.connected = False
        self.generation += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        was_empty = not self.inbox
        self.inbox.append(Incoming(self.generation, msg.mid, msg.topic, bytes(msg.payload), msg.qos))
        if was_empty and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closing
                return
