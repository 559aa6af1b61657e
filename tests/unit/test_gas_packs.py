"""Toxic-gas (%OEL) and oxygen (19.5 / 23.5 %VOL) alarms of GB/T 50493-2019: the shipped packs against the OEL
table (GBZ 2.1, rules.standards.gas), and readings through the engine: set points met at the value (>=, <= for
deficiency), the first level after its short on-delay, the second at once, the deadband, the gas told by the tag,
calibration readings and detector faults."""

from __future__ import annotations

import pytest

from device_profiles import load_catalogue
from device_profiles.derive import settings_problems
from rules import PACKS, Engine, Rule, Transition, load_rules
from rules.standards.gas import (
    TOXIC_GASES,
    exposure_limit,
    mg_m3_from_ppm,
    oel_percent,
    set_points,
)
from telemetry.models import PointQuality, Quality, Sample, Telemetry

RULES = {r.id: r for r in load_rules([PACKS])}
TOXIC = {rid: r for rid, r in RULES.items() if rid.startswith("toxic_gas.") and r.threshold is not None}
OXYGEN = [RULES["oxygen.deficiency"], RULES["oxygen.enrichment"], RULES["oxygen.detector_fault"]]
SECOND = 1000


def msg(
    profile: str, ts: int, values: dict[str, float | int], tags: dict[str, str], reason: str | None = None
) -> Telemetry:
    quality = {n: PointQuality(q=Quality.UNCERTAIN, reason=reason) for n in values} if reason else {}
    return Telemetry(
        site="chem-park",
        device="det-1",
        profile=profile,
        measurement="gas_safety",
        seq=1,
        tags={"domain": "safety", **tags},
        samples=[Sample(ts=ts, values=values, quality=quality)],
    )


def run(
    rules: list[Rule], profile: str, point: str, readings: list[float], tags: dict[str, str], reason: str | None = None
) -> list[tuple[str, str | None, int]]:
    """One reading a second; (rule, severity or None for a clear, second) of each transition."""
    engine = Engine(rules)
    got: list[Transition] = []
    for i, v in enumerate(readings):
        got += engine.observe(msg(profile, i * SECOND, {point: v}, tags, reason))
    return [(t.rule, t.severity, t.ts // SECOND) for t in got]


# --- the table and the pack -----------------------------------------------------------------------------------
def test_every_gas_of_the_table_has_its_rule_at_100_and_200_percent_oel() -> None:
    assert set(TOXIC) == {f"toxic_gas.{gas}" for gas in TOXIC_GASES}
    for gas, limit in TOXIC_GASES.items():
        rule = TOXIC[f"toxic_gas.{gas}"]
        assert rule.select.tags == {"gas": gas}
        assert rule.select.profile is not None
        assert list(rule.select.profile) == ["toxic_gas_detector"]
        assert rule.threshold is not None
        assert rule.threshold.point == "conc"
        assert rule.threshold.direction == "high"
        assert not rule.threshold.strict  # a set point is met at the value
        levels = [(lv.severity, lv.value) for lv in rule.threshold.levels]
        assert levels == [("warning", limit.oel), ("critical", 2 * limit.oel)], gas
        assert (levels[0][1], levels[1][1]) == set_points(gas)


@pytest.mark.parametrize(
    ("gas", "oel", "basis"),
    [
        ("h2s", 10, "MAC"),
        ("co", 20, "PC-TWA"),
        ("cl2", 1, "MAC"),
        ("nh3", 20, "PC-TWA"),
        ("hcl", 7.5, "MAC"),
        ("cocl2", 0.5, "MAC"),
        ("benzene", 6, "PC-TWA"),
        ("co2", 9000, "PC-TWA"),
    ],
)
def test_oel_is_mac_where_given_else_pc_twa(gas: str, oel: float, basis: str) -> None:
    limit = exposure_limit(gas)
    assert limit.oel == oel
    assert (limit.mac is not None) is (basis == "MAC")


def test_unknown_gas_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"'ch4' has no OEL.*h2s"):
        exposure_limit("ch4")


@pytest.mark.parametrize(
    ("gas", "ppm", "mg_m3"),
    [("h2s", 10.0, 14.2), ("co", 24.0, 28.01), ("nh3", 0.0, 0.0), ("cl2", 1.0, 2.954)],
)
def test_ppm_to_mg_m3_at_24_l_per_mol(gas: str, ppm: float, mg_m3: float) -> None:
    assert mg_m3_from_ppm(gas, ppm) == pytest.approx(mg_m3, abs=0.001)


def test_oel_percent() -> None:
    assert oel_percent("h2s", 15.0) == pytest.approx(150.0)
    assert oel_percent("co", 20.0) == pytest.approx(100.0)


def test_the_profiles_exist_with_their_points() -> None:
    catalogue = load_catalogue()
    assert {p.name for p in catalogue["toxic_gas_detector"].points} >= {"conc", "alarm_level"}
    assert {p.name for p in catalogue["oxygen_detector"].points} >= {"o2", "alarm_level"}


def test_a_detectors_gas_tag_is_checked_against_the_oel_table() -> None:
    """A gas without an OEL gets no concentration alarm at all: its site file is refused, naming the gas."""
    profile = load_catalogue()["toxic_gas_detector"]
    spec = profile.device_tags["gas"]
    assert spec.values is not None
    assert sorted(spec.values) == sorted(TOXIC_GASES)
    assert settings_problems(profile, {"gas": "h2s"}) == []
    assert "'hydrogen'" in settings_problems(profile, {"gas": "hydrogen"})[0]
    assert "required" in settings_problems(profile, {})[0]


# --- readings through the engine ------------------------------------------------------------------------------
H2S = [TOXIC["toxic_gas.h2s"], RULES["toxic_gas.detector_fault"]]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param([9.9] * 5, [], id="below-100pct-nothing"),
        pytest.param([10.0] * 5, [("toxic_gas.h2s", "warning", 2)], id="at-100pct-first-level-after-2s"),
        pytest.param([10.0], [], id="first-level-waits-its-on-delay"),
        pytest.param([20.0], [("toxic_gas.h2s", "critical", 0)], id="at-200pct-second-level-at-once"),
        pytest.param(
            [12.0] * 3 + [9.6] * 3 + [9.4] * 3,
            [("toxic_gas.h2s", "warning", 2), ("toxic_gas.h2s", None, 6)],
            id="clears-below-the-deadband",
        ),
    ],
)
def test_h2s_detector(readings: list[float], expected: list[tuple[str, str | None, int]]) -> None:
    got = run(H2S, "toxic_gas_detector", "conc", readings, {"gas": "h2s"})
    assert got == expected


