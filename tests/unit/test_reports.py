"""The report builders against hand-computed numbers: one table of cases per report kind, the Beijing period."""

from __future__ import annotations

import pytest

from reports import (
    AlarmRecord,
    AqiDay,
    MeanRow,
    ReportPeriod,
    SourceReportBuilder,
    StateStep,
    WaterDay,
    air_report,
    safety_report,
    source_report,
    water_report,
)
from rules.standards import Permit, PollutantLimit

H = 3_600_000
M = 60_000
DAY = ReportPeriod.parse("day", "2026-03-10")
MONTH = ReportPeriod.parse("month", "2026-03")
D0 = DAY.start_ms  # 2026-03-10 00:00 Beijing


@pytest.mark.parametrize(
    ("kind", "text", "start_utc", "days", "hours"),
    [
        ("day", "2026-03-10", "2026-03-09T16:00:00+00:00", 1, 24),
        ("month", "2026-03", "2026-02-28T16:00:00+00:00", 31, 744),
        ("month", "2026-02-14", "2026-01-31T16:00:00+00:00", 28, 672),
        ("month", "2026-12", "2026-11-30T16:00:00+00:00", 31, 744),
    ],
    ids=["day", "march", "february-from-a-date", "december-wraps-the-year"],
)
def test_period_is_a_beijing_natural_day_or_month(kind: str, text: str, start_utc: str, days: int, hours: int) -> None:
    from datetime import datetime

    p = ReportPeriod.parse(kind, text)  # type: ignore[arg-type]
    assert p.start_ms == int(datetime.fromisoformat(start_utc).timestamp() * 1000)
    assert len(p.days) == days
    assert p.hours == hours
    assert p.end_ms - p.start_ms == hours * H


@pytest.mark.parametrize(
    ("kind", "text"),
    [("day", "2026-03"), ("month", "March"), ("day", "2026-13-01"), ("month", "2026-02-30")],
    ids=["day-without-day", "words", "month-13", "no-such-date"],
)
def test_period_refuses_a_bad_date(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"date {text!r}"):
        ReportPeriod.parse(kind, text)  # type: ignore[arg-type]


def _permit(site: str = "plant1", device: str = "cems1") -> Permit:
    limits = {
        "so2": PollutantLimit(hourly_mean=35, daily_mean=30),
        "nox": PollutantLimit(hourly_mean=50),
        "hg": PollutantLimit(hourly_mean=0.03),
    }
    return Permit(site, device, "coal_power_ultra_low", "unit 1", "环发〔2015〕164号", "flue_gas", 6.0, limits)


def _source() -> tuple[list[MeanRow], list[MeanRow]]:
    hourly = [
        MeanRow("plant1", "cems1", D0, {"so2_zs": 30.0, "so2": 25.0, "so2_load": 2.0, "nox_zs": 40.0}, {"so2_zs": 60}),
        MeanRow("plant1", "cems1", D0 + H, {"so2_zs": 40.0, "so2": 20.0, "so2_load": 3.5, "nox_zs": 51.0}),
        MeanRow(
            "plant1", "cems1", D0 + 2 * H, {"nox_zs": 50.0}, {"so2_zs": 30}, {"so2_zs": "too_few", "so2_load": "x"}
        ),
        MeanRow("plant1", "cems1", D0 + 3 * H, {"so2_zs": 35.0, "so2_load": 1.25}),
        MeanRow("plant1", "cems1", D0 + 24 * H, {"so2_zs": 99.0, "so2_load": 100.0}),  # the next day: left out
        MeanRow("other", "cems9", D0, {"so2_zs": 99.0, "o2": 8.0}),  # no permit: reported, not judged; O2 no pollutant
    ]
    daily = [MeanRow("plant1", "cems1", D0, {"so2_zs": 36.0, "nox_zs": 47.0})]
    return hourly, daily


