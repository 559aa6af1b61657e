"""AQI by HJ 633-2012 / HJ 633-2026 (rules.standards.aqi): IAQI at and around every breakpoint of every column in
both editions, the table notes above the top, input rounding, levels, primary pollutant, the missing-data rule and
the edition switch at 2026-03-01 (Asia/Shanghai). The breakpoints below are copied from shared/standards/air.md, not
from the code's tables, so a wrong number in either shows up."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import CATALOGUE, load_profile
from rules.standards import (
    EDITIONS,
    HJ633_2012,
    HJ633_2026,
    AqiResult,
    Edition,
    Indicator,
    Pollutant,
    aqi,
    daily_aqi,
    edition_for,
    hourly_aqi,
    iaqi,
    level_of,
)

CST = timezone(timedelta(hours=8))
STEPS = (0, 50, 100, 150, 200, 300, 400, 500)

# air.md, "IAQI breakpoints (HJ 633-2026 Table 3)"; PM 1-h uses the 24-h column (§4.2.4)
COLUMNS_2026: dict[Indicator, tuple[str, ...]] = {
    Indicator.SO2_24H: ("0", "50", "150", "475", "800", "1600", "2100", "2620"),
    Indicator.SO2_1H: ("0", "150", "500", "650", "800"),
    Indicator.NO2_24H: ("0", "40", "80", "180", "280", "565", "750", "940"),
    Indicator.NO2_1H: ("0", "100", "200", "700", "1200", "2340", "3090", "3840"),
    Indicator.CO_24H: ("0", "2", "4", "14", "24", "36", "48", "60"),
    Indicator.CO_1H: ("0", "5", "10", "35", "60", "90", "120", "150"),
    Indicator.O3_8H: ("0", "100", "160", "215", "265", "800"),
    Indicator.O3_1H: ("0", "160", "200", "300", "400", "800", "1000", "1200"),
    Indicator.PM10_24H: ("0", "50", "120", "250", "350", "420", "500", "600"),
    Indicator.PM25_24H: ("0", "35", "60", "115", "150", "250", "350", "500"),
}
COLUMNS_2026[Indicator.PM10_1H] = COLUMNS_2026[Indicator.PM10_24H]
COLUMNS_2026[Indicator.PM25_1H] = COLUMNS_2026[Indicator.PM25_24H]
# air.md, "2012 editions": only the PM breakpoints at IAQI 100 differ
COLUMNS_2012 = dict(COLUMNS_2026)
for _ind in (Indicator.PM10_24H, Indicator.PM10_1H):
    COLUMNS_2012[_ind] = ("0", "50", "150", "250", "350", "420", "500", "600")
for _ind in (Indicator.PM25_24H, Indicator.PM25_1H):
    COLUMNS_2012[_ind] = ("0", "35", "75", "115", "150", "250", "350", "500")

EDITION_COLUMNS = ((HJ633_2026, COLUMNS_2026), (HJ633_2012, COLUMNS_2012))


def _expected(c: Decimal, bps: tuple[str, ...]) -> int:
    """The §4.2.4 formula on the test's own table, rounded up (§4.2.6)."""
    for i in range(1, len(bps)):
        lo, hi = Decimal(bps[i - 1]), Decimal(bps[i])
        if c <= hi:
            return math.ceil(Fraction(STEPS[i] - STEPS[i - 1]) / Fraction(hi - lo) * Fraction(c - lo) + STEPS[i - 1])
    raise AssertionError("above the table")


def _edge_rows() -> list[object]:
    rows: list[object] = []
    for edition, columns in EDITION_COLUMNS:
        for ind, bps in columns.items():
            step = Decimal("0.1") if ind.pollutant is Pollutant.CO else Decimal(1)
            for i, bp_text in enumerate(bps):
                bp = Decimal(bp_text)
                tag = f"{edition.name[-4:]}-{ind.value}"
                rows.append(pytest.param(edition, ind, bp, STEPS[i], id=f"{tag}-at-{bp}"))
                if i > 0:
                    rows.append(
                        pytest.param(edition, ind, bp - step, _expected(bp - step, bps), id=f"{tag}-below-{bp}")
                    )
                    mid = (Decimal(bps[i - 1]) + bp) / 2
                    mid = mid.quantize(step)
                    rows.append(pytest.param(edition, ind, mid, _expected(mid, bps), id=f"{tag}-mid-{mid}"))
                if i < len(bps) - 1:
                    rows.append(
                        pytest.param(edition, ind, bp + step, _expected(bp + step, bps), id=f"{tag}-above-{bp}")
                    )
    return rows


