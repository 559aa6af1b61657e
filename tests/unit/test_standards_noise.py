"""Environmental noise limits by GB 3096-2008 (rules.standards.noise): every zone's day and night limit at the
period edges (05:59, 06:00, 21:59, 22:00 local), a level equal to the limit, Asia/Shanghai conversion, the night
Lmax rule, and locally set hours; energy means (Leq, Ld, Ln) and Ldn."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from rules.standards import DayPeriod, NoiseZone, noise_limit, noise_verdict, period_of
from rules.standards.noise import day_hours, day_night_level, energy_mean

CST = timezone(timedelta(hours=8))
# GB 3096-2008 Table 1 as used (day, night) dB(A)
LIMITS = {"0": (50, 40), "1": (55, 45), "2": (60, 50), "3": (65, 55), "4a": (70, 55), "4b": (70, 60)}
EDGES = [
    (time(5, 59), "night"),
    (time(6, 0), "day"),
    (time(21, 59), "day"),
    (time(22, 0), "night"),
    (time(0, 0), "night"),
    (time(5, 59, 59), "night"),
    (time(21, 59, 59), "day"),
]


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        pytest.param(zone, at, LIMITS[zone][0 if period == "day" else 1], id=f"zone{zone}-{at:%H:%M:%S}-{period}")
        for zone in LIMITS
        for at, period in EDGES
    ],
)
def test_limit_by_zone_and_local_time(zone: str, at: time, expected: int) -> None:
    assert noise_limit(zone, at) == expected


@pytest.mark.parametrize(
    ("at", "period"),
    [
        pytest.param(datetime(2026, 6, 1, 21, 59, tzinfo=UTC), DayPeriod.NIGHT, id="utc-21:59-is-cst-05:59-night"),
        pytest.param(datetime(2026, 6, 1, 22, 0, tzinfo=UTC), DayPeriod.DAY, id="utc-22:00-is-cst-06:00-day"),
        pytest.param(datetime(2026, 6, 1, 13, 59, tzinfo=UTC), DayPeriod.DAY, id="utc-13:59-is-cst-21:59-day"),
        pytest.param(datetime(2026, 6, 1, 14, 0, tzinfo=UTC), DayPeriod.NIGHT, id="utc-14:00-is-cst-22:00-night"),
        pytest.param(datetime(2026, 6, 1, 5, 59, tzinfo=CST), DayPeriod.NIGHT, id="cst-05:59-night"),
    ],
)
def test_aware_times_are_taken_in_shanghai(at: datetime, period: DayPeriod) -> None:
    assert period_of(at) == period


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        period_of(datetime(2026, 6, 1, 6, 0))


@pytest.mark.parametrize(
    ("zone", "at", "level", "exceeded", "excess"),
    [
        pytest.param("2", time(12), 60, False, 0, id="equal-to-day-limit-meets"),
        pytest.param("2", time(12), 60.1, True, Decimal("0.1"), id="just-above-day-limit"),
        pytest.param("2", time(22), 50.0, False, 0, id="equal-to-night-limit-meets"),
        pytest.param("2", time(22), 58.4, True, Decimal("8.4"), id="night-above"),
        pytest.param("4b", time(23), 59.9, False, 0, id="4b-night-below-60"),
        pytest.param("4a", time(23), 55.5, True, Decimal("0.5"), id="4a-night-above-55"),
        pytest.param("0", time(6), 50, False, 0, id="zone0-06:00-day-50"),
        pytest.param("0", time(5, 59), 41, True, 1, id="zone0-05:59-night-40"),
    ],
)
def test_verdict(zone: str, at: time, level: float, exceeded: bool, excess: Decimal) -> None:
    v = noise_verdict(zone, at, level)
    assert (v.exceeded, v.excess_db) == (exceeded, excess)
    assert v.lmax_exceeded is None


@pytest.mark.parametrize(
    ("at", "lmax", "lmax_limit", "lmax_exceeded"),
    [
        pytest.param(time(23), 65, Decimal(65), False, id="night-lmax-equal-limit-plus-15"),
        pytest.param(time(23), 65.1, Decimal(65), True, id="night-lmax-above-limit-plus-15"),
        pytest.param(time(12), 90, None, None, id="day-lmax-not-judged"),
    ],
)
def test_night_lmax_rule(at: time, lmax: float, lmax_limit: Decimal | None, lmax_exceeded: bool | None) -> None:
    v = noise_verdict(NoiseZone.Z2, at, 45, lmax_db=lmax)
    assert (v.lmax_limit_db, v.lmax_exceeded) == (lmax_limit, lmax_exceeded)


def test_local_government_hours() -> None:
    # GB 3096-2008 §3: a county-level government may set other day/night hours
    assert noise_limit("1", time(6, 30), day_start=time(7)) == 45
    assert noise_limit("1", time(21, 30), night_start=time(21)) == 45
    with pytest.raises(ValueError, match="before night start"):
        period_of(time(12), day_start=time(22), night_start=time(6))


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="'5' is not a valid NoiseZone"):
        noise_limit("5", time(12))


# --- energy means (noise.md: levels over a period are energy means, never arithmetic means of decibels) ----------
@pytest.mark.parametrize(
    ("levels", "weights", "expected"),
    [
        pytest.param([50.0, 70.0], None, 67.03, id="half-50-half-70"),
        pytest.param([60.0] * 5, None, 60.0, id="steady"),
        pytest.param([80.0, 0.0], None, 76.99, id="one-loud-half"),
        pytest.param([50.0, 70.0], [45, 15], 64.11, id="time-weighted"),
        pytest.param([70.0, 50.0], [0, 1], 50.0, id="zero-weight"),
        pytest.param([140.0, 140.0], None, 140.0, id="no-overflow-at-the-top"),
        pytest.param([-10.0], None, -10.0, id="single"),
    ],
)
def test_energy_mean(levels: list[float], weights: list[float] | None, expected: float) -> None:
    assert energy_mean(levels, weights) == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize(
    ("levels", "weights"),
    [([], None), ([50.0], [1, 2]), ([50.0], [-1]), ([50.0], [0]), ([math.nan], None), ([50.0], [math.inf])],
)
def test_energy_mean_refuses(levels: list[float], weights: list[float] | None) -> None:
    with pytest.raises(ValueError, match=r"level|weight"):
        energy_mean(levels, weights)


@pytest.mark.parametrize(
    ("ld", "ln", "expected"),
    [(60.0, 50.0, 60.0 + 10 * math.log10((16 + 8) / 24)), (55.0, 45.0, 55.0), (60.0, 60.0, 66.02)],
)
def test_day_night_level(ld: float, ln: float, expected: float) -> None:
    assert day_night_level(ld, ln) == pytest.approx(expected, abs=0.005)


def test_day_hours() -> None:
    assert list(day_hours()) == list(range(6, 22))
    assert list(day_hours(time(7), time(23))) == list(range(7, 23))
    with pytest.raises(ValueError, match="on the hour"):
        day_hours(time(6, 30))
