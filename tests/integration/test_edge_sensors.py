"""The edge agent hears MQTT sensors on a real Mosquitto and republishes them in the contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from edge_agent import EdgeAgent, EdgeConfig, build_site
from infra.mqtt import client
from lifeline.broker_auth import edge_account
from telemetry import Quality, decode_agent_state, decode_status, decode_telemetry, topics
from testing import Mosquitto
from tests.helpers import LoopThread, Subscriber, account_for, client_account

pytestmark = pytest.mark.integration


def site_config(broker: Mosquitto, tmp_path: Path, **extra: object) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "site": "ent-site",
            "broker": account_for(
                broker, edge_account("ent-site"), reconnect_initial_s=0.1, reconnect_max_s=0.5
            ).model_dump(mode="json"),
            # the sensor link is a client of its own (tests: an open account, the vendor topics vary by test)
            "sensor_broker": client_account(broker, "edge-sensors")
            .model_copy(update={"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5})
            .model_dump(mode="json"),
            "dead_letter_path": str(tmp_path / "dead.sqlite"),
            "devices": [
                {"id": "gas-1", "profile": "gas_detector", "source_id": "GD-0001"},
                {"id": "fire-1", "profile": "fire_detector", "source_id": "FP-7"},
            ],
            **extra,
        }
    )


class Vendor:
    """Publishes vendor JSON like a field sensor would."""

    def __init__(self, broker: Mosquitto) -> None:
        account = client_account(broker, "vendor-sensors")
        self.client = client(account, account.username or "")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(topic, data, qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[Subscriber, Vendor, EdgeAgent]]:
    sub = Subscriber(mosquitto, topics.all_filter())
    agent = EdgeAgent(build_site(site_config(mosquitto, tmp_path)))
    thread = LoopThread(agent.run)
    sub.wait_for(lambda ms: any(m.topic == topics.agent_state("ent-site") for m in ms))
    _wait_subscribed(agent)
    vendor = Vendor(mosquitto)
    yield sub, vendor, agent
    vendor.close()
    thread.stop()
    sub.close()


def _wait_subscribed(agent: EdgeAgent) -> None:
    deadline = time.monotonic() + 10
    while not (agent.sensor_link and agent.sensor_link.connected) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # the SUBSCRIBE is sent right after CONNACK; give the broker a moment to register it


def telemetry_of(sub: Subscriber, device: str) -> list[object]:
    return [decode_telemetry(m.payload) for m in sub.snapshot() if m.topic == topics.telemetry("ent-site", device)]


def test_gas_detector_reading_arrives_in_the_contract(running: tuple[Subscriber, Vendor, EdgeAgent]) -> None:
    sub, vendor, _ = running
    ts = int(time.time() * 1000) - 1234
    vendor.send(
        "vendor/gasdet/GD-0001/up", {"sn": "GD-0001", "ts": ts, "data": {"lel": 27.5, "alarm": "low", "battery": 91}}
    )
    sub.wait_for(lambda ms: any(m.topic == topics.telemetry("ent-site", "gas-1") for m in ms))
    (msg,) = telemetry_of(sub, "gas-1")
    assert msg.profile == "gas_detector"  # type: ignore[attr-defined]
    assert msg.measurement == "gas_safety"  # type: ignore[attr-defined]
    assert msg.units["lel"] == "%LEL"  # type: ignore[attr-defined]
    assert msg.seq == 1  # type: ignore[attr-defined]
    (sample,) = msg.samples  # type: ignore[attr-defined]
    assert sample.ts == ts
    assert sample.values == {"lel": 27.5, "alarm_level": 1, "battery": 91}
    status = [decode_status(m.payload) for m in sub.snapshot() if m.topic == topics.status("ent-site", "gas-1")]
    assert status[-1].online


def test_out_of_range_and_bad_values_carry_their_quality(running: tuple[Subscriber, Vendor, EdgeAgent]) -> None:
    sub, vendor, _ = running
    vendor.send("vendor/gasdet/GD-0001/up", {"ts": 1, "data": {"lel": 140, "alarm": "weird", "battery": 50}})
    sub.wait_for(lambda ms: any(m.topic == topics.telemetry("ent-site", "gas-1") for m in ms))
    sample = telemetry_of(sub, "gas-1")[0].samples[0]  # type: ignore[attr-defined]
    assert sample.quality_of("lel") is Quality.UNCERTAIN
    assert sample.quality_of("alarm_level") is Quality.BAD
    assert sample.values["alarm_level"] is None
    assert "weird" in sample.quality["alarm_level"].reason


def test_malformed_message_goes_to_dead_letters_and_good_ones_follow(
    running: tuple[Subscriber, Vendor, EdgeAgent], tmp_path: Path
) -> None:
    sub, vendor, agent = running
    vendor.send("vendor/firepanel/FP-7/event", b"{broken json")
    vendor.send(
        "vendor/firepanel/FP-7/event",
        {"time": "2026-11-25T18:00:00+08:00", "state": "FIRE", "readings": {"smoke": 0.5, "temp": 40}},
    )
    sub.wait_for(lambda ms: any(m.topic == topics.telemetry("ent-site", "fire-1") for m in ms))
    assert telemetry_of(sub, "fire-1")[0].samples[0].values["fire_alarm"] is True  # type: ignore[attr-defined]
    (letter,) = agent.dead_letters.store.list()
    assert (letter.source, letter.stage, letter.replayable) == ("edge/ent-site", "sensor", True)
    assert letter.topic == "vendor/firepanel/FP-7/event"
    assert letter.payload == b"{broken json"
    assert "fire-1" in letter.reason
    assert "not JSON" in letter.reason
    assert agent.dead_letters.count == 1


def test_metrics_count_what_happened(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import urllib.request

    agent = EdgeAgent(build_site(site_config(mosquitto, tmp_path, metrics_port=0)))
    thread = LoopThread(agent.run)
    try:
        _wait_subscribed(agent)
        vendor = Vendor(mosquitto)
        vendor.send("vendor/gasdet/GD-0001/up", {"ts": 5, "data": {"lel": 3, "alarm": "normal", "battery": 80}})
        vendor.send("vendor/gasdet/GD-0001/up", b"not json")
        vendor.close()
        deadline = time.monotonic() + 10
        while agent.dead_letters.count < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'lifeline_edge_messages_in_total{device="gas-1",site="ent-site"} 2' in text
        assert 'lifeline_edge_messages_rejected_total{device="gas-1",site="ent-site"} 1' in text
        assert 'lifeline_edge_dead_letters_total{site="ent-site"} 1' in text
        assert "# TYPE lifeline_edge_readings_total counter" in text
    finally:
        thread.stop()


def test_agent_birth_and_clean_death_are_retained(mosquitto: Mosquitto, tmp_path: Path) -> None:
    agent = EdgeAgent(build_site(site_config(mosquitto, tmp_path)))
    thread = LoopThread(agent.run)
    sub = Subscriber(mosquitto, topics.agent_state("ent-site"))
    sub.wait_for(lambda ms: any(decode_agent_state(m.payload).online for m in ms))
    newcomer = Subscriber(mosquitto, topics.agent_state("ent-site"))  # gets the birth as the retained message
    (birth,) = newcomer.wait_for(lambda ms: len(ms) == 1)
    newcomer.close()
    assert birth.retain
    state = decode_agent_state(birth.payload)
    assert state.online
    assert state.devices == ["gas-1", "fire-1"]
    thread.stop()
    sub.wait_for(lambda ms: not decode_agent_state(ms[-1].payload).online)
    sub.close()
    late = Subscriber(mosquitto, topics.agent_state("ent-site"))  # a newcomer gets the retained death
    got = late.wait_for(lambda ms: len(ms) >= 1)
    assert got[0].retain
    assert decode_agent_state(got[0].payload).reason == "stopped"
    late.close()


def test_sensor_heard_again_after_broker_restart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    agent = EdgeAgent(build_site(site_config(mosquitto, tmp_path)))
    thread = LoopThread(agent.run)
    try:
        _wait_subscribed(agent)
        first = agent.sensor_link.connections if agent.sensor_link else 0
        mosquitto.restart()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            agent.sensor_link and agent.sensor_link.connected and agent.sensor_link.connections > first
        ):
            time.sleep(0.05)
        _wait_subscribed(agent)
        sub = Subscriber(mosquitto, topics.telemetry("ent-site", "gas-1"))
        vendor = Vendor(mosquitto)
        vendor.send("vendor/gasdet/GD-0001/up", {"ts": 5, "data": {"lel": 3, "alarm": "normal", "battery": 80}})
        got = sub.wait_for(lambda ms: len(ms) >= 1)
        assert decode_telemetry(got[0].payload).samples[0].values["lel"] == 3
        vendor.close()
        sub.close()
    finally:
        thread.stop()


def test_agent_death_by_last_will_when_killed(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import yaml

    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(site_config(mosquitto, tmp_path).model_dump(mode="json")))
    sub = Subscriber(mosquitto, topics.agent_state("ent-site"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifeline", "edge", "--config", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sub.wait_for(lambda ms: any(decode_agent_state(m.payload).online for m in ms), timeout=15)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        got = sub.wait_for(lambda ms: not decode_agent_state(ms[-1].payload).online, timeout=15)
        death = decode_agent_state(got[-1].payload)
        assert death.reason == "connection lost"  # the last will, published by the broker
        assert death.devices == []  # a will's payload is at most 64 KiB: the birth names the devices
        birth = next(decode_agent_state(m.payload) for m in got if decode_agent_state(m.payload).online)
        assert birth.devices
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sub.close()
