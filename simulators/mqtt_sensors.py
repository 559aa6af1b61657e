"""Simulated MQTT field sensors: each publishes its vendor's JSON on its vendor topic, QoS 1.

One connection carries a whole fleet (a gateway's worth of sensors; thousands of clients would measure the
broker, not the platform): the transport's ``infra.mqtt.Link``, which comes back after a lost broker within a
second or two (jittered backoff) and sends the fleet's messages through its windowed QoS 1 publish. Each sensor
publishes once at start, then every ``interval_s``; an alarm or state change (gas alarm level, fire panel state) is
published at once, as field devices do. A message counts as published once the broker acknowledged it (PUBACK);
until then, and while the broker is away, each sensor keeps only its latest reading and sends it on reconnect:
bounded, and what a sensor with a one-slot buffer does.
Events on demand: ``leak``, ``excursion`` (toxic gas), ``dip`` (oxygen), ``trip``, ``fault``, ``clear``, ``silence``,
``resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from device_profiles import Profile
from infra.clock import WallClock
from infra.mqtt import BrokerConfig, Link
from simulators.behaviours import Behaviour, FireDetector, GasDetector, OxygenDetector, ToxicGasDetector, Value
from simulators.vendor_json import vendor_messages

log = logging.getLogger("lifeline.sim.mqtt")


DEFAULT_INTERVAL_S: dict[str, float] = {
    "gas_detector": 5.0,
    "toxic_gas_detector": 5.0,
    "oxygen_detector": 5.0,
    "fire_detector": 30.0,
    "noise_meter": 5.0,
}
# points whose change is published at once instead of at the next interval
EVENT_POINTS: dict[str, tuple[str, ...]] = {
    "gas_detector": ("alarm_level",),
    "toxic_gas_detector": ("alarm_level",),
    "oxygen_detector": ("alarm_level",),
    "fire_detector": ("fire_alarm", "detector_fault"),
}
_ids = itertools.count(1)
_readings = itertools.count(1)


@dataclass(slots=True)
class _Out:
    """One vendor message on its way: ``last`` marks the last message of a reading."""

    device: str
    reading: int  # which of the fleet's readings it belongs to
    at: float  # the reading's time (the vendor's timestamp)
    topic: str
    payload: bytes
    last: bool
    retain: bool = False


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
        broker = credentials or BrokerConfig()  # the account (and TLS) of the simulated field gateway
        initial = min(1.0, float(reconnect_max_s))
        broker = broker.model_copy(
            update={
                "host": host,
                "port": port,
                "reconnect_initial_s": initial,
                "reconnect_max_s": float(reconnect_max_s),
            }
        )
        self.link: Link[_Out] = Link(
            "sim-sensors", broker, client_id or f"lifeline-sim-{os.getpid()}-{next(_ids)}", window=self
        )
        self.pending: dict[str, list[_Out]] = {}  # the latest reading's unsent messages, per sensor
        self._inflight: dict[int, _Out] = {}  # packet id -> a message awaiting its PUBACK
        self.published = 0  # readings the broker acknowledged
        self.on_published: Callable[[str, float], None] | None = None  # (device, reading time) once acknowledged
        self.replaced = 0  # readings replaced by a newer one before the broker took them
        # every reading a sensor made, and every one it dropped for a newer one (device, reading time): with
        # ``on_published``, what a fault test counts against (made = acknowledged + dropped + still waiting)
        self.on_reading: Callable[[str, float], None] | None = None
        self.on_replaced: Callable[[str, float], None] | None = None

    @property
    def connected(self) -> bool:
        return self.link.connected

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

    def excursion(self, device: str, peak_pct_oel: float = 150.0, rise_s: float = 60.0) -> None:
        """A toxic-gas release at ``device`` reaching ``peak_pct_oel`` of its gas's OEL after ``rise_s``."""
        b = self._sensor(device).behaviour
        if not isinstance(b, ToxicGasDetector):
            raise TypeError(f"{device!r} is not a toxic-gas detector")
        b.excursion(self.clock(), peak_pct_oel, rise_s=rise_s)

    def dip(self, device: str, to: float = 18.0, fall_s: float = 60.0) -> None:
        """The oxygen at oxygen detector ``device`` falls to ``to`` %VOL over ``fall_s``, then recovers."""
        b = self._sensor(device).behaviour
        if not isinstance(b, OxygenDetector):
            raise TypeError(f"{device!r} is not an oxygen detector")
        b.dip(self.clock(), to, fall_s=fall_s)

    def trip(self, device: str) -> None:
        """A fire at fire detector ``device``: FIRE is published at once."""
        b = self._sensor(device).behaviour
        if not isinstance(b, FireDetector):
            raise TypeError(f"{device!r} is not a fire detector")
        b.trip(self.clock())

    def fault(self, device: str, on: bool = True) -> None:
        """The detector reports a fault (gas, toxic gas, oxygen: alarm 'fault'; fire: state FAULT)."""
        b = self._sensor(device).behaviour
        if not isinstance(b, GasDetector | ToxicGasDetector | OxygenDetector | FireDetector):
            raise TypeError(f"{device!r} has no fault state")
        b.set_fault(on)

    def clear(self, device: str) -> None:
        """End leaks, releases, dips, fires and faults of ``device``."""
        b = self._sensor(device).behaviour
        if isinstance(b, GasDetector | ToxicGasDetector | OxygenDetector):
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

    # -- MQTT: the window the link sends from ---------------------------------------------------------------------
    def next_to_send(self, now: float) -> _Out | None:
        if not self.pending:
            return None
        device = next(iter(self.pending))
        messages = self.pending[device]
        out = messages.pop(0)
        if not messages:
            del self.pending[device]
        return out

    def send_delay(self, now: float) -> float | None:
        return None  # nothing is paced: wait until publish_due adds something

    def sent(self, token: int, entry: _Out, now: float) -> None:
        self._inflight[token] = entry

    def unsent(self, entry: _Out) -> None:
        self.pending.setdefault(entry.device, []).insert(0, entry)

    def acked(self, token: int) -> bool:
        out = self._inflight.pop(token, None)
        if out is not None and out.last:
            self.sensors[out.device].published += 1
            self.published += 1
            if self.on_published is not None:
                self.on_published(out.device, out.at)
        return True

    def connection_lost(self) -> int:
        """What the broker did not acknowledge goes back (in order), unless a newer reading of its sensor waits."""
        back: dict[str, list[_Out]] = {}
        for out in self._inflight.values():  # in the order they were sent
            queued = self.pending.get(out.device)
            if queued and queued[0].reading != out.reading:
                if out.last:
                    self._replaced(out)
                continue
            back.setdefault(out.device, []).append(out)
        self._inflight.clear()
        for device, outs in back.items():
            self.pending[device] = outs + self.pending.get(device, [])
        return sum(len(outs) for outs in back.values())

    def _replaced(self, out: _Out) -> None:
        self.replaced += 1
        if self.on_replaced is not None:
            self.on_replaced(out.device, out.at)

    def publish_due(self, now: float) -> int:
        """Queue every sensor message due at ``now`` for the link (a sensor's older unsent reading is replaced);
        the number of readings."""
        count = 0
        for sensor in self.sensors.values():
            if sensor.silenced:
                continue
            values = sensor.due(now)
            if values is None:
                continue
            count += 1
            messages = vendor_messages(sensor.profile, sensor.source_id, values, now)
            waiting = self.pending.get(sensor.device_id)
            if waiting:
                self._replaced(waiting[-1])
            if self.on_reading is not None:
                self.on_reading(sensor.device_id, now)
            reading, last = next(_readings), len(messages) - 1
            self.pending[sensor.device_id] = [
                _Out(sensor.device_id, reading, now, topic, body, i == last) for i, (topic, body) in enumerate(messages)
            ]
        if count:
            self.link.notify()
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying until the broker is there, and after every loss) and publish until ``stop`` is set."""
        link_stop = asyncio.Event()
        link = asyncio.ensure_future(self.link.run(link_stop))
        try:
            while not stop.is_set():
                self.publish_due(self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_s)
        finally:
            link_stop.set()
            await link
