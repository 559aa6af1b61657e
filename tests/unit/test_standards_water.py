"""Surface-water class by GB 3838-2002 Table 1 (rules.standards.water): every parameter at, just above and just
below every class limit, rivers vs lakes for TP, TN for lakes only, pH range, 劣V, the worst parameter deciding,
targets, and the profile's point names and units. The limits below are copied from shared/standards/water.md."""

from __future__ import annotations

from decimal import Decimal

import pytest

from device_profiles import CATALOGUE, load_profile
from rules.standards import (
    DEFAULT_PARAMETERS,
    PARAMETERS,
    UNCLASSIFIED_POINTS,
    WaterBody,
    WaterClass,
    WaterStation,
    misses_target,
    parameter_class,
    water_class,
)

I, II, III, IV, V, WORSE = (  # noqa: E741
    WaterClass.I,
    WaterClass.II,
    WaterClass.III,
    WaterClass.IV,
    WaterClass.V,
    WaterClass.WORSE_THAN_V,
)
RIVER, LAKE = WaterBody.RIVER, WaterBody.LAKE
STEP = Decimal("0.001")

# water.md, "GB 3838-2002 Table 1, selected items": (point, water body, sense, limits I..V)
TABLE: list[tuple[str, WaterBody, str, tuple[str, ...]]] = [
    ("do", RIVER, "min", ("7.5", "6", "5", "3", "2")),
    ("codmn", RIVER, "max", ("2", "4", "6", "10", "15")),
    ("cod", RIVER, "max", ("15", "15", "20", "30", "40")),
    ("bod5", RIVER, "max", ("3", "3", "4", "6", "10")),
    ("nh3_n", RIVER, "max", ("0.15", "0.5", "1.0", "1.5", "2.0")),
    ("tp", RIVER, "max", ("0.02", "0.1", "0.2", "0.3", "0.4")),
    ("tp", LAKE, "max", ("0.01", "0.025", "0.05", "0.1", "0.2")),
    ("tn", LAKE, "max", ("0.2", "0.5", "1.0", "1.5", "2.0")),
]
CLASSES = (I, II, III, IV, V)


def _best_class(value: Decimal, sense: str, limits: tuple[str, ...]) -> WaterClass:
    """The best class whose limit the value meets (water.md "Overall class" 1-2), on the test's own table."""
    for cls, limit in zip(CLASSES, limits, strict=True):
        if (value >= Decimal(limit)) if sense == "min" else (value <= Decimal(limit)):
            return cls
    return WORSE


def _edge_rows() -> list[object]:
    rows: list[object] = []
    for point, body, sense, limits in TABLE:
        for cls, limit_text in zip(CLASSES, limits, strict=True):
            limit = Decimal(limit_text)
            tag = f"{point}-{body.value}-{cls.label}-{limit_text}"
            for name, value in (("at", limit), ("above", limit + STEP), ("below", limit - STEP)):
                rows.append(pytest.param(point, body, value, _best_class(value, sense, limits), id=f"{tag}-{name}"))
    return rows


@pytest.mark.parametrize(("point", "body", "value", "expected"), _edge_rows())
def test_every_limit_edge(point: str, body: WaterBody, value: Decimal, expected: WaterClass) -> None:
    assert parameter_class(point, float(value), body).water_class == expected


@pytest.mark.parametrize(
    ("point", "body", "value", "expected"),
    [
        # a value equal to a limit meets that class; a shared limit gives the better class
        pytest.param("cod", RIVER, 15, I, id="cod-15-shared-limit-is-I"),
        pytest.param("cod", RIVER, 15.001, III, id="cod-just-above-15-is-III"),
        pytest.param("bod5", RIVER, 3, I, id="bod5-3-shared-limit-is-I"),
        pytest.param("do", RIVER, 7.5, I, id="do-7.5-is-I"),
        pytest.param("do", RIVER, 7.499, II, id="do-just-below-7.5-is-II"),
        pytest.param("do", RIVER, 2, V, id="do-2-is-V"),
        pytest.param("do", RIVER, 1.999, WORSE, id="do-below-2-is-worse-than-V"),
        pytest.param("nh3_n", RIVER, 2.001, WORSE, id="nh3n-above-2-is-worse-than-V"),
        pytest.param("nh3_n", RIVER, 0, I, id="nh3n-0-is-I"),
        pytest.param("ph", RIVER, 6, I, id="ph-6-inside"),
        pytest.param("ph", RIVER, 9, I, id="ph-9-inside"),
        pytest.param("ph", RIVER, 7.2, I, id="ph-7.2-inside"),
        pytest.param("ph", RIVER, 5.99, WORSE, id="ph-5.99-worse-than-V"),
        pytest.param("ph", LAKE, 9.01, WORSE, id="ph-9.01-worse-than-V"),
        # rivers and lakes apart for TP
        pytest.param("tp", RIVER, 0.05, II, id="tp-0.05-river-II"),
        pytest.param("tp", LAKE, 0.05, III, id="tp-0.05-lake-III"),
        pytest.param("tp", RIVER, 0.2, III, id="tp-0.2-river-III"),
        pytest.param("tp", LAKE, 0.2, V, id="tp-0.2-lake-V"),
        pytest.param("tp", RIVER, 0.4, V, id="tp-0.4-river-V"),
        pytest.param("tp", LAKE, 0.21, WORSE, id="tp-0.21-lake-worse-than-V"),
        # exact decimals, not binary floats: 0.1 + 0.2 is just above 0.3
        pytest.param("tp", RIVER, 0.1 + 0.2, V, id="tp-float-sum-just-above-0.3-is-V"),
    ],
)
def test_pinned_classes(point: str, body: WaterBody, value: float, expected: WaterClass) -> None:
    assert parameter_class(point, value, body).water_class == expected


