"""Simulated MQTT sensors and whole districts against a real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pymodbus.client import AsyncModbusTcpClient

from device_profiles import load_catalogue
from edge_agent.config import load_site
from simulators import District, Sensor, SensorFleet, load_scenario, make_behaviour, run_district
from testing import Mosquitto
from tests.helpers import LoopThread, Received, Subscriber, client_account

pytestmark = pytest.mark.integration

CATALOGUE = load_catalogue()


def fleet_of(broker: Mosquitto, interval_s: float = 0.2) -> SensorFleet:
    sensors = [
        Sensor("gas-1", CATALOGUE["gas_detector"], make_behaviour("gas_detector", 1), "GD-1", interval_s),
        Sensor("fire-1", CATALOGUE["fire_detector"], make_behaviour("fire_detector", 1), "FP-1", 30.0),
        Sensor("noise-1", CATALOGUE["noise_meter"], make_behaviour("noise_meter", 1), "", interval_s),
    ]
    return SensorFleet(sensors, broker.host, broker.port, tick_s=0.05, credentials=client_account(broker, "sim"))


@pytest.fixture
def fleet(mosquitto: Mosquitto) -> Iterator[tuple[SensorFleet, LoopThread, Subscriber]]:
    sub = Subscriber(mosquitto, "vendor/#")
    sensors = fleet_of(mosquitto)
    thread = LoopThread(sensors.run)
    yield sensors, thread, sub
    thread.stop()
    sub.close()


def bodies(messages: list[Received], topic: str) -> list[dict[str, object]]:
    return [orjson.loads(m.payload) for m in messages if m.topic == topic]


def test_each_sensor_publishes_its_vendor_json_at_start(fleet: tuple[SensorFleet, LoopThread, Subscriber]) -> None:
    _, _, sub = fleet
    topics = {"vendor/gasdet/GD-1/up", "vendor/firepanel/FP-1/event", "vendor/noise/noise-1/rt"}
    got = sub.wait_for(lambda ms: topics <= {m.topic for m in ms})
    gas = bodies(got, "vendor/gasdet/GD-1/up")[0]
    assert gas["sn"] == "GD-1"
    assert isinstance(gas["ts"], int)
    assert abs(gas["ts"] / 1000 - time.time()) < 10
    assert isinstance(gas["data"], dict)
    assert set(gas["data"]) == {"lel", "alarm", "battery"}
    fire = bodies(got, "vendor/firepanel/FP-1/event")[0]
    assert fire["state"] == "NORMAL"
    assert str(fire["time"]).endswith("+08:00")
    noise = bodies(got, "vendor/noise/noise-1/rt")[0]
    assert set(noise) == {"t", "v"}


def test_leak_and_fire_are_published_at_once(fleet: tuple[SensorFleet, LoopThread, Subscriber]) -> None:
    sensors, thread, sub = fleet
    sub.wait_for(lambda ms: any(m.topic == "vendor/firepanel/FP-1/event" for m in ms))
    thread.call(lambda: sensors.trip("fire-1"))
    thread.call(lambda: sensors.leak("gas-1", 70, rise_s=1))
    got = sub.wait_for(lambda ms: any(b["state"] == "FIRE" for b in bodies(ms, "vendor/firepanel/FP-1/event")), 3)
    assert len(bodies(got, "vendor/firepanel/FP-1/event")) == 2  # heartbeat 30 s: the FIRE came on the change
    sub.wait_for(lambda ms: any(b["data"]["alarm"] != "normal" for b in bodies(ms, "vendor/gasdet/GD-1/up")), 5)  # type: ignore[index]


def test_fault_and_silence(fleet: tuple[SensorFleet, LoopThread, Subscriber]) -> None:
    sensors, thread, sub = fleet
    thread.call(lambda: sensors.fault("gas-1"))
    sub.wait_for(lambda ms: any(b["data"]["alarm"] == "fault" for b in bodies(ms, "vendor/gasdet/GD-1/up")))  # type: ignore[index]
    thread.call(lambda: sensors.silence("noise-1"))
    time.sleep(0.3)  # integration test: let a message already on its way arrive
    before = len(bodies(sub.snapshot(), "vendor/noise/noise-1/rt"))
    sub.wait_for(lambda ms: len(bodies(ms, "vendor/gasdet/GD-1/up")) >= 8)  # time passes: gas keeps publishing
    assert len(bodies(sub.snapshot(), "vendor/noise/noise-1/rt")) == before


def test_sensors_are_heard_again_after_the_broker_restarts(mosquitto: Mosquitto) -> None:
    sensors = fleet_of(mosquitto)
    thread = LoopThread(sensors.run)
    try:
        sub = Subscriber(mosquitto, "vendor/noise/#")
        sub.wait_for(lambda ms: len(ms) >= 2)
        sub.close()
        mosquitto.restart()
        sub = Subscriber(mosquitto, "vendor/noise/#")
        sub.wait_for(lambda ms: len(ms) >= 2, timeout=10)
        sub.close()
    finally:
        thread.stop()


def test_mini_district_serves_its_sites(mosquitto: Mosquitto, tmp_path: Path) -> None:
    holder: list[District] = []

    async def main(stop: asyncio.Event) -> None:
        sim = client_account(mosquitto, "sim")
        async with District(load_scenario("mini"), mosquitto.host, mosquitto.port, sensor_credentials=sim) as district:
            district.write_site_configs(tmp_path / "sites")
            holder.append(district)
            await stop.wait()

    sub = Subscriber(mosquitto, "vendor/#")
    thread = LoopThread(main)
    try:
        sub.wait_for(lambda ms: {m.topic.split("/")[2] for m in ms} >= {"GD-MINI-1", "FP-MINI-1", "noise-1"})
        sites = {p.stem: load_site(p) for p in sorted((tmp_path / "sites").glob("*.yaml"))}
        assert set(sites) == {"mini-water", "mini-safety"}
        safety = {d.id: d for d in sites["mini-safety"].config.devices}
        assert safety["gas-1"].vendor_id == "GD-MINI-1"
        assert safety["noise-1"].source_id is None
        gate = next(d for d in sites["mini-water"].config.devices if d.id == "gate-1")
        assert sites["mini-water"].config.broker.port == mosquitto.port

        async def read_gate() -> tuple[int, int]:
            client = AsyncModbusTcpClient(gate.host or "", port=gate.port, timeout=1, retries=0)
            await client.connect()
            rr = await client.read_holding_registers(0, count=6, device_id=gate.unit_id)
            client.close()
            return len(rr.registers), rr.exception_code

        assert asyncio.run(read_gate()) == (6, 0)
        district = holder[0]
        thread.call(lambda: district.modbus["gate-1"].exception(4))
        deadline = time.monotonic() + 5
        while asyncio.run(read_gate())[1] != 4:
            assert time.monotonic() < deadline, "the exception did not take"
        thread.call(lambda: district.sensors.leak("gas-1", 80, rise_s=1))
        sub.wait_for(lambda ms: any(b["data"]["alarm"] == "high" for b in bodies(ms, "vendor/gasdet/GD-MINI-1/up")))  # type: ignore[index]
    finally:
        thread.stop()
        sub.close()


def test_run_district_writes_configs_and_stops_cleanly(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sim = client_account(mosquitto, "sim")
    thread = LoopThread(
        lambda stop: run_district(
            load_scenario("mini"), mosquitto.host, mosquitto.port, stop, sites, sensor_credentials=sim
        )
    )
    deadline = time.monotonic() + 5
    while len(list(sites.glob("*.yaml"))) < 2:
        assert time.monotonic() < deadline, "no site configs written"
        time.sleep(0.02)
    thread.stop()  # raises whatever the district raised on the way out
    assert sorted(p.name for p in sites.iterdir()) == ["mini-safety.yaml", "mini-water.yaml"]


def test_baoshan_district_starts_and_its_site_configs_load(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async def main() -> dict[str, int]:
        sim = client_account(mosquitto, "sim")
        baoshan = load_scenario("baoshan")
        async with District(baoshan, mosquitto.host, mosquitto.port, sensor_credentials=sim) as district:
            paths = district.write_site_configs(tmp_path)
            assert len(district.modbus) == 18  # 8 gates, 4 water, 3 air, 3 CEMS
            assert len({d.port for d in district.modbus.values()}) == 18
            return {site: len(load_site(path).config.devices) for site, path in paths.items()}

    counts = asyncio.run(main())
    assert counts["yunzaobang-sluices"] == counts["lianqi-sluices"] == 4
    assert counts["env-monitoring"] == 11
    assert counts["emission-sources"] == 3
    assert 60 <= counts["work-safety"] <= 120
