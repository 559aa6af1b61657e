"""Derived points at the edge: O2 correction to the source's reference O2 (shared standards/emissions.md
"Reference oxygen and correction"), standard-dry flow and loads, maintenance flags, and the quality of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles import load_catalogue, load_profiles
from device_profiles.derive import (
    MAINTENANCE,
    NotDerived,
    derive,
    is_maintenance,
    o2_corrected,
    settings_problems,
    standard_dry_flow_m3_h,
)
from edge_agent.config import EdgeConfig, build_site
from edge_agent.decode import with_derived
from infra.config_loader import ConfigError
from telemetry import PointQuality, Quality, Value

CEMS = load_catalogue()["flue_gas_cems"]
COAL = {"o2_ref": "6"}
SINTER = {"o2_ref": "16"}


def sample(**over: Value) -> dict[str, Value]:
    base: dict[str, Value] = {
        "so2": 20.0,
        "nox": 43.0,
        "dust": 4.0,
        "o2": 8.2,
        "flue_flow": 200.0,
        "flue_temp": 110.0,
        "flue_humidity": 10.0,
        "flue_pressure": -0.5,
        "flue_velocity": 9.0,
        "flow_total": 1000,
        "unit_load": 60.0,
        "maintenance": False,
    }
    base.update(over)
    return base


# C_ref = C × (21 − O2_ref) / (21 − O2)
@pytest.mark.parametrize(
    ("c", "o2", "ref", "expected"),
    [
        pytest.param(43.0, 8.2, 6.0, 50.3906, id="coal-night-43-at-8.2-is-50.4"),
        pytest.param(50.0, 6.0, 6.0, 50.0, id="at-reference-unchanged"),
        pytest.param(40.0, 3.0, 6.0, 33.3333, id="below-reference-corrected-down"),
        pytest.param(40.0, 17.0, 16.0, 50.0, id="sinter-17-to-16"),
        pytest.param(40.0, 16.0, 16.0, 40.0, id="sinter-at-16"),
        pytest.param(30.0, 15.5, 15.0, 32.7273, id="gas-turbine-15"),
        pytest.param(30.0, 5.0, 3.0, 33.75, id="gas-boiler-3"),
        pytest.param(0.0, 8.0, 6.0, 0.0, id="zero-stays-zero"),
        pytest.param(10.0, 19.99, 6.0, 148.5149, id="just-below-20"),
    ],
)
def test_o2_correction_table(c: float, o2: float, ref: float, expected: float) -> None:
    assert o2_corrected(c, o2, ref) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("o2", "reason"),
    [
        pytest.param(20.0, "O2 20 % >= 20 %: unit off or probe in air, not corrected", id="at-20"),
        pytest.param(20.9, "O2 20.9 % >= 20 %: unit off or probe in air, not corrected", id="near-21"),
        pytest.param(21.0, "O2 21 % >= 20 %: unit off or probe in air, not corrected", id="air"),
        pytest.param(23.0, "O2 23 % >= 20 %: unit off or probe in air, not corrected", id="above-21"),
        pytest.param(-0.1, "O2 -0.1 % is below 0: not corrected", id="negative"),
    ],
)
def test_o2_at_or_near_21_gives_a_bad_corrected_point_with_the_reason(o2: float, reason: str) -> None:
    with pytest.raises(NotDerived, match="^" + reason.replace("(", r"\(").replace(")", r"\)") + "$"):
        o2_corrected(40.0, o2, 6.0)
    values, quality = derive(CEMS, COAL, sample(o2=o2), {})
    assert values["nox_zs"] is None
    assert quality["nox_zs"] == PointQuality(q=Quality.BAD, reason=reason)
    assert values["nox"] == 43.0
    assert "nox" not in quality


def test_coal_unit_at_night_and_sinter_through_the_profile() -> None:
    coal, q1 = derive(CEMS, COAL, sample(), {})
    assert coal["nox_zs"] == pytest.approx(50.39, abs=0.01)
    assert coal["so2_zs"] == pytest.approx(23.44, abs=0.01)
    sinter, q2 = derive(CEMS, SINTER, sample(nox=43.0, o2=16.5), {})
    assert sinter["nox_zs"] == pytest.approx(43.0 * 5 / 4.5, abs=1e-3)
    assert q1 == {}
    assert q2 == {}


@pytest.mark.parametrize(
    ("over", "quality", "expected"),
    [
        pytest.param(
            {"o2": None},
            {"o2": PointQuality(q=Quality.BAD, reason="modbus exception 2")},
            PointQuality(q=Quality.BAD, reason="o2 is bad: modbus exception 2"),
            id="o2-bad",
        ),
        pytest.param(
            {},
            {"o2": PointQuality(q=Quality.UNCERTAIN, reason="26 outside the range [0, 25]")},
            PointQuality(q=Quality.UNCERTAIN, reason="o2 uncertain: 26 outside the range [0, 25]"),
            id="o2-uncertain",
        ),
        pytest.param({"o2": "x"}, {}, PointQuality(q=Quality.BAD, reason="o2 = 'x' is not a number"), id="o2-text"),
    ],
)
def test_corrected_point_quality_follows_its_inputs(
    over: dict[str, Value], quality: dict[str, PointQuality], expected: PointQuality
) -> None:
    values, q = derive(CEMS, COAL, sample(**over), quality)
    assert q["nox_zs"] == expected
    assert (values["nox_zs"] is None) == (expected.q is Quality.BAD)


def test_missing_reference_tag_makes_the_corrected_points_bad_and_says_which_tag() -> None:
    values, quality = derive(CEMS, {}, sample(), {})
    assert values["so2_zs"] is None
    assert quality["so2_zs"].reason == "device has no tag 'o2_ref' (the source's reference O2, %)"
    assert values["so2_load"] is not None  # loads need no reference


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        pytest.param({"o2_ref": "six"}, "tag 'o2_ref' = 'six' is not a number (reference O2, %)", id="text"),
        pytest.param({"o2_ref": "21"}, "tag 'o2_ref' = '21': a reference O2 lies in [0, 21) %", id="21"),
        pytest.param({"o2_ref": "-1"}, "tag 'o2_ref' = '-1': a reference O2 lies in [0, 21) %", id="negative"),
        pytest.param({"o2_ref": "nan"}, "tag 'o2_ref' = 'nan': a reference O2 lies in [0, 21) %", id="nan"),
    ],
)
def test_a_bad_reference_tag_is_refused_when_the_site_file_loads(tags: dict[str, str], problem: str) -> None:
    assert settings_problems(CEMS, tags) == [f"derived point {n!r}: {problem}" for n in ("so2_zs", "nox_zs", "dust_zs")]
    config = EdgeConfig.model_validate(
        {"site": "s1", "devices": [{"id": "c1", "profile": "flue_gas_cems", "host": "127.0.0.1", "tags": tags}]}
    )
    with pytest.raises(ConfigError, match=r"device 'c1', field tags: derived point 'so2_zs': "):
        build_site(config)


# Q_sn = Q × 3600 × 273.15/(273.15 + t) × (101.325 + p)/101.325 × (1 − X/100); load = C × Q_sn × 1e-6 kg/h
@pytest.mark.parametrize(
    ("flow", "temp", "pressure", "humidity", "expected_m3_h"),
    [
        pytest.param(100.0, None, None, None, 360_000.0, id="already-standard-dry"),
        pytest.param(100.0, 0.0, 0.0, 0.0, 360_000.0, id="standard-state"),
        pytest.param(100.0, 273.15, None, None, 180_000.0, id="double-kelvin-halves"),
        pytest.param(100.0, None, 101.325, None, 720_000.0, id="double-pressure-doubles"),
        pytest.param(100.0, None, None, 10.0, 324_000.0, id="ten-percent-water"),
        pytest.param(200.0, 110.0, -0.5, 10.0, 459_683.6, id="coal-night"),
    ],
)
def test_standard_dry_flow(
    flow: float, temp: float | None, pressure: float | None, humidity: float | None, expected_m3_h: float
) -> None:
    assert standard_dry_flow_m3_h(flow, temp, pressure, humidity) == pytest.approx(expected_m3_h, rel=1e-6)


def test_loads_in_kg_per_hour_from_measured_concentration_and_standard_dry_flow() -> None:
    values, quality = derive(CEMS, COAL, sample(), {})
    q_sn = 200.0 * 3600 * 273.15 / 383.15 * 100.825 / 101.325 * 0.9
    assert values["nox_load"] == pytest.approx(43.0 * q_sn * 1e-6, abs=1e-4)  # about 19.8 kg/h
    assert values["so2_load"] == pytest.approx(20.0 * q_sn * 1e-6, abs=1e-4)
    assert values["dust_load"] == pytest.approx(4.0 * q_sn * 1e-6, abs=1e-4)
    assert not {"so2_load", "nox_load", "dust_load"} & set(quality)
    assert CEMS.units["nox_load"] == "kg/h"
    assert CEMS.units["nox_zs"] == "mg/m³"


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        pytest.param({"flue_humidity": 100.0}, "flue-gas humidity 100 % is outside [0, 100)", id="humidity-100"),
        pytest.param({"flue_temp": -300.0}, "flue-gas temperature -300 °C is below absolute zero", id="temp"),
        pytest.param({"flue_flow": -1.0}, "flow -1 m³/s is negative", id="negative-flow"),
        pytest.param(
            {"flue_pressure": -200.0}, "flue-gas pressure -200 kPa gives no positive absolute pressure", id="pressure"
        ),
    ],
)
def test_impossible_flow_inputs_give_a_bad_load(over: dict[str, Value], reason: str) -> None:
    values, quality = derive(CEMS, COAL, sample(**over), {})
    assert values["nox_load"] is None
    assert quality["nox_load"] == PointQuality(q=Quality.BAD, reason=reason)


def test_maintenance_marks_measured_and_derived_points_uncertain_and_keeps_the_values() -> None:
    raw = sample(maintenance=True, nox=480.0)  # a span gas during the daily calibration
    values, quality = derive(CEMS, COAL, raw, {})
    marked = {"so2", "nox", "dust", "o2", "flue_flow", "flue_temp", "flue_humidity", "flue_pressure", "flue_velocity"}
    derived = {"so2_zs", "nox_zs", "dust_zs", "so2_load", "nox_load", "dust_load"}
    assert {n for n, pq in quality.items() if is_maintenance(pq)} == marked | derived
    assert all(quality[n].reason == MAINTENANCE for n in marked | derived)
    assert values["nox"] == 480.0
    assert values["nox_zs"] == pytest.approx(480 * 15 / 12.8, abs=1e-3)
    assert "unit_load" not in quality
    assert "flow_total" not in quality
    assert "maintenance" not in quality


def test_maintenance_does_not_hide_a_bad_reading_and_an_unknown_flag_marks_nothing() -> None:
    bad = {"nox": PointQuality(q=Quality.BAD, reason="time-out")}
    _, quality = derive(CEMS, COAL, sample(maintenance=True, nox=None), bad)
    assert quality["nox"].q is Quality.BAD
    assert quality["nox_zs"].q is Quality.BAD
    flag_bad = {"maintenance": PointQuality(q=Quality.BAD, reason="time-out")}
    _, quality = derive(CEMS, COAL, sample(maintenance=None), flag_bad)
    assert set(quality) == {"maintenance"}


def test_edge_decode_path_adds_derived_points_to_the_readings() -> None:
    readings = {name: (value, None) for name, value in sample().items()}
    out = with_derived(CEMS, COAL, readings)
    assert set(out) == set(CEMS.point_names())
    assert out["nox_zs"][0] == pytest.approx(50.39, abs=0.01)
    assert out["nox_zs"][1] is None
    assert out["nox"] == (43.0, None)


@pytest.mark.parametrize(
    ("derived", "problem"),
    [
        pytest.param("- {name: x_zs, o2_corrected: {of: nope, o2: o2}}", "'nope' is not a measured point", id="input"),
        pytest.param(
            "- {name: so2, o2_corrected: {of: so2, o2: o2}}", "derived point name 'so2' is already used", id="clash"
        ),
        pytest.param("- {name: x_zs}", "give exactly one of o2_corrected, load", id="no-formula"),
    ],
)
def test_broken_derived_section_names_file_line_and_reason(tmp_path: Path, derived: str, problem: str) -> None:
    text = (
        "name: p\nkind: cems\nprotocol: modbus\nmeasurement: m\nmodbus:\n  points:\n"
        "    - {name: so2, function: holding_register, address: 0, type: float32}\n"
        "    - {name: o2, function: holding_register, address: 2, type: float32}\n"
        f"derived:\n  points:\n    {derived}\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profiles([path])
    assert f"{path}:11:" in str(err.value)
    assert problem in str(err.value)


def test_bridge_accepts_derived_points_as_points_of_the_profile() -> None:
    from broker_bridge.validate import Registry, check
    from telemetry import Sample, Telemetry, encode, topics

    values, quality = derive(CEMS, COAL, sample(), {})
    msg = Telemetry(
        site="plant1",
        device="u1",
        profile="flue_gas_cems",
        measurement="flue_gas",
        seq=1,
        samples=[Sample(ts=1_000_000, values=values, quality=quality)],
    )
    got = check(topics.telemetry("plant1", "u1"), encode(msg), Registry(load_catalogue()), 1_000_000, 300_000, 10**9)
    assert got.samples[0].values["nox_zs"] == pytest.approx(50.39, abs=0.01)
