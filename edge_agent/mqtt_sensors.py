"""MQTT sensors of a site: which vendor topics to hear, and turning their messages into samples."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from device_profiles import MqttPoint, Profile
from device_profiles.derive import derive
from edge_agent._sensor_seq import SeqTracker
from edge_agent.config import DeviceConfig
from edge_agent.deadletter import DeadLetters
from edge_agent.stats import DeviceStats
from edge_agent.vendor_json import VendorError, decode_vendor
from infra.clock import Clock
from telemetry import Sample

log = logging.getLogger("lifeline.edge.sensors")


@dataclass(slots=True)
class _Route:
    device: DeviceConfig
    profile: Profile
    points: list[MqttPoint]


@dataclass(slots=True)
class _Presence:
    stale_after_s: float
    last_seen: float | None = None
    online: bool | None = None
    stats: DeviceStats = field(default_factory=DeviceStats)
    seq: SeqTracker = field(default_factory=SeqTracker)


class SensorHub:
    """Routes vendor messages to devices, decodes them, and tracks which sensors have gone quiet."""

    def __init__(
        self,
        devices: list[tuple[DeviceConfig, Profile]],
        on_sample: Callable[[DeviceConfig, Profile, Sample], None],
        on_status: Callable[[DeviceConfig, Profile, bool, str], None],
        dead_letters: DeadLetters,
        clock: Clock,
        stats: dict[str, DeviceStats],
    ) -> None:
        self.routes: dict[str, list[_Route]] = {}
        self.presence: dict[str, _Presence] = {}
        self.devices = {d.id: (d, p) for d, p in devices}
        for device, profile in devices:
            assert profile.mqtt is not None
            by_topic: dict[str, list[MqttPoint]] = {}
            for point in profile.mqtt.points:
                by_topic.setdefault(profile.mqtt.topic_of(point, device.vendor_id), []).append(point)
            for topic, points in by_topic.items():
                self.routes.setdefault(topic, []).append(_Route(device, profile, points))
            counter = profile.mqtt.sequence
            self.presence[device.id] = _Presence(
                profile.mqtt.stale_after_s,
                stats=stats[device.id],
                seq=SeqTracker(counter.modulo if counter is not None else None),
            )
        self.on_sample = on_sample
        self.on_status = on_status
        self.dead_letters = dead_letters
        self.clock = clock
        self._started: float | None = None
        self._link_down = False  # the sensor link is down (not told: taken as up)
        self._link_back: float | None = None  # when (monotonic) it last came back

    @property
    def topics(self) -> list[str]:
        return sorted(self.routes)

    def handle(self, topic: str, payload: bytes) -> None:
        """One vendor message from the broker."""
        now = self.clock.time()
        received_ms = int(now * 1000)
        routes = self.routes.get(topic)
        if not routes:
            self.dead_letters.add(
                received_ms, topic, payload, "no device listens on this topic", stage="sensor", replayable=True
            )
            return
        for route in routes:
            presence = self.presence[route.device.id]
            presence.stats.messages_in += 1
            assert route.profile.mqtt is not None
            mqtt = route.profile.mqtt
            try:
                sample, seq = decode_vendor(route.points, mqtt.timestamp, mqtt.sequence, payload, received_ms)
            except VendorError as exc:
                presence.stats.messages_rejected += 1
                self.dead_letters.add(
                    received_ms, topic, payload, f"device {route.device.id!r}: {exc}", stage="sensor", replayable=True
                )
                continue
            if route.profile.derived is not None:  # derived points and maintenance marks, as for Modbus
                tags = {**route.profile.tags, **route.device.tags}
                values, quality = derive(route.profile, tags, sample.values, sample.quality)
                sample = Sample.model_construct(ts=sample.ts, values=values, quality=quality)
            if seq is not None:
                self._count_gap(route.device, presence, seq)
            presence.last_seen = self.clock.monotonic()
            presence.stats.readings += len(sample.values)
            self._set_online(route.device, route.profile, presence, True, "")
            self.on_sample(route.device, route.profile, sample)

    def _count_gap(self, device: DeviceConfig, presence: _Presence, seq: int) -> None:
        before = presence.seq.last
        missed = presence.seq.heard(seq)
        if missed:
            presence.stats.readings_missed += missed
            log.warning(
                "sensor messages missed device=%s last_heard=%s now=%d missed=%d missed_total=%d (the sensor's own "
                "counter jumped: sent while the edge could not hear them)",
                device.id,
                before,
                seq,
                missed,
                presence.seq.missed,
            )

    @property
    def readings_missed(self) -> int:
        """Messages the site's sensors numbered that the edge never heard (this run)."""
        return sum(p.seq.missed for p in self.presence.values())

    def link_changed(self, up: bool) -> None:
        """The sensor link (the edge's MQTT client on the sensors' broker) went up or down. While it is down the
        sensors cannot be heard, which says nothing about them: none is judged quiet. After it is back, each gets a
        whole ``stale_after_s`` from then (the broker delivers what the persistent session queued meanwhile, and a
        sensor that kept its reading sends it on its own reconnect)."""
        if not up:
            self._link_down = True
        elif self._link_down or self._link_back is None:
            self._link_down, self._link_back = False, self.clock.monotonic()

    def check_stale(self) -> None:
        """Mark sensors offline that have said nothing for their profile's ``stale_after_s`` while the sensor link was
        up (see ``link_changed``)."""
        now = self.clock.monotonic()
        if self._link_down:
            return  # cut off from the sensors: their silence is the link's
        back = self._link_back
        for device_id, presence in self.presence.items():
            heard = presence.last_seen
            if back is not None and (heard is None or heard < back):
                heard = back
            quiet = heard is None or now - heard > presence.stale_after_s
            if quiet and presence.online is not False and self._started_long_ago(presence, now):
                device, profile = self.devices[device_id]
                self._set_online(device, profile, presence, False, f"no message for {presence.stale_after_s:g} s")

    def _started_long_ago(self, presence: _Presence, now: float) -> bool:
        if presence.last_seen is not None:
            return True
        if self._started is None:
            self._started = now
            return False
        return now - self._started > presence.stale_after_s

    def _set_online(
        self, device: DeviceConfig, profile: Profile, presence: _Presence, online: bool, reason: str
    ) -> None:
        if presence.online is online:
            return
        presence.online = online
        if online:
            log.info("sensor online device=%s", device.id)
        else:
            log.warning("sensor offline device=%s reason=%r", device.id, reason)
        self.on_status(device, profile, online, reason)
