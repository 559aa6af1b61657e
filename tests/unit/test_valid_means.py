"""Valid means, pure parts: validity rules (GB 3095-2012 §7.4 Table 4 / HJ 663-2013, as rules/means.yaml gives them),
GB/T 8170 rounding before comparison (HJ 633-2026 §4.2.2), minute sums with uncertain samples taken out, the stored
rows, the window rules that read them, and what the job finds due. Maintenance readings and the simulated coal unit
at night through the streaming engine. InfluxDB itself: tests/integration/test_valid_means.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from device_profiles import load_catalogue
from device_profiles.derive import derive
from rules import PACKS, Engine, Rule, Transition, load_rules
from rules._means import (
    MeasurementMeans,
    daily_max_8h,
    daily_means,
    hourly_means,
    mean_of,
    moving_8h,
    round_half_even,
)
from rules.scheduled import WindowValue, judge, read_values, window_query, window_threshold
from rules.valid_means import ValidMeans, load_means_config
from simulators.behaviours.flue_gas_cems import CemsParams, FlueGasCems
from storage import Retry, RetryConfig, RetryingWriter, Series
from storage.means import means_row, minute_query
from telemetry.models import PointQuality, Sample, Telemetry

HOUR = 3_600_000
MINUTE = 60_000
CONFIG = load_means_config()
AIR = next(m for m in CONFIG.measurements if m.measurement == "air_quality")
FLUE = next(m for m in CONFIG.measurements if m.measurement == "flue_gas")
RULES = {r.id: r for r in load_rules([PACKS])}
CEMS = load_catalogue()["flue_gas_cems"]


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


DAY = local("2026-06-15T00:00:00")


# --- validity ----------------------------------------------------------------------------------------------------
def minutes(n: int, value: float = 10.0) -> list[float | None]:
    return [value] * n + [None] * (60 - n)


@pytest.mark.parametrize(
    ("values", "need", "valid", "count"),
    [
        pytest.param(minutes(44), 45, False, 44, id="hour-44-minutes-invalid"),
        pytest.param(minutes(45), 45, True, 45, id="hour-45-minutes-valid"),
        pytest.param(minutes(60), 45, True, 60, id="hour-full"),
        pytest.param(minutes(0), 45, False, 0, id="hour-empty"),
        pytest.param([10.0] * 19 + [None] * 5, 20, False, 19, id="day-19-hours-invalid"),
        pytest.param([10.0] * 20 + [None] * 4, 20, True, 20, id="day-20-hours-valid"),
    ],
)
def test_validity_table(values: list[float | None], need: int, valid: bool, count: int) -> None:
    m = mean_of(values, need, "minutes")
    assert (m.valid, m.count) == (valid, count)
    assert m.value == (10.0 if valid else None)


def test_invalid_mean_says_how_many_were_valid_and_needed() -> None:
    assert mean_of(minutes(44), 45, "minutes").reason == "invalid: 44 of 60 minutes valid, 45 needed"


@pytest.mark.parametrize(
    ("hours", "valid"),
    [
        pytest.param([100.0] * 5 + [None] * 3, False, id="5-of-8-invalid"),
        pytest.param([100.0] * 6 + [None] * 2, True, id="6-of-8-valid"),
        pytest.param([None, 100.0, None, 100.0, 100.0, 100.0, 100.0, 100.0], True, id="6-with-gaps-valid"),
    ],
)
def test_o3_8h_moving_mean_needs_6_valid_hours(hours: list[float | None], valid: bool) -> None:
    (m,) = moving_8h(hours, AIR.min_hours_8h, 0)
    assert m.valid is valid


@pytest.mark.parametrize(
    ("windows", "valid"),
    [pytest.param(13, False, id="13-valid-8h-means-invalid"), pytest.param(14, True, id="14-valid-8h-means-valid")],
)
def test_o3_daily_max_8h_needs_14_valid_8h_means(windows: int, valid: bool) -> None:
    # hours 0..L valid: window i (hours i..i+7) has L+1-i valid hours, so windows 0..L-5 have >= 6: L = windows + 4
    hours: list[float | None] = [150.0] * (windows + 5) + [None] * (19 - windows)
    assert sum(1 for m in moving_8h(hours, 6) if m.valid) == windows
    m = daily_max_8h(hours, AIR, 0)
    assert (m.valid, m.count, m.of) == (valid, windows, 17)
    assert m.value == (150.0 if valid else None)


def test_o3_daily_max_is_the_highest_valid_8h_mean() -> None:
    hours: list[float | None] = [100.0] * 24
    hours[12:20] = [200.0] * 8
    m = daily_max_8h(hours, AIR, 0)
    assert m.value == 200.0  # window 12–20: eight hours of 200
    assert m.count == 17


# --- rounding (GB/T 8170 half to even on the decimal text; HJ 633-2026 §4.2.2: integer µg/m³, CO 0.1 mg/m³) -------
@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        pytest.param(80.5, 0, 80.0, id="half-to-even-down"),
        pytest.param(81.5, 0, 82.0, id="half-to-even-up"),
        pytest.param(80.49, 0, 80.0, id="below-half"),
        pytest.param(80.51, 0, 81.0, id="above-half"),
        pytest.param(4.05, 1, 4.0, id="co-4.05-is-4.0"),
        pytest.param(4.15, 1, 4.2, id="co-4.15-is-4.2-on-the-decimal-text"),  # float(4.15) is 4.1499999...
        pytest.param(4.04, None, 4.04, id="not-rounded"),
    ],
)
def test_round_half_even(value: float, decimals: int | None, expected: float) -> None:
    assert round_half_even(value, decimals) == expected


def stored(rule: Rule, value: float | None, n: int, reason: str | None = None) -> list[Series]:
    row: dict[str, Any] = {"value": value, "n": n}
    out = [Series("air_quality_daily", {"site": "city", "device": "aq1"}, ["time", *row], [[0, *row.values()]])]
    if reason is not None:
        out.append(Series("air_quality_daily", {"site": "city", "device": "aq1"}, ["time", "invalid"], [[0, reason]]))
    return out


def judged(rule: Rule, series: list[Series]) -> tuple[list[Transition], dict[tuple[str, str], str]]:
    values = read_values(rule, series, {"air_quality_daily": "air_quality_station"})
    a = judge(rule, window_threshold(rule), DAY + 24 * HOUR, values, {})
    return a.transitions, a.invalid


@pytest.mark.parametrize(
    ("hourly", "raises"),
    [
        pytest.param([80.0, 81.0] * 12, False, id="mean-80.5-rounds-to-80-meets-the-limit"),
        pytest.param([80.0] * 20 + [None] * 4, False, id="mean-80-equals-the-limit"),
        pytest.param([81.0, 82.0] * 12, True, id="mean-81.5-rounds-to-82-exceeds"),
    ],
)
def test_a_mean_just_over_the_limit_that_rounds_to_it_does_not_exceed(hourly: list[float | None], raises: bool) -> None:
    rule = RULES["air.no2.daily"]  # > 80 µg/m³ (GB 3095-2026 Table 1, NO2 24-h, transitional grade II), strict
    no2 = MeasurementMeans(measurement="air_quality", points=[{"point": "no2", "decimals": 0}])
    rows: list[list[object]] = [[DAY + h * HOUR, v] for h, v in enumerate(hourly)]
    ((_, means),) = daily_means(
        no2, [Series("air_quality_hourly", {"site": "city", "device": "aq1"}, ["time", "no2"], rows)], DAY
    ).items()
    m = means["no2"]
    transitions, invalid = judged(rule, stored(rule, m.value, m.count))
    assert [t.severity for t in transitions] == (["warning"] if raises else [])
    assert invalid == {}


def test_an_invalid_period_raises_nothing_and_says_so() -> None:
    rule = RULES["air.no2.daily"]
    transitions, invalid = judged(rule, stored(rule, None, 19, "invalid: 19 of 24 hourly means valid, 20 needed"))
    assert transitions == []
    assert invalid == {("city", "aq1"): "no2 2026-06-15 (+08:00): invalid: 19 of 24 hourly means valid, 20 needed"}


# --- minute sums, hourly means, stored rows ------------------------------------------------------------------------
def test_minute_query_reads_sums_and_the_uncertain_to_subtract() -> None:
    assert minute_query("flue_gas", ["nox_zs"], 0, HOUR) == (
        'SELECT sum("nox_zs") AS "s_nox_zs", count("nox_zs") AS "n_nox_zs" FROM "flue_gas" '
        "WHERE time >= 0ms AND time < 3600000ms GROUP BY time(1m), * fill(none); "
        'SELECT sum("nox_zs") AS "us_nox_zs", count("nox_zs") AS "un_nox_zs" FROM "flue_gas" '
        'WHERE time >= 0ms AND time < 3600000ms AND "nox_zs.q" = 1 GROUP BY time(1m), * fill(none)'
    )


def test_hourly_mean_of_good_minutes_leaves_maintenance_out() -> None:
    spec = MeasurementMeans(measurement="flue_gas", points=[{"point": "nox_zs"}])
    tags = {"site": "plant1", "device": "u1", "source": "coal_power", "domain": ""}
    # 50 minutes of 4 good samples at 40; minutes 50..59 also hold 4 maintenance samples of 480 each (span gas)
    main: list[list[object]] = [[DAY + i * MINUTE, 160.0, 4] for i in range(50)]
    main += [[DAY + i * MINUTE, 1920.0, 4] for i in range(50, 60)]
    uncertain: list[list[object]] = [[DAY + i * MINUTE, 1920.0, 4] for i in range(50, 60)]
    series = [
        Series("flue_gas", tags, ["time", "s_nox_zs", "n_nox_zs"], main),
        Series("flue_gas", tags, ["time", "us_nox_zs", "un_nox_zs"], uncertain),
    ]
    ((key, means),) = hourly_means(spec, series).items()
    assert key == (("device", "u1"), ("site", "plant1"), ("source", "coal_power"))  # empty tags left out
    assert (means["nox_zs"].value, means["nox_zs"].count) == (40.0, 50)
    assert means_row("flue_gas_hourly", key, means, DAY) == (
        f"flue_gas_hourly,device=u1,site=plant1,source=coal_power nox_zs.n=50i,nox_zs=40.0 {DAY}"
    )


def test_an_invalid_hour_is_stored_with_its_count_and_reason() -> None:
    m = mean_of(minutes(30), 45, "minutes")
    assert means_row("flue_gas_hourly", (("device", "u 1"),), {"nox_zs": m}, 0) == (
        'flue_gas_hourly,device=u\\ 1 nox_zs.n=30i,nox_zs.q=2i,nox_zs.reason="invalid: 30 of 60 minutes valid, '
        '45 needed" 0'
    )


def test_window_rule_on_stored_means_queries_the_hourly_series_with_the_source_tag() -> None:
    rule = RULES["emissions.nox_zs.hourly"]
    q = window_query(rule, {"flue_gas_cems": "flue_gas", "flue_gas_cems_hj212": "flue_gas"}, 0, HOUR)
    profiles = "(\"profile\" = 'flue_gas_cems' OR \"profile\" = 'flue_gas_cems_hj212')"  # Modbus and HJ 212 CEMS
    assert q == (
        'SELECT last("nox_zs") AS "value", last("nox_zs.n") AS "n" FROM "flue_gas_hourly" WHERE time >= 0ms AND '
        f'time < 3600000ms AND {profiles} AND "source" = \'coal_power\' GROUP BY "site","device"; '
        'SELECT last("nox_zs.reason") AS "invalid" FROM "flue_gas_hourly" WHERE time >= 0ms AND time < 3600000ms '
        f'AND {profiles} AND "source" = \'coal_power\' GROUP BY "site","device"'
    )
    o3 = window_query(RULES["air.o3.max8h"], {"air_quality_station": "air_quality"}, 0, 24 * HOUR)
    assert o3.startswith('SELECT last("o3_8h_max") AS "value", last("o3_8h_max.n") AS "n" FROM "air_quality_daily"')


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        pytest.param({"stat": "max"}, "a stored valid mean is read with stat mean or max_8h", id="max"),
        pytest.param({"stat": "max_8h", "period": "hour"}, "needs period day", id="8h-hourly"),
        pytest.param({"min_count": 3}, "has its validity rule already", id="min-count"),
        pytest.param({"source": "raw", "stat": "max_8h", "period": "day"}, "give source: valid", id="8h-raw"),
        pytest.param({"source": "raw", "index": "aqi"}, "derived index is stored by rules.valid_means", id="index-raw"),
        pytest.param({"index": "aqi", "stat": "max_8h"}, "derived index is read as stored", id="index-stat"),
        pytest.param({"index": "class", "period": "hour"}, "water class is a daily index", id="class-hourly"),
    ],
)
def test_window_source_valid_is_validated(window: dict[str, Any], problem: str) -> None:
    body = {
        "point": "o3",
        "source": "valid",
        "period": "day",
        "direction": "high",
        "levels": [{"severity": "warning", "value": 160}],
        **window,
    }
    with pytest.raises(ValueError, match=problem):
        Rule.model_validate({"id": "x", "title": "x", "select": {"profile": "air_quality_station"}, "window": body})


# --- what the job finds due ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("last_hour", "last_day", "now", "expected"),
    [
        pytest.param(None, None, "2026-06-15T10:01:30", [("day", "00:00"), ("hour", "10:00")], id="first-run"),
        pytest.param("10:00", "00:00", "2026-06-15T10:30:00", [], id="nothing-new"),
        pytest.param("10:00", "00:00", "2026-06-15T12:01:00", [("hour", "11:00"), ("hour", "12:00")], id="catch-up"),
        pytest.param("10:00", "00:00", "2026-06-15T12:00:59", [("hour", "11:00")], id="within-the-delay"),
        pytest.param(
            "2026-06-15T23:00",
            "00:00",
            "2026-06-16T00:01:00",
            [("hour", "2026-06-16T00:00"), ("day", "2026-06-16T00:00")],
            id="day-after-its-last-hour",
        ),
    ],
)
def test_due(last_hour: str | None, last_day: str | None, now: str, expected: list[tuple[str, str]]) -> None:
    def t(text: str) -> int:
        return local(text if "T" in text else f"2026-06-15T{text}:00")

    job = ValidMeans(CONFIG, query=None, writer=None)  # type: ignore[arg-type]
    job.last_hour = t(last_hour) if last_hour else None
    job.last_day = t(last_day) if last_day else None
    assert job.due(local(now)) == [(kind, t(e)) for kind, e in expected]


# --- streaming: maintenance readings and the coal unit at night ---------------------------------------------------
def cems_message(values: dict[str, Any], quality: dict[str, PointQuality], ts: int, tags: dict[str, str]) -> Telemetry:
    v, q = derive(CEMS, tags, values, quality)
    return Telemetry(
        site="plant1",
        device="u1",
        profile="flue_gas_cems",
        measurement="flue_gas",
        seq=1,
        tags={"domain": "emissions", **tags},
        samples=[Sample(ts=ts, values=v, quality=q)],
    )


def test_simulated_coal_unit_at_night_raises_nox_on_the_corrected_value() -> None:
    # Night load 60 %: O2 = 11.5 - 5.5 × 0.6 = 8.2 %. A measured NOx hovering at 46 mg/m³ is about 53.9 at 6 % O2.
    unit = FlueGasCems(seed=7, params=CemsParams(nox=46.0 / 0.84))
    engine = Engine([RULES["emissions.nox"]])
    tags = {"source": "coal_power", "o2_ref": "6"}
    start = local("2026-06-15T01:00:00")
    got: list[Transition] = []
    measured: list[float] = []
    for i in range(0, 121, 5):
        values = unit.step(start / 1000 + i)
        measured.append(float(values["nox"]))
        got += engine.observe(cems_message(values, {}, start + i * 1000, tags))
    assert max(measured) < 50.0  # the measured value alone would never raise
    (raised,) = got
    assert (raised.rule, raised.severity, raised.point) == ("emissions.nox", "warning", "nox_zs")
    assert raised.ts == start + 60_000  # after the 60 s on-delay
    assert isinstance(raised.value, float)
    assert raised.value > 50.0


def test_simulated_coal_unit_night_hour_43_measured_is_50_4_corrected_and_exceeds() -> None:
    # The hourly mean is what the limit applies to: 43 mg/m³ measured at 8.2 % O2 -> 43 × 15 / 12.8 = 50.4 at 6 %.
    unit = FlueGasCems(seed=7, params=CemsParams(nox=43.0 / 0.84))
    tags = {"source": "coal_power", "o2_ref": "6"}
    start = local("2026-06-15T01:00:00")
    spec = MeasurementMeans(measurement="flue_gas", points=[{"point": "nox_zs"}, {"point": "nox"}, {"point": "o2"}])
    rows: list[list[object]] = []
    for minute in range(60):
        acc = {"nox_zs": 0.0, "nox": 0.0, "o2": 0.0}
        for sec in range(0, 60, 5):
            v, _ = derive(CEMS, tags, unit.step(start / 1000 + minute * 60 + sec), {})
            for k in acc:
                acc[k] += float(v[k])  # type: ignore[arg-type]
        rows.append([start + minute * MINUTE, *(x for k in acc for x in (acc[k], 12))])
    cols = ["time", *(c for k in ("nox_zs", "nox", "o2") for c in (f"s_{k}", f"n_{k}"))]
    ((_, means),) = hourly_means(spec, [Series("flue_gas", {"site": "plant1", "device": "u1"}, cols, rows)]).items()
    assert means["o2"].value == pytest.approx(8.2, abs=0.02)
    assert means["nox"].value == pytest.approx(43.0, abs=0.2)
    assert means["nox_zs"].value == pytest.approx(50.4, abs=0.3)
    rule = RULES["emissions.nox_zs.hourly"]
    end = start + HOUR
    value = WindowValue("plant1", "u1", means["nox_zs"].value, means["nox_zs"].count, "flue_gas_cems")
    (raised,) = judge(rule, window_threshold(rule), end, {("plant1", "u1"): value}, {}).transitions
    assert (raised.severity, raised.point) == ("warning", "nox_zs")
    assert "hourly valid mean of nox_zs = 50." in raised.reason
    assert "(60 valid minutes)" in raised.reason


def test_maintenance_readings_raise_no_alarm() -> None:
    engine = Engine([RULES["emissions.nox"]])
    tags = {"source": "coal_power", "o2_ref": "6"}
    span = {"so2": 20.0, "nox": 400.0, "dust": 3.0, "o2": 6.0, "flue_flow": 200.0, "maintenance": True}
    got = [t for i in range(0, 300, 10) for t in engine.observe(cems_message(span, {}, i * 1000, tags))]
    assert got == []
    span["maintenance"] = False
    got = [t for i in range(300, 400, 10) for t in engine.observe(cems_message(span, {}, i * 1000, tags))]
    assert [(t.severity, t.ts) for t in got] == [("warning", 360_000)]  # the same value outside maintenance raises


def test_shipped_daily_air_rules_and_limits() -> None:
    expected = {
        "air.so2.daily": ("so2", "mean", 150),
        "air.no2.daily": ("no2", "mean", 80),
        "air.co.daily": ("co", "mean", 4),
        "air.o3.max8h": ("o3", "max_8h", 160),
    }
    for rid, (point, stat, limit) in expected.items():
        w = RULES[rid].window
        assert w is not None
        assert (w.point, w.stat, w.source, w.period, w.strict, [lv.value for lv in w.levels]) == (
            point,
            stat,
            "valid",
            "day",
            True,
            [limit],
        )


def test_window_value_of_a_stored_mean_carries_the_reason() -> None:
    rule = RULES["air.no2.daily"]
    values = read_values(rule, stored(rule, None, 3, "invalid: 3 of 24 hourly means valid, 20 needed"), {})
    assert values == {
        ("city", "aq1"): WindowValue("city", "aq1", None, 3, None, "invalid: 3 of 24 hourly means valid, 20 needed")
    }


def test_every_shipped_mean_window_uses_good_samples_only() -> None:
    means = [r for r in RULES.values() if r.window is not None and r.window.stat == "mean" and not r.window.nodata]
    assert len(means) > 10
    assert [r.id for r in means if r.window and not (r.window.source == "valid" or r.window.exclude_uncertain)] == []


class FakeQuery:
    """A fake InfluxQuery: no data for anything."""

    retention_policy: str | None = None

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        self.statements.append(influxql)
        return []


class OneSourceQuery(FakeQuery):
    """A fake InfluxQuery: one minute of one flue gas source, nothing else."""

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        self.statements.append(influxql)
        if '"s_nox_zs"' not in influxql:
            return []
        start = local("2026-06-15T09:00:00")
        return [
            Series("flue_gas", {"site": "plant1", "device": "u1"}, ["time", "s_nox_zs", "n_nox_zs"], [[start, 40.0, 1]])
        ]


class DownWriter:
    """A fake transport whose InfluxDB is down."""

    def __init__(self) -> None:
        self.attempts = 0

    async def write(self, body: bytes) -> None:
        self.attempts += 1
        raise Retry("cannot reach InfluxDB: connection refused")

    async def close(self) -> None:
        pass


async def no_sleep(_: float) -> None:
    pass


def test_means_job_failing_is_counted_and_the_window_rules_still_run() -> None:
    import asyncio

    from rules import ScheduledRules, WindowEvaluator

    q = OneSourceQuery()
    down = DownWriter()
    job = ValidMeans(CONFIG, q, RetryingWriter(down, RetryConfig(max_attempts=3), sleep=no_sleep))
    rule = RULES["emissions.nox.hourly"]  # a raw window rule: runs without stored means
    sched = ScheduledRules(WindowEvaluator([rule], q), lambda ts: asyncio.sleep(0), means=job)
    now = local("2026-06-15T10:05:00")
    assert asyncio.run(sched.run_due(now)) == []
    assert sched.counters.query_failures == 1
    assert down.attempts == 3  # storage's retry policy: tried max_attempts times, then left to the next run
    assert job.last_hour is None  # not written: due again at the next run
    assert sched.evaluator.last_evaluated == {rule.id: local("2026-06-15T10:00:00")}
    assert any('FROM "flue_gas_hourly"' in s for s in q.statements)  # the job ran (the day first: it ended first)
    assert "lifeline_window_periods_invalid_total 0" in sched.metrics_text()


def test_every_pollution_source_measurement_has_valid_means() -> None:
    """The bureau's source reports read `<measurement>_hourly` and `_daily`: a source profile's measurement without a
    means.yaml entry gives empty reports (a wastewater outlet had none)."""
    config = {m.measurement: {p.point for p in m.points} for m in load_means_config().measurements}
    sources = [p for p in load_catalogue().values() if p.protocol == "hj212"]
    assert {p.measurement for p in sources} >= {"wastewater", "flue_gas"}
    for profile in sources:
        assert profile.measurement in config, profile.name
        assert profile.hj212 is not None
        limited = {pt.name for pt in profile.hj212.points if pt.total_unit or profile.measurement == "wastewater"}
        assert limited <= config[profile.measurement], profile.name  # pollutants (and all of an outlet's points)
