"""Gaps in an MQTT sensor's own message counter (profile ``mqtt.sequence``): counted per device as
``lifeline_edge_readings_missed_total`` and in the agent's health, never silently; redeliveries and a sensor's restart
are no gap."""

from __future__ import annotations

import orjson
import pytest

from device_profiles import Profile, load_catalogue
from device_profiles.schema import SequenceSpec
from edge_agent._sensor_seq import SeqTracker
from edge_agent.config import DeviceConfig
from edge_agent.deadletter import DeadLetters
from edge_agent.mqtt_sensors import SensorHub
from edge_agent.stats import DeviceStats, collect
from edge_agent.vendor_json import decode_vendor, sequence_of
from infra.clock import SystemClock


@pytest.mark.parametrize(
    ("modulo", "heard", "missed", "restarts"),
    [
        pytest.param(None, [1, 2, 3, 4], [0, 0, 0, 0], 0, id="no-gap"),
        pytest.param(None, [5, 6, 9, 10], [0, 0, 2, 0], 0, id="a-jump-of-three-misses-two"),
        pytest.param(None, [1, 2, 2, 3], [0, 0, 0, 0], 0, id="a-redelivery"),
        pytest.param(None, [1, 2, 5, 3, 4, 6], [0, 0, 2, 0, 0, 0], 0, id="late-ones-after-a-gap-are-no-gap"),
        pytest.param(None, [900, 901, 1, 2, 4], [0, 0, 0, 0, 1], 1, id="the-sensor-restarted"),
        pytest.param(65536, [65534, 65535, 0, 1], [0, 0, 0, 0], 0, id="wraps-without-a-gap"),
        pytest.param(65536, [65534, 2], [0, 3], 0, id="a-gap-across-the-wrap"),
        pytest.param(256, [10, 250], [0, 0], 0, id="far-behind-with-a-wrap-is-a-late-one"),
    ],
)
def test_seq_tracker(modulo: int | None, heard: list[int], missed: list[int], restarts: int) -> None:
    tracker = SeqTracker(modulo)
    assert [tracker.heard(s) for s in heard] == missed
    assert (tracker.missed, tracker.restarts) == (sum(missed), restarts)


@pytest.mark.parametrize(
    ("payload", "seq"),
    [
        pytest.param({"meta": {"n": 7}}, 7, id="whole-number"),
        pytest.param({"meta": {"n": "8"}}, 8, id="as-text"),
        pytest.param({"meta": {"n": 7.5}}, None, id="not-whole"),
        pytest.param({"meta": {"n": -1}}, None, id="negative"),
        pytest.param({"meta": {}}, None, id="missing"),
    ],
)
def test_sequence_of(payload: object, seq: int | None) -> None:
    assert sequence_of(SequenceSpec(path="meta.n"), payload) == seq
    assert sequence_of(None, payload) is None


def gas_profile() -> Profile:
    base = load_catalogue()["gas_detector"]
    assert base.mqtt is not None
    mqtt = base.mqtt.model_copy(update={"sequence": SequenceSpec(path="seq", modulo=65536)})
    return base.model_copy(update={"mqtt": mqtt})


def test_decode_vendor_gives_the_counter_with_the_sample() -> None:
    profile = gas_profile()
    assert profile.mqtt is not None
    body = {"sn": "GD-1", "ts": 1000, "seq": 41, "data": {"lel": 3.0}}
    sample, seq = decode_vendor(
        profile.mqtt.points, profile.mqtt.timestamp, profile.mqtt.sequence, orjson.dumps(body), 0
    )
    assert (sample.values["lel"], seq) == (3.0, 41)


def test_the_hub_counts_what_a_sensor_numbered_and_the_edge_never_heard() -> None:
    profile = gas_profile()
    device = DeviceConfig.model_validate({"id": "gas-1", "profile": "gas_detector", "source_id": "GD-1"})
    stats = {"gas-1": DeviceStats()}
    heard: list[int] = []
    hub = SensorHub(
        [(device, profile)],
        lambda d, p, s: heard.append(s.ts),
        lambda d, p, online, reason: None,
        DeadLetters(None, source="edge/s1"),
        SystemClock(),  # the hub reads it for presence only
        stats,
    )
    (topic,) = hub.topics
    for seq in [1, 2, 3, 7, 8, 8, 12]:
        hub.handle(topic, orjson.dumps({"sn": "GD-1", "ts": 1000 + seq, "seq": seq, "data": {"lel": 1.0}}))
    assert len(heard) == 7  # every message heard is published; the gaps are counted beside them
    assert stats["gas-1"].readings_missed == 3 + 3
    assert hub.readings_missed == 6
    rows = [
        (sample.labels, sample.value)
        for family in collect("s1", stats, {})
        for sample in family.samples
        if sample.name == "lifeline_edge_readings_missed_total"
    ]
    assert rows == [({"site": "s1", "device": "gas-1"}, 6.0)]