@pytest.mark.parametrize(("edition", "indicator", "conc", "expected"), _edge_rows())
def test_iaqi_at_and_around_every_breakpoint(
    edition: Edition, indicator: Indicator, conc: Decimal, expected: int
) -> None:
    result = iaqi(indicator, conc, edition)
    assert result is not None
    assert result.value == expected
    assert not result.beyond_table


@pytest.mark.parametrize(
    ("edition", "indicator", "conc", "expected"),
    [
        # the two breakpoints HJ 633-2026 changed (air.md, bold in Table 3)
        pytest.param(HJ633_2026, Indicator.PM25_24H, 60, 100, id="2026-pm25-60-is-100"),
        pytest.param(HJ633_2012, Indicator.PM25_24H, 60, 82, id="2012-pm25-60-is-82"),
        pytest.param(HJ633_2026, Indicator.PM25_24H, 75, 114, id="2026-pm25-75-is-114"),
        pytest.param(HJ633_2012, Indicator.PM25_24H, 75, 100, id="2012-pm25-75-is-100"),
        pytest.param(HJ633_2026, Indicator.PM10_24H, 150, 112, id="2026-pm10-150-is-112"),
        pytest.param(HJ633_2012, Indicator.PM10_24H, 150, 100, id="2012-pm10-150-is-100"),
        pytest.param(HJ633_2026, Indicator.PM25_1H, 60, 100, id="2026-pm25-1h-on-24h-column"),
        # rounding up: 50 + 50/40 * 1 = 51.25 -> 52; exactly integral stays
        pytest.param(HJ633_2026, Indicator.NO2_24H, 41, 52, id="no2-41-rounds-up-to-52"),
        pytest.param(HJ633_2026, Indicator.SO2_24H, 100, 75, id="so2-100-exact-75"),
        # inputs rounded by GB/T 8170 before the IAQI (§4.2.2): integers for µg/m³, 0.1 for CO
        pytest.param(HJ633_2026, Indicator.PM25_24H, 34.5, 49, id="pm25-34.5-half-even-to-34"),
        pytest.param(HJ633_2026, Indicator.PM25_24H, 35.5, 52, id="pm25-35.5-half-even-to-36"),
        pytest.param(HJ633_2026, Indicator.PM25_24H, 35.49, 50, id="pm25-35.49-to-35"),
        pytest.param(HJ633_2026, Indicator.CO_24H, 4.05, 100, id="co-4.05-half-even-to-4.0"),
        pytest.param(HJ633_2026, Indicator.CO_24H, 4.15, 101, id="co-4.15-half-even-to-4.2"),
        pytest.param(HJ633_2026, Indicator.CO_24H, 4.25, 101, id="co-4.25-half-even-to-4.2"),
        pytest.param(HJ633_2026, Indicator.CO_24H, 4.35, 102, id="co-4.35-half-even-to-4.4"),
        pytest.param(HJ633_2026, Indicator.PM25_24H, -0.4, 0, id="small-negative-rounds-to-0"),
        # table notes above the top breakpoint (HJ 633-2026 Table 3 notes b, c)
        pytest.param(HJ633_2026, Indicator.SO2_1H, 801, 200, id="2026-so2-1h-above-800-is-200"),
        pytest.param(HJ633_2026, Indicator.SO2_1H, 5000, 200, id="2026-so2-1h-far-above-800-is-200"),
        pytest.param(HJ633_2026, Indicator.O3_8H, 801, 300, id="2026-o3-8h-above-800-is-300"),
    ],
)
def test_iaqi_pinned_values(edition: Edition, indicator: Indicator, conc: float, expected: int) -> None:
    result = iaqi(indicator, conc, edition)
    assert result is not None
    assert result.value == expected