def test_source_report_summary_by_hand() -> None:
    hourly, daily = _source()
    r = source_report(DAY, hourly, daily, {("plant1", "cems1"): _permit()}, scope="area east", generated_ms=D0)
    s = r.table("summary")
    by_pollutant = {
        row[2]: dict(zip([c.key for c in s.columns], row, strict=True)) for row in s.rows if row[0] == "plant1"
    }
    so2, nox = by_pollutant["so2"], by_pollutant["nox"]
    # so2: judged on the O2-corrected so2_zs; 30, 40 (over 35), invalid, 35 (equal complies)
    assert (so2["point"], so2["valid_hours"], so2["capture_pct"]) == ("so2_zs", 3, 12.5)
    assert (so2["exceed_hours"], so2["exceed_days"], so2["max_hourly"]) == (1, 1, 40.0)  # daily 36 > 30
    assert (so2["emitted_kg"], so2["load_hours"]) == (6.75, 3)  # 2.0 + 3.5 + 1.25 kg
    assert (so2["hourly_limit"], so2["daily_limit"]) == ("35", "30")
    # nox: 40, 51 (over 50), 50 (equal complies); no daily limit, no load
    assert (nox["valid_hours"], nox["exceed_hours"], nox["exceed_days"], nox["emitted_kg"]) == (3, 1, 0, None)
    assert r.total("exceed_hours") == 2
    assert r.total("exceed_days") == 1
    other = [row for row in s.rows if row[0] == "other"]
    assert other == [("other", "cems9", "so2", "so2_zs", "无许可", None, 1, 4.2, None, None, 99.0, None, 0)]
    assert r.total("capture_pct") == 9.7  # 7 valid of 3 x 24 hours (Hg of the permit is not monitored: not counted)
    assert (r.total("sources"), r.total("unpermitted")) == (2, 1)


def test_source_report_hourly_rows_carry_flags_and_verdicts() -> None:
    hourly, daily = _source()
    r = source_report(DAY, hourly, daily, {("plant1", "cems1"): _permit()}, scope="x", generated_ms=D0)
    t = r.table("hourly")
    rows = [dict(zip([c.key for c in t.columns], row, strict=True)) for row in t.rows]
    so2_zs = [x for x in rows if x["point"] == "so2_zs" and x["site"] == "plant1"]
    assert [x["time"] for x in so2_zs] == [
        "2026-03-10 00:00",
        "2026-03-10 01:00",
        "2026-03-10 02:00",
        "2026-03-10 03:00",
    ]
    assert [x["exceeded"] for x in so2_zs] == ["否", "是", None, "否"]
    assert so2_zs[2]["flag"] == "无效: too_few"
    assert so2_zs[0]["count"] == 60
    assert all(x["limit"] is None for x in rows if x["point"] == "so2")  # the raw point is shown, not judged
    assert {x["site"] for x in rows} == {"plant1", "other"}
    assert r.table("daily").column("time")[0] == "2026-03-10"
    assert "环发〔2015〕164号" in r.standards


def _aqi(
    day: int, aqi: int | None, level: int | None, primary: tuple[str, ...] = (), missing: tuple[str, ...] = ()
) -> AqiDay:
    cat = {1: "优", 2: "良", 3: "轻度污染"}.get(level or 0)
    return AqiDay("city", "air1", MONTH.start_ms + day * 24 * H, aqi, level, cat, primary, missing, "HJ 633-2026")


def test_air_report_days_per_category_and_good_days() -> None:
    days = [
        _aqi(0, 45, 1),
        _aqi(1, 80, 2, ("pm25",)),
        _aqi(2, 120, 3, ("pm10",), ("co",)),  # missing co but over 100: published (HJ 633-2026 §5.3)
        _aqi(3, 90, 2, ("pm25",), ("o3_8h",)),  # missing and at most 100: NA
        _aqi(4, None, None),  # nothing valid: NA
        _aqi(31, 300, 5),  # April: left out
    ]
    r = air_report(MONTH, days, scope="city", generated_ms=0)
    t = r.table("days")
    assert t.column("aqi") == [45, 80, 120, "NA", "NA"]
    assert t.column("primary") == ["—", "pm25", "pm10", None, None]
    assert t.column("date")[0] == "2026-03-01"
    st = dict(zip([c.key for c in r.table("stations").columns], r.table("stations").rows[0], strict=True))
    assert (st["days_1"], st["days_2"], st["days_3"], st["na_days"], st["good_pct"]) == (1, 1, 1, 2, 66.7)
    assert (r.total("station_days"), r.total("good_pct"), r.total("na_days")) == (3, 66.7, 2)
    assert r.standards[0] == "HJ 633-2026"


def test_air_report_keeps_the_2012_edition_of_old_days() -> None:
    feb = ReportPeriod.parse("month", "2026-02")
    day = AqiDay("city", "air1", feb.start_ms, 60, 2, "良", ("pm25",), (), "HJ 633-2012")
    r = air_report(feb, [day], scope="city", generated_ms=0)
    assert "HJ 633-2012" in r.standards
    assert r.total("good_pct") == 100.0