def test_the_gas_tag_chooses_the_limit() -> None:
    # 15 mg/m³ is 150 %OEL of H2S but 75 %OEL of CO
    assert run(list(TOXIC.values()), "toxic_gas_detector", "conc", [15.0] * 4, {"gas": "co"}) == []
    assert run(list(TOXIC.values()), "toxic_gas_detector", "conc", [15.0] * 4, {"gas": "h2s"}) == [
        ("toxic_gas.h2s", "warning", 2)
    ]


def test_calibration_gas_raises_nothing() -> None:
    assert run(H2S, "toxic_gas_detector", "conc", [25.0] * 5, {"gas": "h2s"}, reason="calibration") == []


def test_a_faulty_toxic_detector_raises_its_fault() -> None:
    got = run(H2S, "toxic_gas_detector", "alarm_level", [3, 3], {"gas": "h2s"})
    assert got == [("toxic_gas.detector_fault", "warning", 0)]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param([20.9] * 5, [], id="normal-air"),
        pytest.param([19.6] * 5, [], id="just-above-deficiency"),
        pytest.param([19.5] * 5, [("oxygen.deficiency", "critical", 2)], id="at-19.5-deficiency"),
        pytest.param([17.0] * 5, [("oxygen.deficiency", "critical", 2)], id="low"),
        pytest.param([23.4] * 5, [], id="just-below-enrichment"),
        pytest.param([23.5] * 5, [("oxygen.enrichment", "critical", 2)], id="at-23.5-enrichment"),
        pytest.param(
            [19.0] * 3 + [19.8] * 3 + [20.1] * 3,
            [("oxygen.deficiency", "critical", 2), ("oxygen.deficiency", None, 6)],
            id="clears-above-20.0",
        ),
    ],
)
def test_oxygen_detector(readings: list[float], expected: list[tuple[str, str | None, int]]) -> None:
    assert run(OXYGEN, "oxygen_detector", "o2", readings, {}) == expected
