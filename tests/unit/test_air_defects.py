"""Issue 22 air defects, table tests: PM daily rules judge the valid, rounded daily means; a negative hourly mean of
one station is refused, logged once and counted, and never stops the job for the others (nor the window rules);
an AQI capped at 500 is flagged; the HJ 633-2012 daily AQI gets the O3 daily maximum 1-hour mean."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pytest

from rules import PACKS, Rule, ScheduledRules, WindowEvaluator, load_rules
from rules._means import MeasurementMeans, daily_means, hourly_means
from rules.indices import aqi_line, daily_index
from rules.scheduled import judge, read_values, window_threshold
from rules.standards import aqi
from rules.valid_means import ValidMeans, load_means_config
from storage import RetryConfig, RetryingWriter, Series

HOUR = 3_600_000
MINUTE = 60_000
CONFIG = load_means_config()
AIR = next(m for m in CONFIG.measurements if m.measurement == "air_quality")
RULES = {r.id: r for r in load_rules([PACKS])}


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


DAY = local("2026-06-15T00:00:00")


# --- PM daily rules on the valid, rounded daily means ---------------------------------------------------------------
def daily_pm(point: str, hourly: list[float | None]) -> tuple[float | None, int, str | None]:
    """The stored daily mean of ``point`` (rules/means.yaml's air validity and rounding) from 24 hourly means."""
    rows: list[list[object]] = [[DAY + h * HOUR, v] for h, v in enumerate(hourly)]
    series = [Series("air_quality_hourly", {"site": "city", "device": "aq1"}, ["time", point], rows)]
    ((_, means),) = daily_means(AIR, series, DAY).items()
    m = means[point]
    return m.value, m.count, None if m.valid else m.reason


def judged_daily(rule: Rule, point: str, hourly: list[float | None]) -> tuple[list[str], dict[Any, str]]:
    value, n, reason = daily_pm(point, hourly)
    tags = {"site": "city", "device": "aq1"}
    series = [Series("air_quality_daily", tags, ["time", "value", "n"], [[DAY, value, n]])]
    if reason is not None:  # the window query's answer for an invalid stored mean (rules._windows)
        series.append(Series("air_quality_daily", tags, ["time", "invalid"], [[DAY, reason]]))
    values = read_values(rule, series, {"air_quality_daily": "air_quality_station"})
    a = judge(rule, window_threshold(rule), DAY + 24 * HOUR, values, {})
    return [str(t.severity) for t in a.transitions], a.invalid


@pytest.mark.parametrize(
    ("rule_id", "point", "hourly", "severities", "invalid"),
    [
        # GB 3095-2026 Table 1 PM2.5 24-h 60 (transitional grade II); HJ 633-2026 §4.2.2: rounded to integer first
        pytest.param("air.pm25.daily", "pm25", [60.4] * 24, [], False, id="pm25-60.4-rounds-to-60-compliant"),
        pytest.param("air.pm25.daily", "pm25", [60.5] * 24, [], False, id="pm25-60.5-half-to-even-60"),
        pytest.param("air.pm25.daily", "pm25", [61.4] * 24, ["warning"], False, id="pm25-61.4-is-61-exceeds"),
        pytest.param("air.pm25.daily", "pm25", [116.0] * 24, ["critical"], False, id="pm25-116-critical"),
        # a two-sample (two-hour) day: no valid daily mean (>= 20 valid hourly means), no verdict, said so
        pytest.param("air.pm25.daily", "pm25", [300.0] * 2 + [None] * 22, [], True, id="pm25-two-hours-no-verdict"),
        pytest.param("air.pm25.daily", "pm25", [90.0] * 19 + [None] * 5, [], True, id="pm25-19-hours-no-verdict"),
        pytest.param("air.pm25.daily", "pm25", [90.0] * 20 + [None] * 4, ["warning"], False, id="pm25-20-hours"),
        pytest.param("air.pm10.daily", "pm10", [120.4] * 24, [], False, id="pm10-120.4-rounds-to-120-compliant"),
        pytest.param("air.pm10.daily", "pm10", [121.0] * 24, ["warning"], False, id="pm10-121-exceeds"),
        pytest.param("air.pm10.daily", "pm10", [200.0] * 3 + [None] * 21, [], True, id="pm10-three-hours-no-verdict"),
    ],
)
def test_pm_daily_rules_judge_the_valid_rounded_mean(
    rule_id: str, point: str, hourly: list[float | None], severities: list[str], invalid: bool
) -> None:
    got, why = judged_daily(RULES[rule_id], point, hourly)
    assert got == severities
    assert bool(why) == invalid


@pytest.mark.parametrize("rule_id", ["air.pm25.daily", "air.pm10.daily"])
def test_pm_daily_rules_read_the_stored_valid_daily_means(rule_id: str) -> None:
    w = RULES[rule_id].window
    assert w is not None
    assert (w.source, w.period, w.stat, w.strict, w.min_count) == ("valid", "day", "mean", True, 1)


# --- a negative hourly mean is refused, never stops the others -----------------------------------------------------
def minute_series(station: str, value: float, start: int) -> Series:
    rows: list[list[object]] = [[start + i * MINUTE, value, 1, 20.0, 1] for i in range(60)]
    return Series(
        "air_quality", {"site": "city", "device": station}, ["time", "s_pm25", "n_pm25", "s_no2", "n_no2"], rows
    )


@pytest.mark.parametrize(
    ("value", "stored", "refused"),
    [
        pytest.param(-1.2, None, True, id="minus-1.2-refused"),
        pytest.param(-0.4, 0.0, False, id="minus-0.4-rounds-to-0-kept"),
        pytest.param(-0.5, 0.0, False, id="minus-0.5-half-to-even-0-kept"),
        pytest.param(-0.6, None, True, id="minus-0.6-rounds-to-minus-1-refused"),
        pytest.param(12.0, 12.0, False, id="positive-kept"),
    ],
)
def test_negative_hourly_mean_table(value: float, stored: float | None, refused: bool) -> None:
    ((_, means),) = hourly_means(AIR, [minute_series("aq1", value, DAY)]).items()
    m = means["pm25"]
    assert m.value == stored
    assert (m.refused is not None) == refused
    if refused:
        assert m.reason.startswith("invalid: negative mean")
    assert means["no2"].value == 20.0


def test_a_negative_mean_is_kept_where_the_measurement_allows_it() -> None:
    spec = MeasurementMeans(measurement="air_quality", points=[{"point": "pm25", "decimals": 0}])
    ((_, means),) = hourly_means(spec, [minute_series("aq1", -1.2, DAY)]).items()
    assert means["pm25"].value == -1.0


class AirQuery:
    """A fake InfluxQuery: one hour of minute sums for two stations, aq-bad with a negative PM2.5."""

    retention_policy: str | None = None

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        self.statements.append(influxql)
        if '"s_pm25"' not in influxql:
            return []
        start = int(influxql.split("time >= ", 1)[1].split("ms", 1)[0])
        return [minute_series("aq-bad", -1.2, start), minute_series("aq-good", 35.0, start)]


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def write(self, body: bytes) -> None:
        self.bodies.append(body)

    async def close(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [ln for b in self.bodies for ln in b.decode().splitlines()]


async def no_sleep(_: float) -> None:
    pass


def test_a_negative_mean_of_one_station_never_stops_the_others(caplog: pytest.LogCaptureFixture) -> None:
    q, rec = AirQuery(), Recorder()
    job = ValidMeans(CONFIG, q, RetryingWriter(rec, RetryConfig(max_attempts=1), sleep=no_sleep))
    rule = RULES["air.pm25.nodata"]  # a raw window rule: it must still run
    sched = ScheduledRules(WindowEvaluator([rule], q), lambda ts: asyncio.sleep(0), means=job)
    with caplog.at_level(logging.WARNING, logger="rules.valid_means"):
        asyncio.run(sched.run_due(local("2026-06-15T10:05:00")))
        asyncio.run(sched.run_due(local("2026-06-15T11:05:00")))
    lines = rec.lines()
    hourly = [ln for ln in lines if ln.startswith("air_quality_hourly,")]
    aqi_rows = [ln for ln in lines if ln.startswith("air_quality_aqi_hourly,")]
    assert len(hourly) == 4  # two hours, both stations, the bad one too
    assert len(aqi_rows) == 4
    bad = [ln for ln in hourly if "device=aq-bad" in ln]
    assert all("pm25.q=2i" in ln and "negative mean -1 refused" in ln and "no2=20" in ln for ln in bad)
    good = [ln for ln in hourly if "device=aq-good" in ln]
    assert all("pm25=35" in ln for ln in good)
    bad_aqi = [ln for ln in aqi_rows if "device=aq-bad" in ln]
    assert all('missing="' in ln and "pm25_1h" in ln for ln in bad_aqi)  # PM2.5 missing, the AQI of the others
    assert job.counters.refused_means == 2  # counted every hour
    assert len([r for r in caplog.records if "hourly mean refused" in r.getMessage()]) == 1  # logged once
    assert sched.evaluator.last_evaluated == {rule.id: local("2026-06-15T11:00:00")}
    assert sched.counters.means_failures == 0
    assert "lifeline_valid_means_refused_total 2" in sched.metrics_text()


class BrokenMeans(ValidMeans):
    async def run_due(self, now_ms: int) -> int:
        raise ValueError("a defect")


def test_a_failing_means_job_never_stops_the_window_rules() -> None:
    q = AirQuery()
    job = BrokenMeans(CONFIG, q, RetryingWriter(Recorder(), RetryConfig(max_attempts=1), sleep=no_sleep))
    rule = RULES["air.pm25.nodata"]
    sched = ScheduledRules(WindowEvaluator([rule], q), lambda ts: asyncio.sleep(0), means=job)
    asyncio.run(sched.run_due(local("2026-06-15T10:05:00")))
    assert sched.counters.means_failures == 1
    assert sched.evaluator.last_evaluated == {rule.id: local("2026-06-15T10:00:00")}
    assert "lifeline_valid_means_failures_total 1" in sched.metrics_text()


# --- the AQI cap is flagged ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "value", "capped"),
    [
        pytest.param({"pm25_24h": 600}, 500, True, id="pm25-600-above-top-capped"),
        pytest.param({"pm25_24h": 500}, 500, False, id="pm25-500-at-top-not-capped"),
        pytest.param({"pm10_24h": 601}, 500, True, id="pm10-601-capped"),
        pytest.param({"pm25_24h": 60}, 100, False, id="ordinary"),
        pytest.param({"o3_8h": 900}, 300, False, id="o3-8h-above-800-note-not-a-cap"),
    ],
)
def test_aqi_cap_flagged(values: dict[str, float], value: int, capped: bool) -> None:
    got = aqi(values, date(2026, 6, 15), "daily")
    assert (got.aqi, got.capped) == (value, capped)
    line = aqi_line("air_quality_aqi_daily", (("device", "aq1"), ("site", "city")), got, DAY)
    assert f"aqi_capped={'true' if capped else 'false'}" in line


# --- HJ 633-2012 daily AQI with the O3 daily maximum 1-hour mean --------------------------------------------------
def air_day(day_start: int, o3: Sequence[float | None]) -> dict[str, Any]:
    cols = {"so2": 10.0, "no2": 30.0, "co": 0.6, "pm10": 50.0, "pm25": 30.0}
    rows: list[list[object]] = [[day_start + h * HOUR, *cols.values(), o3[h]] for h in range(24)]
    series = [Series("air_quality_hourly", {"site": "city", "device": "aq1"}, ["time", *cols, "o3"], rows)]
    ((_, means),) = daily_means(AIR, series, day_start).items()
    return means


@pytest.mark.parametrize(
    ("o3", "max_1h", "valid"),
    [
        pytest.param([40.0] * 23 + [170.0], 170.0, True, id="max-of-24"),
        pytest.param([40.0] * 19 + [170.0] + [None] * 4, 170.0, True, id="20-hours-valid"),
        pytest.param([40.0] * 18 + [170.0] + [None] * 5, None, False, id="19-hours-invalid"),
    ],
)
def test_o3_daily_max_1h_table(o3: list[float | None], max_1h: float | None, valid: bool) -> None:
    m = air_day(DAY, o3)["o3_1h_max"]
    assert (m.value, m.valid) == (max_1h, valid)


def test_2012_daily_aqi_at_most_100_is_published_with_the_o3_1h_maximum() -> None:
    day_start = local("2025-06-15T00:00:00")  # HJ 633-2012: seven indicators in the daily report
    means = air_day(day_start, [40.0] * 23 + [170.0])
    got = daily_index(means, day_start)
    assert got.edition.startswith("HJ 633-2012")
    assert got.missing == ()
    assert got.aqi is not None
    assert got.aqi <= 100
    assert got.shown == str(got.aqi)
    # the defect: without the O3 daily maximum 1-hour mean, the 2012 day was always NA at or below 100
    without = daily_index({k: v for k, v in means.items() if k != "o3_1h_max"}, day_start)
    assert without.shown == "NA"


def test_2026_daily_aqi_does_not_use_the_o3_1h_maximum() -> None:
    means = air_day(DAY, [40.0] * 23 + [500.0])
    got = daily_index(means, DAY)
    assert got.edition.startswith("HJ 633-2026")
    assert "o3_1h" not in {i.indicator.value for i in got.iaqi}