def test_water_report_days_on_target() -> None:
    base = MONTH.start_ms
    days = [
        WaterDay("river", "w1", base, 2, 3, ("do",)),
        WaterDay("river", "w1", base + 24 * H, 3, 3, ("nh3_n",)),  # equal to target: on target
        WaterDay("river", "w1", base + 48 * H, 4, 3, ("tp",)),
        WaterDay("river", "w1", base + 72 * H, None, 3, ()),  # no class: not judged
        WaterDay("lake", "w2", base, 6, None, ("tn",)),  # no target: not judged
    ]
    r = water_report(MONTH, days, scope="x", generated_ms=0)
    assert r.table("days").column("on_target") == [None, "是", "是", "否", None]  # lake w2 sorts first
    rows = {(row[0], row[1]): row for row in r.table("stations").rows}
    cols = [c.key for c in r.table("stations").columns]
    w1 = dict(zip(cols, rows[("river", "w1")], strict=True))
    assert (w1["days"], w1["on_target_days"], w1["on_target_pct"], w1["worst"], w1["target"]) == (
        3,
        2,
        66.7,
        "IV",
        "III",
    )
    w2 = dict(zip(cols, rows[("lake", "w2")], strict=True))
    assert (w2["days"], w2["on_target_pct"], w2["worst"]) == (0, None, "劣V")
    assert (r.total("days"), r.total("on_target_days"), r.total("on_target_pct")) == (3, 2, 66.7)
    assert r.table("days").column("class") == ["劣V", "II", "III", "IV", None]


def test_safety_report_times_to_acknowledge_and_close() -> None:
    t0 = D0 + 8 * H
    t1 = D0 + 10 * H
    a = AlarmRecord(
        "factory1",
        "gas1",
        "gas.lel_high",
        "critical",
        "LEL high",
        [
            StateStep(t0, "raise", "active_unack"),
            StateStep(t0 + 5 * M, "ack", "active_ack"),
            StateStep(t0 + 20 * M, "clear", "normal"),
        ],
    )
    b = AlarmRecord(
        "factory1",
        "gas2",
        "gas.lel_high",
        "warning",
        "LEL high",
        [
            StateStep(t1, "raise", "active_unack"),
            StateStep(t1 + 10 * M, "clear", "cleared_unack"),
            StateStep(t1 + 30 * M, "raise", "active_unack"),  # raised again before anyone acknowledged
            StateStep(t1 + 32 * M, "ack", "active_ack"),
            StateStep(t1 + 40 * M, "clear", "normal"),
            StateStep(D0 + 30 * H, "raise", "active_unack"),  # the next day: left out
        ],
    )
    r = safety_report(DAY, [a, b], scope="x", generated_ms=0)
    assert r.table("alarms").column("ack_min") == [5.0, None, 2.0]
    assert r.table("alarms").column("close_min") == [20.0, None, 10.0]
    det = {row[1]: row for row in r.table("detectors").rows}
    assert det["gas2"][2:5] == (2, 1, 1)  # alarms, not acknowledged, not closed
    assert (r.total("alarms"), r.total("unacked"), r.total("open")) == (3, 1, 1)
    assert (r.total("ack_mean_min"), r.total("close_mean_min")) == (3.5, 15.0)
    assert r.table("enterprises").rows == (("factory1", 2, 3, 3.5, 15.0),)
    assert r.table("alarms").column("raised")[0] == "2026-03-10 08:00"


def test_a_month_sums_the_hours_in_one_pass_and_lists_the_days() -> None:
    hourly, daily = _source()
    permits = {("plant1", "cems1"): _permit()}
    once = iter(hourly)  # read once: a generator from storage is never read twice
    month = source_report(MONTH, once, daily, permits, scope="x", generated_ms=0)
    assert [t.name for t in month.tables] == ["summary", "daily"]
    assert next(once, None) is None
    assert month.total("exceed_hours") == 3  # so2 40 and the next day's 99, nox 51
    so2 = next(row for row in month.table("summary").rows if row[:3] == ("plant1", "cems1", "so2"))
    assert so2[6:9] == (4, 0.5, 2)  # 30, 40, 35, 99 valid of 744 hours; 40 and 99 over 35
    assert so2[11] == 106.75  # 2.0 + 3.5 + 1.25 + 100.0 kg
    with_hours = source_report(MONTH, hourly, daily, permits, scope="x", generated_ms=0, include_hourly=True)
    assert [t.name for t in with_hours.tables] == ["summary", "hourly", "daily"]
    assert with_hours.table("summary") == month.table("summary")


def test_the_builder_fed_in_pieces_gives_the_same_report() -> None:
    hourly, daily = _source()
    permits = {("plant1", "cems1"): _permit()}
    whole = source_report(MONTH, hourly, daily, permits, scope="x", generated_ms=0)
    builder = SourceReportBuilder(MONTH, permits)
    builder.add_hours(hourly[3:])  # a later piece first: order does not matter
    builder.add_hours(hourly[:3])
    builder.add_days(daily)
    assert builder.report(scope="x", generated_ms=0) == whole