@pytest.mark.parametrize(
    ("edition", "indicator", "conc"),
    [
        pytest.param(HJ633_2026, Indicator.PM25_24H, 501, id="pm25-above-500"),
        pytest.param(HJ633_2026, Indicator.CO_1H, 150.1, id="co-1h-above-150"),
        pytest.param(HJ633_2012, Indicator.O3_1H, 1201, id="2012-o3-1h-above-1200"),
    ],
)
def test_iaqi_beyond_the_table_is_capped_and_flagged(edition: Edition, indicator: Indicator, conc: float) -> None:
    result = iaqi(indicator, conc, edition)
    assert result is not None
    assert (result.value, result.beyond_table) == (500, True)
    assert "capped" in result.clause


@pytest.mark.parametrize(
    ("indicator", "conc"),
    [
        pytest.param(Indicator.SO2_1H, 801, id="2012-so2-1h-above-800-has-no-own-iaqi"),
        pytest.param(Indicator.O3_8H, 801, id="2012-o3-8h-above-800-has-no-own-iaqi"),
    ],
)
def test_iaqi_2012_notes_give_no_value_of_their_own(indicator: Indicator, conc: float) -> None:
    assert iaqi(indicator, conc, HJ633_2012) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(-0.6, ValueError, id="negative-after-rounding"),
        pytest.param(float("nan"), ValueError, id="nan"),
        pytest.param(float("inf"), ValueError, id="infinity"),
        pytest.param("12", TypeError, id="string"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_iaqi_refuses_bad_concentrations(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="pm25_24h"):
        iaqi(Indicator.PM25_24H, value, HJ633_2026)  # type: ignore[arg-type]


# --- edition by date -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "edition"),
    [
        pytest.param(date(2026, 2, 28), "HJ 633-2012", id="date-2026-02-28"),
        pytest.param(date(2026, 3, 1), "HJ 633-2026", id="date-2026-03-01"),
        pytest.param(datetime(2026, 2, 28, 23, 0, tzinfo=CST), "HJ 633-2012", id="cst-2026-02-28T23:00"),
        pytest.param(datetime(2026, 3, 1, 0, 0, tzinfo=CST), "HJ 633-2026", id="cst-2026-03-01T00:00"),
        pytest.param(datetime(2026, 2, 28, 15, 59, tzinfo=UTC), "HJ 633-2012", id="utc-15:59-is-cst-23:59"),
        pytest.param(datetime(2026, 2, 28, 16, 0, tzinfo=UTC), "HJ 633-2026", id="utc-16:00-is-cst-next-day"),
        pytest.param(date(2013, 1, 1), "HJ 633-2012", id="old-data-2012"),
    ],
)
def test_edition_switches_on_the_shanghai_date(at: date | datetime, edition: str) -> None:
    assert edition_for(at).name == edition


def test_edition_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        edition_for(datetime(2026, 3, 1, 0, 0))


def _hourly(pm25: float, **others: float) -> dict[str, float]:
    values = {"so2_1h": 5.0, "no2_1h": 20.0, "co_1h": 0.5, "o3_1h": 50.0, "pm10_1h": 30.0, "pm25_1h": pm25}
    values.update(others)
    return values


@pytest.mark.parametrize(
    ("hour", "edition", "expected"),
    [
        pytest.param(datetime(2026, 2, 28, 23, tzinfo=CST), "HJ 633-2012", 100, id="last-2012-hour"),
        pytest.param(datetime(2026, 3, 1, 0, tzinfo=CST), "HJ 633-2026", 114, id="first-2026-hour"),
    ],
)
def test_hourly_aqi_across_the_switch(hour: datetime, edition: str, expected: int) -> None:
    result = hourly_aqi(_hourly(75), hour)
    assert (result.edition, result.aqi, result.shown) == (edition, expected, str(expected))
    assert result.primary == (Indicator.PM25_1H,)


DAILY_2026 = {"so2_24h": 10, "no2_24h": 30, "co_24h": 0.8, "o3_8h": 90, "pm10_24h": 40, "pm25_24h": 20}


