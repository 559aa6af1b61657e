"""Simulated MQTT field sensors: each publishes its vendor's JSON on its vendor topic, QoS 1.

One paho client carries a whole fleet (a gateway's worth of sensors; thousands of clients would measure the
broker, not the platform). Each sensor publishes once at start, then every ``interval_s``; an alarm or state
change (gas alarm level, fire panel state) is published at once, as field devices do. While the broker is away
each sensor keeps only its latest message and sends it on reconnect: bounded, and what a sensor with a one-slot
buffer does. Events on demand: ``leak``, ``trip``, ``fault``, ``clear``, ``silence``, ``resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles import Profile
from infra.clock import WallClock
from infra.mqtt_config import BrokerConfig, configure_client
from simulators.behaviours import Behaviour, FireDetector, GasDetector, Value
from simulators.vendor_json import vendor_messages

log = logging.getLogger("lifeline.sim.mqtt")


DEFAULT_INTERVAL_S: dict[str, float] = {"gas_detector": 5.0, "fire_detector": 30.0, "noise_meter": 5.0}
# points whose change is published at once instead of at the next interval
EVENT_POINTS: dict[str, tuple[str, ...]] = {
    "gas_detector": ("alarm_level",),
    "fire_detector": ("fire_alarm", "detector_fault"),
}
_ids = itertools.count(1)


@dataclass(slots=True)
class Sensor:
    """One simulated sensor: ``device_id`` is the platform's id, ``source_id`` the one in the vendor topic."""

    device_id: str
    profile: Profile
    behaviour: Behaviour
    source_id: str = ""
    interval_s: float = 0.0  # 0: the kind's default
    next_at: float = float("-inf")
    silenced: bool = False
    last_events: tuple[Value, ...] | None = None
    published: int = 0

    def __post_init__(self) -> None:
        if self.profile.mqtt is None:
            raise ValueError(f"profile {self.profile.name!r} is not an MQTT profile")
        self.source_id = self.source_id or self.device_id
        self.interval_s = self.interval_s or DEFAULT_INTERVAL_S.get(self.profile.name, 10.0)

    def due(self, now: float) -> dict[str, Value] | None:
        """The values to publish now, or None: on its interval, or at once when an event point changed."""
        watched = EVENT_POINTS.get(self.profile.name, ())
        if now < self.next_at and not watched:
            return None
        values = self.behaviour.step(now)
        events = tuple(values[name] for name in watched)
        changed = self.last_events is not None and events != self.last_events
        self.last_events = events
        if now < self.next_at and not changed:
            return None
        self.next_at = now + self.interval_s if now >= self.next_at else self.next_at
        return values


class SensorFleet:
    """Sensors publishing through one MQTT connection to ``host:port``; run it with ``run(stop)``."""

    def __init__(
        self,
        sensors: Iterable[Sensor],
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        clock: WallClock = time.time,
        tick_s: float = 0.1,
        reconnect_max_s: int = 2,
        credentials: BrokerConfig | None = None,
    ) -> None:
        self.sensors = {s.device_id: s for s in sensors}
        self.host, self.port = host, port
        self.clock = clock
        self.tick_s = tick_s
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"lifeline-sim-{os.getpid()}-{next(_ids)}",
        )
        if credentials is not None:  # the account (and TLS) of the simulated field gateway
            configure_client(self.client, credentials)
        self.client.reconnect_delay_set(1, reconnect_max_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self._was_connected = False
        self._closing = False
        self.pending: dict[str, list[tuple[str, bytes]]] = {}  # latest message per sensor while offline
        self.published = 0
        self.replaced = 0  # messages replaced by a newer one while the broker was away

    # -- events on demand ---------------------------------------------------------------------------------------
    def _sensor(self, device: str) -> Sensor:
        sensor = self.sensors.get(device)
        if sensor is None:
            raise KeyError(f"no simulated sensor {device!r}")
        return sensor

    def leak(self, device: str, peak: float = 60.0, rise_s: float = 60.0) -> None:
        """A gas leak at ``device`` reaching ``peak`` %LEL after ``rise_s``; alarm changes are published at once."""
        b = self._sensor(device).behaviour
        if not isinstance(b, GasDetector):
            raise TypeError(f"{device!r} is not a gas detector")
        b.leak(self.clock(), peak, rise_s=rise_s)

    def trip(self, device: str) -> None:
        """A fire at fire detector ``device``: FIRE is published at once."""
        b = self._sensor(device).behaviour
        if not isinstance(b, FireDetector):
            raise TypeError(f"{device!r} is not a fire detector")
        b.trip(self.clock())

    def fault(self, device: str, on: bool = True) -> None:
        """The detector reports a fault (gas: alarm 'fault'; fire: state FAULT)."""
        b = self._sensor(device).behaviour
        if not isinstance(b, GasDetector | FireDetector):
            raise TypeError(f"{device!r} has no fault state")
        b.set_fault(on)

    def clear(self, device: str) -> None:
        """End leaks, fires and faults of ``device``."""
        b = self._sensor(device).behaviour
        if isinstance(b, GasDetector):
            b.clear()
        elif isinstance(b, FireDetector):
            b.reset()

    def silence(self, device: str) -> None:
        """``device`` stops publishing (battery out, radio gone)."""
        self._sensor(device).silenced = True
        self.pending.pop(device, None)

    def resume(self, device: str) -> None:
        sensor = self._sensor(device)
        sensor.silenced = False
        sensor.next_at = float("-inf")

    # -- MQTT ---------------------------------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("sim sensors: broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        if not self._was_connected:
            log.info("sim sensors: connected to %s:%s sensors=%d", self.host, self.port, len(self.sensors))
        self._was_connected = True
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("sim sensors: lost broker %s:%s (%s); keeping the latest message of each", self.host,
                        self.port, reason)  # fmt: skip
        self.connected.clear()

    def publish_due(self, now: float) -> int:
        """Publish (or keep, while offline) every sensor message due at ``now``; the number handled."""
        count = 0
        for sensor in self.sensors.values():
            if sensor.silenced:
                continue
            values = sensor.due(now)
            if values is None:
                continue
            count += 1
            messages = vendor_messages(sensor.profile, sensor.source_id, values, now)
            if sensor.device_id in self.pending:
                self.replaced += 1
            self.pending[sensor.device_id] = messages
        if self.connected.is_set():
            self._flush()
        return count

    def _flush(self) -> None:
        for device, messages in list(self.pending.items()):
            for topic, payload in messages:
                info = self.client.publish(topic, payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # the connection went while sending: keep this and the rest for the reconnect
            del self.pending[device]
            self.sensors[device].published += 1
            self.published += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying until the broker is there) and publish until ``stop`` is set."""
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()
        try:
            while not stop.is_set():
                self.publish_due(self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_s)
        finally:
            self._closing = True
            self.client.disconnect()
            self.client.loop_stop()