def test_rounding_to_the_reporting_precision_is_a_station_choice() -> None:
    assert parameter_class("tp", 0.1 + 0.2, RIVER, decimals=2).water_class == IV
    station = WaterStation(water_body=RIVER, decimals={"tp": 2})
    assert water_class({"tp": 0.1 + 0.2}, station).water_class == IV
    # GB/T 8170 half to even: 0.305 -> 0.30 (IV), 0.315 -> 0.32 (V)
    assert parameter_class("tp", 0.305, RIVER, decimals=2).water_class == IV
    assert parameter_class("tp", 0.315, RIVER, decimals=2).water_class == V


def test_tn_has_no_river_limit() -> None:
    with pytest.raises(ValueError, match="no limit for a river"):
        parameter_class("tn", 0.5, RIVER)
    result = water_class({"tn": 5.0, "nh3_n": 0.1}, WaterStation(water_body=RIVER))
    assert result.unclassified == ("tn",)
    assert result.water_class == I


def test_lake_tn_is_classified_but_not_deciding_by_default() -> None:
    lake = WaterStation(water_body=LAKE)
    result = water_class({"tn": 1.2, "nh3_n": 0.1, "tp": 0.01}, lake)
    assert {p.point: p.water_class for p in result.parameters} == {"tn": IV, "nh3_n": I, "tp": I}
    assert (result.water_class, result.used) == (I, ("nh3_n", "tp"))
    with_tn = WaterStation(water_body=LAKE, parameters=DEFAULT_PARAMETERS | {"tn"})
    assert water_class({"tn": 1.2, "nh3_n": 0.1}, with_tn).deciding == ("tn",)


@pytest.mark.parametrize(
    ("values", "expected", "deciding"),
    [
        pytest.param(
            {"ph": 7.5, "do": 8, "codmn": 2, "nh3_n": 0.1, "tp": 0.02},
            I,
            ("ph", "do", "codmn", "nh3_n", "tp"),
            id="all-class-I-all-deciding",
        ),
        pytest.param(
            {"ph": 7.5, "do": 5.5, "codmn": 5, "nh3_n": 0.6, "tp": 0.15},
            III,
            ("do", "codmn", "nh3_n", "tp"),
            id="ties-at-III",
        ),
        pytest.param({"ph": 7.5, "do": 6.5, "codmn": 3, "nh3_n": 1.6, "tp": 0.1}, V, ("nh3_n",), id="nh3n-decides-V"),
        pytest.param({"ph": 9.5, "do": 8, "nh3_n": 0.1}, WORSE, ("ph",), id="ph-out-of-range-decides-worse-than-V"),
        pytest.param({"do": 1.5, "tp": 0.5}, WORSE, ("do", "tp"), id="two-worse-than-V"),
        pytest.param({"ph": 7.0, "do": None, "tp": 0.25}, IV, ("tp",), id="none-is-missing"),
        pytest.param(
            {"turbidity": 300.0, "conductivity": 800.0, "water_temp": 21.0}, None, (), id="unclassified-points-only"
        ),
    ],
)
def test_overall_class_is_the_worst(
    values: dict[str, float | None], expected: WaterClass | None, deciding: tuple[str, ...]
) -> None:
    result = water_class(values, WaterStation(water_body=RIVER))
    assert (result.water_class, result.deciding) == (expected, deciding)


def test_unknown_point_is_refused() -> None:
    with pytest.raises(ValueError, match="'chlorophyll' has no GB 3838-2002 class"):
        water_class({"chlorophyll": 3.0}, WaterStation(water_body=RIVER))


@pytest.mark.parametrize(
    ("values", "target", "misses"),
    [
        pytest.param({"nh3_n": 1.0}, III, False, id="III-meets-target-III"),
        pytest.param({"nh3_n": 1.01}, III, True, id="IV-misses-target-III"),
        pytest.param({"nh3_n": 0.1}, III, False, id="I-meets-target-III"),
        pytest.param({"nh3_n": 3.0}, V, True, id="worse-than-V-misses-target-V"),
        pytest.param({"nh3_n": 1.01}, None, None, id="no-target"),
        pytest.param({}, III, None, id="no-class"),
    ],
)
def test_target_class(values: dict[str, float], target: WaterClass | None, misses: bool | None) -> None:
    station = WaterStation(water_body=RIVER, target_class=target)
    assert misses_target(water_class(values, station), station.target_class) is misses


def test_class_labels_and_storage_numbers() -> None:
    assert [(c.value, c.label) for c in WaterClass] == [
        (1, "I"),
        (2, "II"),
        (3, "III"),
        (4, "IV"),
        (5, "V"),
        (6, "劣V"),
    ]
    assert WORSE.quality_zh == "重度污染"


def test_station_model_from_config() -> None:
    station = WaterStation.model_validate({"water_body": "lake", "target_class": 3, "parameters": ["do", "tp"]})
    assert (station.water_body, station.target_class, station.parameters) == (LAKE, III, frozenset({"do", "tp"}))
    with pytest.raises(ValueError, match="water_body"):
        WaterStation.model_validate({"water_body": "sea"})


def test_profile_points_and_units_match_the_table() -> None:
    """The water station profile's points are either classified with GB 3838's unit, or known to have no class."""
    profile = load_profile(CATALOGUE / "water_quality_station.yaml")
    assert profile.modbus is not None
    for point in profile.modbus.points:
        if point.name in UNCLASSIFIED_POINTS:
            continue
        assert point.name in PARAMETERS, point.name
        assert point.unit == PARAMETERS[point.name].unit, point.name