def test_daily_2026_six_indicators_and_2012_seven() -> None:
    assert [i.value for i in HJ633_2026.reports["daily"]] == [
        "so2_24h",
        "no2_24h",
        "co_24h",
        "o3_8h",
        "pm10_24h",
        "pm25_24h",
    ]
    assert set(HJ633_2012.reports["daily"]) == {*HJ633_2026.reports["daily"], Indicator.O3_1H}
    after = daily_aqi(DAILY_2026, date(2026, 3, 1))
    before = daily_aqi(DAILY_2026, date(2026, 2, 28))
    assert after.complete
    assert after.shown == "45"
    assert before.missing == (Indicator.O3_1H,)
    assert before.shown == "NA"


# --- primary pollutant (§4.3.1) and levels ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pm25", "pm10", "primary"),
    [
        pytest.param(35, 50, (), id="aqi-50-no-primary-even-with-a-tie"),
        pytest.param(20, 30, (), id="aqi-below-50-no-primary"),
        pytest.param(36, 30, (Indicator.PM25_24H,), id="aqi-52-one-primary"),
        pytest.param(60, 120, (Indicator.PM10_24H, Indicator.PM25_24H), id="tie-at-100-both-primary"),
        pytest.param(60, 119, (Indicator.PM10_24H, Indicator.PM25_24H), id="pm10-119-rounds-up-to-100-tie"),
        pytest.param(60, 118, (Indicator.PM25_24H,), id="pm10-118-is-99-not-primary"),
    ],
)
def test_primary_pollutant(pm25: int, pm10: int, primary: tuple[Indicator, ...]) -> None:
    values = {**DAILY_2026, "pm25_24h": pm25, "pm10_24h": pm10}
    result = daily_aqi(values, date(2026, 6, 1))
    assert result.primary == primary
    assert result.primary_pollutants == tuple(i.pollutant for i in primary)


def test_primary_is_the_largest_not_every_iaqi_above_50() -> None:
    values = {**DAILY_2026, "pm25_24h": 115, "pm10_24h": 250, "no2_24h": 180, "o3_8h": 200}  # 150, 150, 150, 132
    result = daily_aqi(values, date(2026, 6, 1))
    assert result.aqi == 150
    assert set(result.primary) == {Indicator.PM25_24H, Indicator.PM10_24H, Indicator.NO2_24H}


@pytest.mark.parametrize(
    ("value", "roman", "category_zh", "category_en", "colour", "rgb"),
    [
        pytest.param(0, "I", "优", "excellent", "green", (0, 228, 0), id="0-is-level-I"),
        pytest.param(1, "I", "优", "excellent", "green", (0, 228, 0), id="1"),
        pytest.param(50, "I", "优", "excellent", "green", (0, 228, 0), id="50"),
        pytest.param(51, "II", "良", "good", "yellow", (255, 255, 0), id="51"),
        pytest.param(100, "II", "良", "good", "yellow", (255, 255, 0), id="100"),
        pytest.param(101, "III", "轻度污染", "lightly polluted", "orange", (255, 126, 0), id="101"),
        pytest.param(150, "III", "轻度污染", "lightly polluted", "orange", (255, 126, 0), id="150"),
        pytest.param(151, "IV", "中度污染", "moderately polluted", "red", (255, 0, 0), id="151"),
        pytest.param(200, "IV", "中度污染", "moderately polluted", "red", (255, 0, 0), id="200"),
        pytest.param(201, "V", "重度污染", "heavily polluted", "purple", (153, 0, 76), id="201"),
        pytest.param(300, "V", "重度污染", "heavily polluted", "purple", (153, 0, 76), id="300"),
        pytest.param(301, "VI", "严重污染", "severely polluted", "maroon", (126, 0, 35), id="301"),
        pytest.param(500, "VI", "严重污染", "severely polluted", "maroon", (126, 0, 35), id="500"),
    ],
)
@pytest.mark.parametrize("edition", [HJ633_2026, HJ633_2012], ids=["2026", "2012"])
def test_levels(
    edition: Edition, value: int, roman: str, category_zh: str, category_en: str, colour: str, rgb: tuple[int, int, int]
) -> None:
    level = level_of(value, edition)
    assert (level.roman, level.category_zh, level.category_en, level.colour_en, level.rgb) == (
        roman,
        category_zh,
        category_en,
        colour,
        rgb,
    )


