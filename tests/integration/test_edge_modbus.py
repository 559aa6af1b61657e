"""Simulator → edge agent → Mosquitto → a test subscriber, for every shipped profile and the failure cases."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from device_profiles import DataType, load_catalogue
from simulators import District
from telemetry import Quality, Sample, Telemetry, decode_status, decode_telemetry, topics
from testing import Mosquitto
from tests.helpers import Received, Subscriber
from tests.integration.conftest import RunningAgent, RunningDistrict, StartAgent

pytestmark = pytest.mark.integration
CAT = load_catalogue()


def telemetry(messages: list[Received], site: str, device: str) -> list[Telemetry]:
    topic = topics.telemetry(site, device)
    return [decode_telemetry(m.payload) for m in messages if m.topic == topic]


def samples_where(
    sub: Subscriber, site: str, device: str, pred: Callable[[Sample], bool], timeout: float = 10
) -> list[Sample]:
    got = sub.wait_for(lambda ms: any(pred(s) for t in telemetry(ms, site, device) for s in t.samples), timeout=timeout)
    return [s for t in telemetry(got, site, device) for s in t.samples if pred(s)]


FORCED: dict[str, dict[str, float | int | bool | str]] = {
    "sluice_gate_plc": {
        "gate_opening": 2.345,
        "level_up": -0.57,
        "level_down": 3.21,
        "motor_current": 18.4,
        "fault_code": 0,
        "remote_mode": True,
        "estop": False,
        "power_ok": True,
        "flow": -12.5,
        "target_opening": 2.5,
        "limit_open": False,
        "limit_closed": False,
    },
    "water_quality_station": {
        "ph": 7.42,
        "do": 6.15,
        "codmn": 4.8,
        "cod": 18.5,
        "nh3_n": 0.87,
        "tp": 0.18,
        "tn": 2.9,
        "turbidity": 23.0,
        "conductivity": 812.0,
        "water_temp": 17.25,
    },
    "air_quality_station": {
        "pm25": 48,
        "pm10": 77,
        "so2": 9,
        "no2": 41,
        "o3": 88,
        "co": 0.73,
        "temperature": -3.4,
        "humidity": 64.5,
        "wind_speed": 2.7,
        "wind_dir": 135,
        "pressure": 1016.25,
        "uptime": 123456,
        "station_code": "MINI1",
    },
    "flue_gas_cems": {
        "so2": 21.5,
        "nox": 38.25,
        "dust": 3.5,
        "o2": 6.5,
        "flue_flow": 155.5,
        "flue_temp": 95.5,
        "flue_humidity": 11.5,
        "flue_pressure": -0.75,
        "flue_velocity": 14.25,
        "flow_total": 9_876_543_210,
        "unit_load": 87.125,
        "maintenance": False,
    },  # the simulated CEMS calibrates at night: not during this test
}
DEVICES = {
    "sluice_gate_plc": "gate-1",
    "water_quality_station": "wq-1",
    "air_quality_station": "air-1",
    "flue_gas_cems": "cems-1",
}


def close(a: object, b: object, tol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=tol)
    return a == b


@pytest.mark.parametrize("profile", sorted(FORCED))
def test_modbus_profile_end_to_end(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent, profile: str
) -> None:
    device = DEVICES[profile]
    forced = FORCED[profile]
    assert mini.district is not None
    sim = mini.district.modbus[device]

    def force() -> None:
        for p, v in forced.items():
            sim.set_value(p, v)

    mini.on_loop(force)
    sub = Subscriber(mosquitto, topics.telemetry("mini-water", device))
    before = int(time.time() * 1000)
    start_agent(mini.site_config("mini-water"))
    msgs = sub.wait_for(lambda ms: len(ms) >= 2)
    sub.close()
    msg = decode_telemetry(msgs[-1].payload)
    spec = CAT[profile]
    assert (msg.site, msg.device, msg.profile, msg.measurement) == ("mini-water", device, profile, spec.measurement)
    assert msg.units == spec.units
    assert msg.tags["domain"] == spec.tags["domain"]
    (sample,) = msg.samples
    assert before <= sample.ts <= int(time.time() * 1000)
    assert set(sample.values) == set(spec.point_names())
    points = {p.name: p for p in spec.modbus.points}  # type: ignore[union-attr]
    for name, value in forced.items():
        p = points[name]
        tol = 1e-4 * max(1.0, abs(float(value))) if p.type is DataType.FLOAT32 else abs(p.scale) / 2 + 1e-9
        assert close(sample.values[name], value, tol), (name, sample.values[name], value)
        assert sample.quality_of(name) is Quality.GOOD, (name, sample.quality.get(name))
    assert [decode_telemetry(m.payload).seq for m in msgs] == list(range(1, len(msgs) + 1))


def test_out_of_range_reading_is_uncertain(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    sim = mini.district.modbus["wq-1"]  # type: ignore[union-attr]
    mini.on_loop(lambda: sim.set_value("ph", 15.5))
    sub = Subscriber(mosquitto, topics.telemetry("mini-water", "wq-1"))
    start_agent(mini.site_config("mini-water"))
    (sample, *_) = samples_where(sub, "mini-water", "wq-1", lambda s: s.quality_of("ph") is Quality.UNCERTAIN)
    assert sample.values["ph"] == pytest.approx(15.5)
    assert "outside the range [0, 14]" in sample.quality["ph"].reason
    sub.close()


def test_dead_device_turns_bad_and_recovers(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    site, dev = "mini-water", "air-1"
    sim = mini.district.modbus[dev]  # type: ignore[union-attr]
    sub = Subscriber(mosquitto, f"lifeline/v1/{site}/{dev}/#")
    start_agent(mini.site_config(site))
    samples_where(sub, site, dev, lambda s: s.quality_of("pm25") is Quality.GOOD)
    mini.on_loop(sim.stop_answering)
    (bad, *_) = samples_where(sub, site, dev, lambda s: s.quality_of("pm25") is Quality.BAD)
    assert all(v is None for v in bad.values.values())
    assert "no answer" in bad.quality["pm25"].reason
    sub.wait_for(
        lambda ms: any(m.topic == topics.status(site, dev) and not decode_status(m.payload).online for m in ms)
    )
    mini.on_loop(sim.resume)
    t_resumed = int(time.time() * 1000)
    samples_where(sub, site, dev, lambda s: s.ts >= t_resumed and s.quality_of("pm25") is Quality.GOOD)
    statuses = [decode_status(m.payload) for m in sub.snapshot() if m.topic == topics.status(site, dev)]
    assert [s.online for s in statuses][-2:] == [False, True]
    sub.close()
    late = Subscriber(mosquitto, topics.status(site, dev))  # the status is retained for newcomers
    (retained,) = late.wait_for(lambda ms: len(ms) == 1)
    assert retained.retain
    assert decode_status(retained.payload).online
    late.close()


def test_modbus_exception_marks_only_that_devices_points(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    sim = mini.district.modbus["cems-1"]  # type: ignore[union-attr]
    mini.on_loop(lambda: sim.exception(4))
    sub = Subscriber(mosquitto, topics.telemetry_filter("mini-water"))
    start_agent(mini.site_config("mini-water"))
    (bad, *_) = samples_where(sub, "mini-water", "cems-1", lambda s: s.quality_of("so2") is Quality.BAD)
    assert bad.quality["so2"].reason == "modbus exception 4 (server device failure)"
    samples_where(sub, "mini-water", "wq-1", lambda s: s.quality_of("ph") is Quality.GOOD)
    sub.close()


def test_device_rejecting_large_reads_still_reads_every_point(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    sim = mini.district.modbus["gate-1"]  # type: ignore[union-attr]
    forced = FORCED["sluice_gate_plc"]

    def limit() -> None:
        sim.max_registers = 4
        for p, v in forced.items():
            sim.set_value(p, v)

    mini.on_loop(limit)
    sub = Subscriber(mosquitto, topics.telemetry("mini-water", "gate-1"))
    running: RunningAgent = start_agent(mini.site_config("mini-water"))
    (sample, *_) = samples_where(sub, "mini-water", "gate-1", lambda s: s.quality_of("gate_opening") is Quality.GOOD)
    for name, value in forced.items():
        assert close(sample.values[name], value, 1e-3), name
        assert sample.quality_of(name) is Quality.GOOD
    poller = next(p for p in running.agent.pollers if p.device.id == "gate-1")
    assert max(r.count for r in poller.requests) <= 4  # the rejected block was split for good
    sub.close()


def test_slow_device_does_not_delay_the_others(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    sim = mini.district.modbus["air-1"]  # type: ignore[union-attr]
    mini.on_loop(lambda: sim.slow(0.9))
    running: RunningAgent = start_agent(mini.site_config("mini-water", modbus={"timeout_s": 2.0}), keep_lateness=100)
    time.sleep(4.5)
    stats = running.agent.stats
    assert stats["air-1"].poll_failures == 0
    for fast in ("gate-1", "wq-1", "cems-1"):
        assert stats[fast].polls >= 4, fast
        assert max(stats[fast].lateness_s[1:]) < 0.1, (fast, stats[fast].lateness_s)
    # three reads of 0.9 s each: the slow device overruns its 1 s interval, alone
    assert stats["air-1"].overruns > 0


def test_broker_restart_loses_no_sampled_reading(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: StartAgent
) -> None:
    site = "mini-water"
    sub = Subscriber(mosquitto, topics.telemetry_filter(site), client_id="restart-watcher", persistent=True)
    running: RunningAgent = start_agent(mini.site_config(site))
    sub.wait_for(lambda ms: len(telemetry(ms, site, "wq-1")) >= 2)
    mosquitto.stop()
    time.sleep(2.5)  # the agent keeps polling while the broker is away
    assert len(running.agent.outbox) >= 4  # readings held (queued, or sent and unacknowledged)
    assert not running.agent.uplink.connected
    mosquitto.start()
    time.sleep(2.0)  # more polls after the broker is back
    deadline = time.monotonic() + 20
    while running.agent.outbox.unacked and time.monotonic() < deadline:  # sent; no bridge here confirms
        time.sleep(0.05)
    running.stop()
    assert running.agent.outbox.stats.dropped == 0
    sampled = {d: running.agent.seq[d] for d in ("gate-1", "wq-1", "air-1", "cems-1")}
    for device, last_seq in sampled.items():

        def every_seq(ms: list[Received], d: str = device, n: int = last_seq) -> bool:
            return {t.seq for t in telemetry(ms, site, d)} >= set(range(1, n + 1))

        got = sub.wait_for(every_seq, timeout=15)
        seqs = sorted({t.seq for t in telemetry(got, site, device)})
        assert seqs == list(range(1, last_seq + 1)), device
        times = sorted({s.ts for t in telemetry(got, site, device) for s in t.samples})
        assert len(times) == last_seq  # one sample per message, every sample time distinct
    sub.close()


def test_every_scenario_device_publishes(mosquitto: Mosquitto, start_agent: StartAgent) -> None:
    district = RunningDistrict(mosquitto, "mini")
    try:
        assert district.district is not None
        d: District = district.district
        sub = Subscriber(mosquitto, topics.telemetry_filter())
        for site in d.sites:
            start_agent(district.site_config(site))
        expected = {(p.site, p.id) for p in d.planned}
        got = sub.wait_for(
            lambda ms: {(decode_telemetry(m.payload).site, decode_telemetry(m.payload).device) for m in ms} >= expected,
            timeout=15,
        )
        assert {(decode_telemetry(m.payload).site, decode_telemetry(m.payload).device) for m in got} >= expected
        sub.close()
    finally:
        district.stop()


def _gas(body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
    alarm = {"normal": 0, "low": 1, "high": 2, "fault": 3}[body["data"]["alarm"]]
    return body["ts"], {"lel": body["data"]["lel"], "alarm_level": alarm, "battery": body["data"]["battery"]}


def _fire(body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
    from datetime import datetime

    ts = int(datetime.fromisoformat(body["time"]).timestamp() * 1000)
    state = body["state"]
    return ts, {
        "fire_alarm": state == "FIRE",
        "detector_fault": state == "FAULT",
        "smoke_density": body["readings"]["smoke"],
        "temperature": body["readings"]["temp"],
    }


def _noise(body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
    return int(body["t"] * 1000), {"noise_laeq": body["v"]["laeq"], "noise_lmax": body["v"]["lmax"]}


@pytest.mark.parametrize(
    ("profile", "device", "vendor_topic", "expect"),
    [
        ("gas_detector", "gas-1", "vendor/gasdet/GD-MINI-1/up", _gas),
        ("fire_detector", "fire-1", "vendor/firepanel/FP-MINI-1/event", _fire),
        ("noise_meter", "noise-1", "vendor/noise/noise-1/rt", _noise),
    ],
)
def test_mqtt_profile_end_to_end(
    mini: RunningDistrict,
    mosquitto: Mosquitto,
    start_agent: StartAgent,
    profile: str,
    device: str,
    vendor_topic: str,
    expect: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]],
) -> None:
    import orjson

    vendor = Subscriber(mosquitto, vendor_topic)
    sub = Subscriber(mosquitto, topics.telemetry("mini-safety", device))
    start_agent(mini.site_config("mini-safety"))
    if profile == "fire_detector":  # make the panel speak now rather than at its next heartbeat
        mini.on_loop(lambda: mini.district.sensors.trip(device))  # type: ignore[union-attr]
    got = sub.wait_for(lambda ms: len(ms) >= 1, timeout=15)
    msg = decode_telemetry(got[0].payload)
    (sample,) = msg.samples
    sent = {expect(orjson.loads(m.payload))[0]: expect(orjson.loads(m.payload))[1] for m in vendor.snapshot()}
    assert sample.ts in sent, (sample.ts, sorted(sent))
    assert sample.values == sent[sample.ts]
    assert all(sample.quality_of(p) is Quality.GOOD for p in sample.values), sample.quality
    assert msg.units == CAT[profile].units
    assert (msg.profile, msg.measurement) == (profile, CAT[profile].measurement)
    vendor.close()
    sub.close()
