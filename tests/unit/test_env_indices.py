"""The water class row (rules.indices) from a station's tags and daily means, and the window query that reads a
derived index."""

from __future__ import annotations

import pytest

from rules import PACKS, load_rules
from rules._means import Mean, Tags
from rules.indices import StationTagError, daily_class, water_class_line, water_station
from rules.scheduled import window_query
from rules.standards import WaterBody, WaterClass

RULES = {r.id: r for r in load_rules([PACKS])}
TAGS: Tags = (("device", "w1"), ("site", "s"), ("target_class", "II"), ("water_body", "lake"))


def mean(value: float | None) -> Mean:
    return Mean(value, 20 if value is not None else 3, 4, "hourly means", 24)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("II", WaterClass.II),
        ("ii", WaterClass.II),
        ("3", WaterClass.III),
        ("V", WaterClass.V),
        ("劣V", WaterClass.WORSE_THAN_V),
    ],
)
def test_the_target_class_tag_is_read(target: str, expected: WaterClass) -> None:
    station = water_station((("target_class", target), ("water_body", "river")))
    assert (station.water_body, station.target_class) == (WaterBody.RIVER, expected)


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ((("device", "w1"), ("site", "s")), r"site s device w1: tag water_body=None must be river or lake"),
        ((("water_body", "sea"),), "water_body='sea' must be river or lake"),
        ((("water_body", "lake"), ("target_class", "VI")), "target_class='VI' is not a class"),
    ],
)
def test_bad_station_tags_are_named(tags: Tags, problem: str) -> None:
    with pytest.raises(StationTagError, match=problem):
        water_station(tags)


def test_the_class_row_from_daily_means() -> None:
    station = water_station(TAGS)
    # lake: TP 0.05 meets class III (GB 3838-2002 Table 1, lakes and reservoirs: 0.05); NH3-N 0.5 is class II;
    # an invalid DO mean is missing; water temperature has no class
    means = {"tp": mean(0.05), "nh3_n": mean(0.5), "do": mean(None), "water_temp": mean(18.0)}
    result = daily_class(means, station)
    assert (result.water_class, result.deciding) == (WaterClass.III, ("tp",))
    row = water_class_line(TAGS, result, station, 1000)
    assert row.startswith("water_quality_class_daily,device=w1,site=s,target_class=II,water_body=lake ")
    assert row.endswith(" 1000")
    fields = row.split(" ")[1]
    for part in (
        "class=3.0",
        'class_label="III"',
        'deciding="tp"',
        "target_class=2.0",
        "class_over_target=1.0",
        "target_missed=true",
        "class_tp=3.0",
        "class_nh3_n=2.0",
    ):
        assert part in fields.split(","), part


def test_a_day_without_means_has_no_class() -> None:
    station = water_station(TAGS)
    row = water_class_line(TAGS, daily_class({"tp": mean(None)}, station), station, 0)
    names = {f.split("=")[0] for f in row.split(" ")[1].split(",")}
    assert names == {"deciding", "used", "water_body", "target_class"}  # no class, no verdict on the target
    assert 'used=""' in row


def test_window_rules_on_a_derived_index_read_its_series() -> None:
    q = window_query(RULES["water.class.target"], {"water_quality_station": "water_quality"}, 0, 86_400_000)
    assert q.startswith(
        'SELECT last("class_over_target") AS "value", last("class_over_target.n") AS "n" '
        'FROM "water_quality_class_daily" WHERE'
    )
    q = window_query(RULES["air.aqi.hourly"], {"air_quality_station": "air_quality"}, 0, 3_600_000)
    assert 'FROM "air_quality_aqi_hourly"' in q
    q = window_query(RULES["air.aqi.daily"], {"air_quality_station": "air_quality"}, 0, 86_400_000)
    assert 'FROM "air_quality_aqi_daily"' in q