def test_level_i_range_differs_between_editions() -> None:
    assert (HJ633_2012.levels[0].low, HJ633_2026.levels[0].low) == (0, 1)
    assert [lv.cmyk for lv in HJ633_2026.levels] == [
        (40, 0, 100, 0),
        (0, 0, 100, 0),
        (0, 52, 100, 0),
        (0, 100, 100, 0),
        (10, 100, 40, 30),
        (30, 100, 100, 30),
    ]


# --- missing pollutants (§5.3) ----------------------------------------------------------------------------------
def _daily(**changes: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = dict(DAILY_2026)
    out.update(changes)
    return out


@pytest.mark.parametrize(
    ("values", "exempt", "aqi_value", "shown", "missing", "exempted"),
    [
        pytest.param(_daily(), (), 45, "45", (), (), id="complete"),
        pytest.param(_daily(co_24h=None), (), 45, "NA", (Indicator.CO_24H,), (), id="co-none-aqi-45-is-NA"),
        pytest.param(
            {k: v for k, v in DAILY_2026.items() if k != "o3_8h"},
            (),
            40,
            "NA",
            (Indicator.O3_8H,),
            (),
            id="o3-absent-aqi-of-the-rest-40-is-NA",
        ),
        pytest.param(
            _daily(co_24h=None, pm25_24h=60), (), 100, "NA", (Indicator.CO_24H,), (), id="missing-aqi-100-still-NA"
        ),
        pytest.param(
            _daily(co_24h=None, pm25_24h=61), (), 101, "101", (Indicator.CO_24H,), (), id="missing-aqi-101-published"
        ),
        pytest.param(_daily(co_24h=None), ("co",), 45, "45", (), (Indicator.CO_24H,), id="co-exempt-not-blocking"),
        pytest.param({}, (), None, "NA", HJ633_2026.reports["daily"], (), id="nothing-given"),
    ],
)
def test_missing_pollutants(
    values: dict[str, float | None],
    exempt: tuple[str, ...],
    aqi_value: int | None,
    shown: str,
    missing: tuple[Indicator, ...],
    exempted: tuple[Indicator, ...],
) -> None:
    result = daily_aqi(values, date(2026, 6, 1), exempt=exempt)
    assert (result.aqi, result.shown, result.missing, result.exempt) == (aqi_value, shown, missing, exempted)
    assert result.level == (None if aqi_value is None else level_of(aqi_value, HJ633_2026))


def test_missing_result_still_gives_the_single_pollutant_iaqis() -> None:
    result = daily_aqi(_daily(co_24h=None), date(2026, 6, 1))
    assert {r.indicator: r.value for r in result.iaqi}[Indicator.PM25_24H] == 29
    assert result.shown == "NA"
    assert not result.publishable


# --- table notes in context ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hour", "values", "so2_iaqi", "substituted", "missing"),
    [
        pytest.param(
            datetime(2026, 3, 1, 8, tzinfo=CST), _hourly(20, so2_1h=900), 200, None, (), id="2026-so2-1h-900-is-200"
        ),
        pytest.param(
            datetime(2026, 2, 1, 8, tzinfo=CST),
            _hourly(20, so2_1h=900, so2_24h=475),
            150,
            Indicator.SO2_24H,
            (),
            id="2012-so2-1h-900-takes-24h-iaqi",
        ),
        pytest.param(
            datetime(2026, 2, 1, 8, tzinfo=CST),
            _hourly(20, so2_1h=900),
            None,
            None,
            (Indicator.SO2_1H,),
            id="2012-so2-1h-900-without-24h-is-missing",
        ),
    ],
)
def test_so2_1h_above_800(
    hour: datetime,
    values: dict[str, float],
    so2_iaqi: int | None,
    substituted: Indicator | None,
    missing: tuple[Indicator, ...],
) -> None:
    result = hourly_aqi(values, hour)
    got = {r.indicator: r for r in result.iaqi}.get(Indicator.SO2_1H)
    assert (None if got is None else got.value) == so2_iaqi
    assert (None if got is None else got.substituted_by) == substituted
    assert result.missing == missing
    if missing:
        assert "so2_24h" in result.notes[0]


