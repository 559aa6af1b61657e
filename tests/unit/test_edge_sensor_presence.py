"""The edge judges its MQTT sensors quiet only while it can hear them: not while its sensor link is down (the broker
the sensors publish to is away), and each gets a whole ``stale_after_s`` after the link is back (the broker delivers
what the session queued, a sensor sends the reading it kept). Time is a parameter (a clock the test moves)."""

from __future__ import annotations

import orjson

from device_profiles import load_catalogue
from edge_agent.config import DeviceConfig
from edge_agent.deadletter import DeadLetters
from edge_agent.mqtt_sensors import SensorHub
from edge_agent.stats import DeviceStats


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        return 1_760_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


def hub_with_gas(clock: Clock) -> tuple[SensorHub, str, list[tuple[bool, str]]]:
    profile = load_catalogue()["gas_detector"]
    assert profile.mqtt is not None
    assert profile.mqtt.stale_after_s == 120
    device = DeviceConfig.model_validate({"id": "gas-1", "profile": "gas_detector", "source_id": "GD-1"})
    statuses: list[tuple[bool, str]] = []
    hub = SensorHub(
        [(device, profile)],
        lambda d, p, s: None,
        lambda d, p, online, reason: statuses.append((online, reason)),
        DeadLetters(None, source="edge/s1"),
        clock,
        {"gas-1": DeviceStats()},
    )
    (topic,) = hub.topics
    return hub, topic, statuses


def reading(clock: Clock) -> bytes:
    return orjson.dumps({"sn": "GD-1", "ts": int(clock.time() * 1000), "data": {"lel": 1.0}})


def run(hub: SensorHub, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        clock.now += 1
        hub.check_stale()


def test_a_sensor_is_not_judged_quiet_while_the_sensor_link_is_down() -> None:
    clock = Clock()
    hub, topic, statuses = hub_with_gas(clock)
    hub.link_changed(True)
    hub.handle(topic, reading(clock))
    assert statuses == [(True, "")]
    run(hub, clock, 10)
    hub.link_changed(False)  # the central broker goes away for 130 s
    run(hub, clock, 130)
    assert statuses == [(True, "")]
    hub.link_changed(True)  # back: the queued and kept readings come within seconds
    run(hub, clock, 20)
    assert statuses == [(True, "")]
    hub.handle(topic, reading(clock))
    run(hub, clock, 100)
    assert statuses == [(True, "")]


def test_after_the_link_is_back_a_sensor_really_quiet_is_marked_offline_a_whole_stale_time_later() -> None:
    clock = Clock()
    hub, topic, statuses = hub_with_gas(clock)
    hub.link_changed(True)
    hub.handle(topic, reading(clock))
    hub.link_changed(False)
    run(hub, clock, 200)
    hub.link_changed(True)
    run(hub, clock, 120)
    assert statuses == [(True, "")]  # 120 s since the link came back: not yet past the stale time
    run(hub, clock, 1)
    assert statuses == [(True, ""), (False, "no message for 120 s")]


def test_with_the_link_up_a_quiet_sensor_is_marked_offline_after_its_stale_time() -> None:
    clock = Clock()
    hub, topic, statuses = hub_with_gas(clock)
    hub.link_changed(True)
    hub.handle(topic, reading(clock))
    run(hub, clock, 120)
    assert statuses == [(True, "")]
    run(hub, clock, 1)
    assert statuses == [(True, ""), (False, "no message for 120 s")]
    hub.link_changed(False)  # and a link lost afterwards changes nothing already said
    hub.link_changed(True)
    hub.handle(topic, reading(clock))
    assert statuses[-1] == (True, "")
