"""Simulated toxic-gas and oxygen detectors over a real Mosquitto: their vendor JSON on their vendor topics, a
release and an oxygen dip published as the alarms change, and what arrives, decoded as the edge decodes it, raises
the packs' rules (rules/packs/toxic_gas.yaml, oxygen.yaml)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from device_profiles import load_catalogue
from edge_agent.vendor_json import decode_message
from rules import PACKS, Engine, load_rules
from simulators import Sensor, SensorFleet, make_behaviour
from telemetry.models import Telemetry
from testing import Mosquitto
from tests.helpers import LoopThread, Received, Subscriber, client_account

pytestmark = pytest.mark.integration

CATALOGUE = load_catalogue()
TOXIC, OXYGEN = "vendor/toxdet/TD-1/up", "vendor/o2det/OD-1/up"


@pytest.fixture
def fleet(mosquitto: Mosquitto) -> Iterator[tuple[SensorFleet, LoopThread, Subscriber]]:
    sub = Subscriber(mosquitto, "vendor/#")
    sensors = [
        Sensor(
            "tox-1",
            CATALOGUE["toxic_gas_detector"],
            make_behaviour("toxic_gas_detector", 1, {"gas": "h2s"}),
            "TD-1",
            0.5,
        ),
        Sensor(
            "o2-1", CATALOGUE["oxygen_detector"], make_behaviour("oxygen_detector", 1, {"confined": True}), "OD-1", 0.5
        ),
    ]
    fleet = SensorFleet(
        sensors, mosquitto.host, mosquitto.port, tick_s=0.05, credentials=client_account(mosquitto, "sim")
    )
    thread = LoopThread(fleet.run)
    yield fleet, thread, sub
    thread.stop()
    sub.close()


def transitions(messages: list[Received]) -> list[tuple[str, str | None]]:
    """The messages decoded as the edge decodes them and fed to the rules engine, in order of arrival."""
    engine = Engine(load_rules([PACKS]))
    out: list[tuple[str, str | None]] = []
    for seq, m in enumerate(messages, start=1):
        name, device, tags = (
            ("toxic_gas_detector", "tox-1", {"gas": "h2s"}) if m.topic == TOXIC else ("oxygen_detector", "o2-1", {})
        )
        profile = CATALOGUE[name]
        assert profile.mqtt is not None
        sample = decode_message(profile.mqtt.points, profile.mqtt.timestamp, m.payload, received_ms=0)
        msg = Telemetry(
            site="work-safety",
            device=device,
            profile=name,
            measurement="gas_safety",
            seq=seq,
            tags={"domain": "safety", **tags},
            samples=[sample],
        )
        out += [(t.rule, t.severity) for t in engine.observe(msg, received_ms=sample.ts)]
    return out


def alarm(messages: list[Received], topic: str) -> list[object]:
    return [orjson.loads(m.payload)["data"]["alarm"] for m in messages if m.topic == topic]


def test_release_dip_and_fault_arrive_and_raise_the_packs_rules(
    fleet: tuple[SensorFleet, LoopThread, Subscriber],
) -> None:
    sensors, thread, sub = fleet
    got = sub.wait_for(lambda ms: {TOXIC, OXYGEN} <= {m.topic for m in ms})
    first = orjson.loads(next(m.payload for m in got if m.topic == TOXIC))
    assert first["sn"] == "TD-1"
    assert set(first["data"]) == {"conc", "alarm", "battery"}
    assert first["data"]["alarm"] == "normal"
    assert first["data"]["conc"] < 10  # h2s: below 100 %OEL
    thread.call(lambda: sensors.excursion("tox-1", 250, rise_s=1))
    thread.call(lambda: sensors.dip("o2-1", 17.0, fall_s=1))
    got = sub.wait_for(lambda ms: "high" in alarm(ms, TOXIC) and "low" in alarm(ms, OXYGEN) and len(ms) > 20, 10)
    seen = transitions(got)
    assert ("toxic_gas.h2s", "critical") in seen
    assert ("oxygen.deficiency", "critical") in seen
    thread.call(lambda: sensors.fault("o2-1"))
    got = sub.wait_for(lambda ms: "fault" in alarm(ms, OXYGEN), 5)
    assert ("oxygen.detector_fault", "warning") in transitions(got)