@pytest.mark.parametrize(
    ("day", "values", "o3_8h_iaqi"),
    [
        pytest.param(date(2026, 3, 1), {**DAILY_2026, "o3_8h": 850}, 300, id="2026-o3-8h-850-is-300"),
        pytest.param(date(2026, 2, 28), {**DAILY_2026, "o3_8h": 850, "o3_1h": 1000}, 400, id="2012-takes-o3-1h-iaqi"),
    ],
)
def test_o3_8h_above_800(day: date, values: dict[str, float], o3_8h_iaqi: int) -> None:
    result = daily_aqi(values, day)
    assert {r.indicator: r.value for r in result.iaqi}[Indicator.O3_8H] == o3_8h_iaqi
    assert result.aqi == o3_8h_iaqi


def test_beyond_table_value_is_noted_in_the_result() -> None:
    result = daily_aqi({**DAILY_2026, "pm25_24h": 650}, date(2026, 6, 1))
    assert result.aqi == 500
    assert result.level is not None
    assert result.level.roman == "VI"
    assert result.notes
    assert "pm25_24h" in result.notes[0]
    assert "capped" in result.notes[0]


def test_2012_nine_indicator_hourly_variant() -> None:
    hour = datetime(2025, 6, 1, 14, tzinfo=CST)
    values = {**_hourly(20), "o3_8h": 170, "pm10_24h": 40, "pm25_24h": 80}
    six = hourly_aqi(values, hour)
    nine = hourly_aqi(values, hour, nine_indicators_2012=True)
    assert (six.report, six.aqi, six.primary) == ("hourly", 30, ())  # pm10 1-h 30 -> 30
    # o3 8-h 170 -> 100 + 50/55 * 10 = 109.1 -> 110; pm25 24-h 80 -> 107 (2012 column)
    assert (nine.report, nine.aqi, nine.primary) == ("hourly_nine", 110, (Indicator.O3_8H,))
    # the 2026 edition has no such report: the flag is ignored there
    assert hourly_aqi(values, datetime(2026, 6, 1, 14, tzinfo=CST), nine_indicators_2012=True).report == "hourly"


def test_unknown_indicator_and_report_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown AQI indicator 'pm2\.5'"):
        daily_aqi({"pm2.5": 10}, date(2026, 6, 1))
    with pytest.raises(ValueError, match="HJ 633-2026 has no report 'weekly'"):
        aqi({}, date(2026, 6, 1), "weekly")


# --- properties -------------------------------------------------------------------------------------------------
CONC = st.decimals(min_value=0, max_value=4000, places=1, allow_nan=False, allow_infinity=False)


@given(edition=st.sampled_from(EDITIONS), indicator=st.sampled_from(list(Indicator)), a=CONC, b=CONC)
def test_iaqi_never_falls_as_concentration_rises(
    edition: Edition, indicator: Indicator, a: Decimal, b: Decimal
) -> None:
    lo, hi = sorted((a, b))
    r_lo, r_hi = iaqi(indicator, lo, edition), iaqi(indicator, hi, edition)
    if r_lo is not None and r_hi is not None:  # None only above a 2012 substitution note's top
        assert r_lo.value <= r_hi.value
        assert 0 <= r_lo.value <= 500


@given(values=st.fixed_dictionaries({i.value: st.integers(0, 700) for i in HJ633_2026.reports["daily"]}))
def test_aqi_is_the_largest_iaqi(values: dict[str, int]) -> None:
    result: AqiResult = daily_aqi(values, date(2026, 6, 1))
    assert result.aqi == max(r.value for r in result.iaqi)
    assert all(r.value == result.aqi for r in (x for x in result.iaqi if x.indicator in result.primary))


def test_air_profile_units_are_the_indicator_units() -> None:
    """HJ 633 wants CO in mg/m³ and the others in µg/m³; the air station profile declares exactly those."""
    profile = load_profile(CATALOGUE / "air_quality_station.yaml")
    assert profile.modbus is not None
    units = {p.name: p.unit for p in profile.modbus.points}
    for indicator in Indicator:
        assert units[indicator.pollutant.value] == indicator.unit, indicator
