"""Simulator behaviours, register images, vendor JSON and scenarios: pure code, time moved by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from device_profiles import Function, Profile, decode_point, encode_point, load_catalogue
from edge_agent.vendor_json import decode_message
from infra.config_loader import ConfigError
from simulators import BEHAVIOURS, SluiceGate, load_scenario, make_behaviour, plan, vendor_messages
from simulators.behaviours import Behaviour, FireDetector, GasDetector, Value, WaterQualityStation
from simulators.behaviours.sluice_gate_plc import FAULT_ESTOP, FAULT_OVERLOAD, M2_PERIOD_S, GateParams
from simulators.modbus import RegisterMap
from simulators.modbus._overrides import Overrides, Spike

CATALOGUE = load_catalogue()
CHINA = timezone(timedelta(hours=8))
DAY0 = datetime(2026, 6, 15, tzinfo=CHINA).timestamp()  # midnight in Shanghai


def at(hour: float, day: int = 0) -> float:
    return DAY0 + day * 86400 + hour * 3600


def run(b: Behaviour, start: float, seconds: float, step: float = 1.0) -> dict[str, Value]:
    t = start
    values = b.step(t)
    while t < start + seconds:
        t = min(t + step, start + seconds)
        values = b.step(t)
    return values


# -- every behaviour: all points, inside the profile's range, encodable, deterministic ------------------------------
@pytest.mark.parametrize("profile", sorted(BEHAVIOURS))
@pytest.mark.parametrize("seed", [1, 2, 99])
def test_every_point_inside_its_range_for_two_days(profile: str, seed: int) -> None:
    prof = CATALOGUE[profile]
    points = prof.modbus.points if prof.modbus else prof.mqtt.points if prof.mqtt else []
    b = make_behaviour(profile, seed)
    for i in range(2 * 24 * 6):  # every 10 min for two days
        values = b.step(at(0) + i * 600)
        assert set(values) == set(prof.measured_names())  # derived points are computed at the edge
        for p in points:
            value = values[p.name]
            if p.range is not None and not isinstance(value, bool | str):
                assert p.range[0] <= value <= p.range[1], (p.name, value)
            if prof.modbus is not None:
                encode_point(p, value)  # type: ignore[arg-type]  # fits its data type


@pytest.mark.parametrize("profile", sorted(BEHAVIOURS))
def test_same_seed_same_values_other_seed_other_values(profile: str) -> None:
    times = [at(9) + 7.0 * i for i in range(50)]
    a, b, c = (make_behaviour(profile, s) for s in (5, 5, 6))
    va = [a.step(t) for t in times]
    assert va == [b.step(t) for t in times]
    assert va != [c.step(t) for t in times]


def test_unknown_profile_and_bad_parameter_are_refused() -> None:
    with pytest.raises(KeyError, match="no behaviour"):
        make_behaviour("nope", 1)
    with pytest.raises(ValueError, match="speed_m_s"):
        make_behaviour("sluice_gate_plc", 1, {"speed_m_s": -1})


# -- sluice gate -----------------------------------------------------------------------------------------------
def gate(**params: object) -> tuple[SluiceGate, float]:
    g = SluiceGate(3, GateParams.model_validate(params))
    t = at(10)
    g.step(t)
    return g, t


@pytest.mark.parametrize(
    ("start", "target", "command", "after_s", "opening", "moving"),
    [
        pytest.param(0.0, 1.0, "cmd_open", 100, 0.5, True, id="opens-at-5-mm-per-s"),
        pytest.param(0.0, 1.0, "cmd_open", 300, 1.0, False, id="stops-at-target"),
        pytest.param(3.0, 1.0, "cmd_close", 200, 2.0, True, id="closes-toward-target"),
        pytest.param(3.0, 1.0, "cmd_close", 1000, 1.0, False, id="closes-and-stops-at-target"),
        pytest.param(5.0, 2.0, "cmd_open", 150, 5.75, True, id="open-below-target-drives-to-full-open"),
        pytest.param(5.0, 2.0, "cmd_open", 400, 6.0, False, id="full-open-stops-at-limit"),
        pytest.param(0.5, 2.0, "cmd_close", 400, 0.0, False, id="close-above-target-drives-to-closed"),
    ],
)
def test_gate_moves_at_finite_speed_toward_target(
    start: float, target: float, command: str, after_s: float, opening: float, moving: bool
) -> None:
    g, t = gate(initial_opening_m=start)
    assert g.write("target_opening", target, t)
    assert g.write(command, True, t)
    values = run(g, t, after_s)
    assert values["gate_opening"] == pytest.approx(opening, abs=0.002)
    assert (values["moving_open"] or values["moving_close"]) is moving
    current = values["motor_current"]
    assert isinstance(current, float)
    assert 15 <= current <= 25 if moving else current < 1
    assert values["limit_open"] is (opening >= 6.0)
    assert values["limit_closed"] is (opening <= 0.0)


@pytest.mark.parametrize(
    ("prepare", "command"),
    [
        pytest.param(lambda g: g.set_remote(False), "cmd_open", id="local-mode"),
        pytest.param(lambda g: g.trip(FAULT_OVERLOAD), "cmd_open", id="overload-fault"),
        pytest.param(lambda g: g.press_estop(), "cmd_open", id="emergency-stop"),
        pytest.param(lambda g: g.set_power(False), "cmd_open", id="power-lost"),
        pytest.param(lambda g: None, "cmd_close", id="already-closed"),
    ],
)
def test_gate_ignores_refused_commands(prepare: object, command: str) -> None:
    g, t = gate()
    prepare(g)  # type: ignore[operator]
    g.write("target_opening", 2.0, t)
    assert g.write(command, True, t) is False
    values = run(g, t, 60)
    assert values["gate_opening"] == 0.0
    assert not values["moving_open"]
    assert g.refused == 1


def test_gate_fault_stops_motion_and_reset_allows_a_new_run() -> None:
    g, t = gate()
    g.write("target_opening", 3.0, t)
    g.write("cmd_open", True, t)
    run(g, t, 100)
    g.trip(FAULT_OVERLOAD)
    values = run(g, t + 100, 100)
    assert values["gate_opening"] == pytest.approx(0.5, abs=0.002)
    assert values["fault_code"] == FAULT_OVERLOAD
    assert values["overload"] is True
    assert values["moving_open"] is False
    assert g.write("cmd_fault_reset", True, t + 200)
    assert g.write("cmd_open", True, t + 200)
    assert run(g, t + 200, 100)["gate_opening"] == pytest.approx(1.0, abs=0.002)


def test_gate_estop_needs_release_before_reset() -> None:
    g, t = gate()
    g.press_estop()
    assert g.step(t)["fault_code"] == FAULT_ESTOP
    assert g.write("cmd_fault_reset", True, t) is False
    g.release_estop()
    assert g.write("cmd_fault_reset", True, t) is True
    assert g.step(t)["fault_code"] == 0


def test_gate_stop_and_no_reversal_under_load() -> None:
    g, t = gate(initial_opening_m=2.0)
    g.write("target_opening", 4.0, t)
    g.write("cmd_open", True, t)
    run(g, t, 50)
    g.write("target_opening", 0.0, t + 50)
    assert g.write("cmd_close", True, t + 50) is False  # stop first
    assert g.write("cmd_stop", True, t + 50) is True
    values = run(g, t + 50, 50)
    assert values["gate_opening"] == pytest.approx(2.25, abs=0.002)
    assert not values["moving_open"]
    assert g.write("cmd_close", True, t + 100) is True


def test_gate_levels_follow_the_tide_and_flow_follows_the_head() -> None:
    g, t = gate(tide_amplitude_m=1.5, initial_opening_m=1.0)
    assert g.outer_level(t) == pytest.approx(g.outer_level(t + M2_PERIOD_S), abs=1e-9)
    highs = [g.outer_level(t + i * 600) for i in range(75)]  # a tidal cycle
    assert max(highs) - min(highs) == pytest.approx(3.0, abs=0.05)
    assert g.orifice_flow(3.0, 2.0) > 0 > g.orifice_flow(2.0, 3.0)
    assert g.orifice_flow(3.0, 2.0) == pytest.approx(0.6 * 8 * 1.0 * (2 * 9.81) ** 0.5, rel=1e-6)
    before = g.inner
    g.outer_level = lambda now: 4.0  # type: ignore[method-assign]  # a high outer level for an hour
    run(g, t, 3600, step=10)
    assert g.inner > before + 0.1


@pytest.mark.parametrize(
    ("flood_side", "tidal", "inner"),
    [
        pytest.param("upstream", "level_up", "level_down", id="tide-above-the-sluice"),
        pytest.param("downstream", "level_down", "level_up", id="river-mouth-gate-tide-below"),
    ],
)
def test_gate_flood_side_puts_the_tide_on_its_level(flood_side: str, tidal: str, inner: str) -> None:
    g, t = gate(flood_side=flood_side, initial_opening_m=1.0)
    g.outer_level = lambda now: 4.0  # type: ignore[method-assign]  # high tide outside, the gate open
    values = run(g, t, 3600, step=10)
    assert values[tidal] == pytest.approx(4.0, abs=0.03)
    assert 2.7 < float(values[inner]) < 4.0  # the tide flows in through the open gate
    assert (float(values["flow"]) > 0) == (flood_side == "upstream")  # positive: from above to below the sluice


def test_gate_rain_raises_the_inner_river() -> None:
    g, t = gate()
    dry = [g.inner_level(t + h * 3600) for h in (1, 3, 30)]
    g.rain(t, rise_m=0.6, hours=6)
    wet = [g.inner_level(t + h * 3600) for h in (1, 3, 30)]
    assert wet[0] - dry[0] == pytest.approx(0.6)  # the peak, an hour in
    assert 0.1 < wet[1] - dry[1] < 0.6  # draining
    assert wet[2] == pytest.approx(dry[2])  # gone


# -- daily cycles -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "point", "high_hour", "low_hour"),
    [
        pytest.param("water_quality_station", "do", 15, 3, id="do-afternoon"),
        pytest.param("water_quality_station", "ph", 15, 3, id="ph-afternoon"),
        pytest.param("water_quality_station", "water_temp", 16.5, 4.5, id="water-temp-afternoon"),
        pytest.param("air_quality_station", "o3", 14.5, 3, id="o3-afternoon"),
        pytest.param("air_quality_station", "no2", 8, 3, id="no2-morning-rush"),
        pytest.param("air_quality_station", "pm25", 8, 3, id="pm25-morning-rush"),
        pytest.param("air_quality_station", "temperature", 14.5, 4, id="air-temp-afternoon"),
        pytest.param("flue_gas_cems", "unit_load", 12, 3, id="load-day"),
        pytest.param("flue_gas_cems", "o2", 3, 12, id="o2-higher-at-low-load"),
        pytest.param("noise_meter", "noise_laeq", 12, 2, id="noise-day"),
    ],
)
def test_daily_cycle_peaks_at_the_expected_hour(profile: str, point: str, high_hour: float, low_hour: float) -> None:
    def mean_at(hour: float) -> float:
        total = 0.0
        for seed in range(8):
            b = make_behaviour(profile, seed, {"events_per_day": 0} if profile == "water_quality_station" else {})
            value = b.step(at(hour))[point]
            assert isinstance(value, int | float)
            total += value
        return total / 8

    assert mean_at(high_hour) > mean_at(low_hour)


def test_noise_levels_by_day_and_night() -> None:
    b = make_behaviour("noise_meter", 4)
    day = [float(b.step(at(10) + i)["noise_laeq"]) for i in range(200)]
    night = [float(b.step(at(2, day=1) + i)["noise_laeq"]) for i in range(200)]
    assert 55 <= sum(day) / len(day) <= 65
    assert 45 <= sum(night) / len(night) <= 50
    values = b.step(at(3, day=1))
    assert values["noise_lmax"] > values["noise_laeq"]  # type: ignore[operator]


def test_cems_flow_total_accumulates_and_calibration_sets_maintenance() -> None:
    b = make_behaviour("flue_gas_cems", 1)
    first = b.step(at(2, 0))
    later = b.step(at(2, 0) + 600)
    assert 0 < later["flow_total"] - first["flow_total"] < 600 * 1000  # type: ignore[operator]
    assert b.step(at(3.1))["maintenance"] is True
    assert b.step(at(3.5))["maintenance"] is False


def test_water_pollution_event_rises_and_decays() -> None:
    b = WaterQualityStation(1)
    base = b.step(at(10))
    b.pollute(at(10), severity=1.0, hours=3)
    peak = b.step(at(10.5))
    gone = b.step(at(20))
    assert peak["cod"] > base["cod"] + 30  # type: ignore[operator]
    assert peak["nh3_n"] > 2.0 > base["nh3_n"]  # type: ignore[operator]
    assert peak["do"] < base["do"]  # type: ignore[operator]
    assert gone["cod"] < base["cod"] + 3  # type: ignore[operator]


# -- gas and fire detectors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peak", "after_s", "alarm"),
    [
        pytest.param(60, 0, 0, id="starts-normal"),
        pytest.param(60, 30, 1, id="low-on-the-way-up"),
        pytest.param(60, 90, 2, id="high-at-peak"),
        pytest.param(35, 120, 1, id="low-peak-stays-low"),
        pytest.param(60, 3600, 0, id="dispersed"),
    ],
)
def test_gas_leak_alarm_levels(peak: float, after_s: float, alarm: int) -> None:
    b = GasDetector(2)
    b.step(at(9))
    b.leak(at(9), peak)
    assert b.step(at(9) + after_s)["alarm_level"] == alarm


def test_gas_fault_and_battery_drain() -> None:
    b = GasDetector(2)
    start = b.step(at(0))["battery"]
    assert b.step(at(0, day=10))["battery"] == pytest.approx(start - 4.0, abs=0.11)  # type: ignore[operator]
    b.set_fault(True)
    assert b.step(at(0, day=10))["alarm_level"] == 3


def test_fire_trip_latches_and_fault_wins() -> None:
    b = FireDetector(2)
    assert b.step(at(1))["fire_alarm"] is False
    b.trip(at(1))
    values = b.step(at(1) + 60)
    assert values["fire_alarm"] is True
    assert values["smoke_density"] > 0.5  # type: ignore[operator]
    assert b.step(at(5))["fire_alarm"] is True  # latched until reset
    b.set_fault(True)
    assert b.step(at(5))["detector_fault"] is True
    b.reset()
    assert b.step(at(6))["fire_alarm"] is False


# -- register image -----------------------------------------------------------------------------------------------
MODBUS_PROFILES = sorted(n for n, p in CATALOGUE.items() if p.modbus is not None and n in BEHAVIOURS)


@pytest.mark.parametrize("profile", MODBUS_PROFILES)
def test_register_image_decodes_to_the_values(profile: str) -> None:
    prof = CATALOGUE[profile]
    assert prof.modbus is not None
    rmap = RegisterMap(prof.modbus)
    values = make_behaviour(profile, 8).step(at(9))
    image = rmap.encode(values)
    for p in prof.modbus.points:
        words = rmap.read(image, p.function, p.address, p.count)
        assert words is not None
        got = decode_point(p, words)
        want = values[p.name]
        assert got == (pytest.approx(want, rel=1e-6, abs=p.scale) if isinstance(want, float) else want), p.name


def test_register_map_blocks_and_shared_status_word() -> None:
    prof = CATALOGUE["sluice_gate_plc"]
    assert prof.modbus is not None
    rmap = RegisterMap(prof.modbus)
    assert [(b.start, b.end) for b in rmap.blocks[Function.HOLDING_REGISTER]] == [(0, 21)]
    values = {**make_behaviour("sluice_gate_plc", 1).step(at(1)), "remote_mode": True, "estop": True}
    image = rmap.encode(values)
    assert rmap.read(image, Function.HOLDING_REGISTER, 5, 1) == [0b11001]  # remote, estop, power_ok
    assert rmap.read(image, Function.HOLDING_REGISTER, 6, 4) == [0, 0, 0, 0]  # unmapped inside the block
    assert rmap.read(image, Function.HOLDING_REGISTER, 20, 3) is None  # runs past the block
    assert rmap.read(image, Function.INPUT_REGISTER, 0, 1) is None  # no input registers at all


def test_register_map_decodes_writes_and_refuses_read_only_points() -> None:
    prof = CATALOGUE["sluice_gate_plc"]
    assert prof.modbus is not None
    rmap = RegisterMap(prof.modbus)
    image = rmap.encode(make_behaviour("sluice_gate_plc", 1).step(at(1)))
    [(point, value)] = rmap.decode_write(image, Function.HOLDING_REGISTER, 10, [2500])
    assert point.name == "target_opening"
    assert value == pytest.approx(2.5)
    assert [p.name for p, _ in rmap.decode_write(image, Function.COIL, 0, [True, False])] == ["cmd_open", "cmd_close"]
    with pytest.raises(ValueError, match="no writable point"):
        rmap.decode_write(image, Function.HOLDING_REGISTER, 0, [1])


def test_overrides_forced_stuck_and_spikes() -> None:
    o = Overrides()
    o.forced["a"] = 1
    o.stuck["b"] = 2
    o.spikes["c"] = Spike(99, reads_left=2)
    assert o.apply({"a": 0, "b": 0, "c": 0, "d": 0}) == {"a": 1, "b": 2, "c": 99, "d": 0}
    assert o.count_reads(["c"]) is False
    assert o.count_reads(["c", "d"]) is True
    assert "c" not in o.spikes
    o.clear("a")
    assert o.apply({"a": 0, "b": 0}) == {"a": 0, "b": 2}
    o.clear()
    assert not o


# -- vendor JSON ------------------------------------------------------------------------------------------------------
MQTT_PROFILES = sorted(n for n, p in CATALOGUE.items() if p.mqtt is not None and n in BEHAVIOURS)


@pytest.mark.parametrize(
    ("profile", "shape"),
    [
        pytest.param("gas_detector", {"sn", "ts", "data"}, id="gas"),
        pytest.param("fire_detector", {"deviceId", "time", "state", "readings"}, id="fire"),
        pytest.param("noise_meter", {"t", "v"}, id="noise"),
    ],
)
def test_vendor_json_shape(profile: str, shape: set[str]) -> None:
    values = make_behaviour(profile, 1).step(at(9))
    [(topic, payload)] = vendor_messages(CATALOGUE[profile], "DEV-9", values, at(9) + 0.25)
    body = orjson.loads(payload)
    assert set(body) == shape
    assert "DEV-9" in topic
    if profile == "gas_detector":
        assert body["ts"] == int((at(9) + 0.25) * 1000)
        assert body["data"]["alarm"] == "normal"
    if profile == "fire_detector":
        assert body["time"].endswith("+08:00")
        assert body["state"] == "NORMAL"
    if profile == "noise_meter":
        assert body["t"] == int(at(9))


@pytest.mark.parametrize("profile", MQTT_PROFILES)
@pytest.mark.parametrize("event", ["none", "alarm", "fault"])
def test_vendor_json_decodes_back_to_the_values(profile: str, event: str) -> None:
    b = make_behaviour(profile, 1)
    if event == "alarm" and isinstance(b, GasDetector):
        b.leak(at(9) - 120, 70)
    if event == "alarm" and isinstance(b, FireDetector):
        b.trip(at(9) - 60)
    if event == "fault" and isinstance(b, GasDetector | FireDetector):
        b.set_fault(True)
    values = b.step(at(9))
    prof: Profile = CATALOGUE[profile]
    assert prof.mqtt is not None
    [(_, payload)] = vendor_messages(prof, "x", values, at(9))
    sample = decode_message(prof.mqtt.points, prof.mqtt.timestamp, payload, received_ms=0)
    assert sample.values == pytest.approx(values)
    assert abs(sample.ts - at(9) * 1000) < 1000


# -- scenarios ----------------------------------------------------------------------------------------------------
def test_baoshan_scenario_has_the_district() -> None:
    devices = plan(load_scenario("baoshan"))
    by_site: dict[str, list[str]] = {}
    for d in devices:
        by_site.setdefault(d.site, []).append(d.id)
    sites = ("yunzaobang-sluices", "lianqi-sluices", "env-monitoring", "emission-sources")
    assert [len(by_site[s]) for s in sites] == [4, 4, 11, 3]
    safety = by_site["work-safety"]
    assert sum(i.endswith("-fire") for i in safety) == 30
    gas = [i for i in safety if "-gas-" in i]
    assert 30 <= len(gas) <= 90
    assert "ent017-fire" in safety
    assert "ent017-gas-1" in safety
    assert plan(load_scenario("baoshan")) == devices  # deterministic from the seed


def test_mini_scenario_has_one_device_of_each_profile() -> None:
    devices = plan(load_scenario("mini"))
    # but the toxic-gas and oxygen detectors (tests pin mini's device lists; baoshan's chemical enterprises have them)
    later = {"toxic_gas_detector", "oxygen_detector"}
    assert sorted(d.profile.name for d in devices) == sorted(set(BEHAVIOURS) - later)
    assert len({d.site for d in devices}) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "name: t\nsites:\n  - site: s\n    devices:\n      - {id: g, profile: sluice_gate_plc,\n"
            "         params: {speed: 1}}\n",
            r"t\.yaml:6: device 'g', field params\.speed: Extra inputs are not permitted",
            id="unknown-param",
        ),
        pytest.param(
            "name: t\nsites:\n  - site: s\n    devices:\n      - {id: g, profile: nope}\n",
            r"t\.yaml:5: device 'g', field profile: no simulator for 'nope'",
            id="unknown-profile",
        ),
        pytest.param(
            "name: t\nsites:\n  - site: s\n    devices:\n      - {id: G, profile: noise_meter}\n",
            r"t\.yaml:5: scenario, field sites\[0\]\.devices\[0\] \(G\)\.id: String should match",
            id="bad-id",
        ),
        pytest.param(
            "name: t\nsites:\n  - site: s\n    devices:\n      - {id: a, profile: noise_meter}\n"
            "      - {id: a, profile: noise_meter}\n",
            r"device id 'a' \(site s\) is used twice",
            id="duplicate-id",
        ),
    ],
)
def test_scenario_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)


def test_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: baoshan, mini"):
        load_scenario("atlantis")
